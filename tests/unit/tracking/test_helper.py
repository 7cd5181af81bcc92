"""MLflow in a helper process (runner/tracking/helper.py): what a job asks of its tracker comes back as if the
Tracker were in-process — results, the run id, TrackingError — and the helper outlives a Ctrl-C sent to the
whole process group, so that the job can still close its run."""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from conftest import STORE_GROUP

import runner.tracking.helper as helper_module
from runner.data import Provenance
from runner.errors import TrackingError
from runner.tracking.helper import Helper, RemoteTracker, _plain, _serve, connect
from runner.tracking.store import Tracker

pytestmark = pytest.mark.xdist_group(STORE_GROUP)  # opens MLflow stores: one worker imports MLflow

# Each real helper imports MLflow in a fresh process (~4 s): those tests are make test's, not test-fast's; the
# in-process tests below (the helper's loop, its pipe end and the remote tracker against stand-ins) are both.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def helper():
    started = Helper()
    yield started
    started.close()


@slow
def test_a_run_written_through_the_helper_reads_back_from_the_store(helper: Helper, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = RemoteTracker(helper, uri, str(tmp_path / "art"), ())
    experiment = tracker.experiment_id("helper")
    run_id = tracker.start(experiment, "job", {"runner.cell": "c1"})
    assert tracker.run_id == run_id  # the run id set in the helper comes back with the answer
    tracker.log_params({"lr": 0.1})
    tracker.log_series([(10, {"train_loss_interval": 2.0}), (20, {"train_loss_interval": 1.5})])
    tracker.log_text("hello\n", "note.txt")
    tracker.log_dataset("fashion_mnist", Provenance("/data/f", "abc123", {"train": 512}))
    assert tracker.last_step("train_loss_interval") == 20
    with tracker.system_metrics(0.5, resume=False):
        pass
    assert [r.info.run_id for r in tracker.find_runs(experiment, {"runner.cell": "c1"})] == [run_id]
    tracker.end("FINISHED")

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert (run.info.status, run.data.params, run.data.tags["runner.cell"]) == (
        "FINISHED",
        {"lr": "0.1"},
        "c1",
    )
    history = client.get_metric_history(run_id, "train_loss_interval")
    assert [(m.step, m.value) for m in history] == [(10, 2.0), (20, 1.5)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
    (dataset,) = run.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == ("fashion_mnist", "abc123")


@slow
def test_a_write_that_fails_in_the_helper_raises_its_tracking_error_here(
    helper: Helper, tmp_path: Path
) -> None:
    tracker = RemoteTracker(helper, f"sqlite:///{tmp_path / 'mlflow.db'}", None, ())
    with pytest.raises(TrackingError, match=r"^MLflow set parent failed 1 times at sqlite"):
        tracker.adopt("no-such-run", "no-such-parent")
    assert tracker.experiment_id("still-answers")  # one failed call leaves the helper serving


@slow
def test_the_helper_ignores_a_ctrl_c_sent_to_the_process_group(helper: Helper, tmp_path: Path) -> None:
    tracker = RemoteTracker(helper, f"sqlite:///{tmp_path / 'mlflow.db'}", None, ())
    os.kill(helper.process.pid, signal.SIGINT)
    os.kill(helper.process.pid, signal.SIGTERM)
    assert tracker.experiment_id("after-signals")
    assert helper.process.is_alive()


@slow
def test_a_closed_helper_is_a_tracking_error_and_connect_falls_back_in_process(tmp_path: Path) -> None:
    gone = Helper()
    gone.close()  # never asked: stopped at once
    assert not gone.process.is_alive()
    with pytest.raises(TrackingError, match="the MLflow helper process exited"):
        RemoteTracker(gone, f"sqlite:///{tmp_path / 'mlflow.db'}", None, ())
    assert isinstance(connect(f"sqlite:///{tmp_path / 'mlflow.db'}"), Tracker)  # none started here


@slow
def test_runs_come_back_as_plain_data_that_does_not_import_mlflow_into_the_job(tmp_path: Path) -> None:
    """find_runs and get_run answer with namespaces of MLflow's shape: unpickling MLflow's entities would
    import MLflow (~2 s) into the job's process, the cost the helper exists to take off a `runner` start."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        from runner.tracking.helper import Helper, RemoteTracker
        if __name__ == "__main__":
            helper = Helper()
            tracker = RemoteTracker(helper, "sqlite:///{tmp_path / "mlflow.db"}", "{tmp_path / "art"}", ())
            experiment = tracker.experiment_id("helper")
            run_id = tracker.start(experiment, "job", {{"runner.cell": "c1"}})
            tracker.log_params({{"lr": 0.1}})
            tracker.log_metrics({{"loss": 0.5}}, step=3)
            (found,) = tracker.find_runs(experiment, {{"runner.cell": "c1"}})
            got = tracker.get_run(run_id)
            assert found.info.run_id == got.info.run_id == run_id and found.info.status == "RUNNING"
            assert got.data.tags["runner.cell"] == "c1" and got.data.params == {{"lr": "0.1"}}
            assert got.data.metrics == {{"loss": 0.5}} and got.info.experiment_id == experiment
            print("mlflow imported:", "mlflow" in sys.modules)
        """
    )
    (tmp_path / "job.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "job.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "mlflow imported: False"


# --- in-process: the helper's loop, its pipe end and the remote tracker, against stand-ins ----------------------


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> str:
    """One migrated sqlite store for this module's in-process tests (each uses its own experiment)."""
    db = tmp_path_factory.mktemp("helper-store") / "mlflow.db"
    shutil.copy(empty_store, db)
    return f"sqlite:///{db}"


@pytest.fixture
def handlers() -> Iterator[None]:
    """_serve ignores four signals in the process that runs it: put pytest's handlers back after."""
    saved = {s: signal.getsignal(s) for s in SERVED_SIGNALS}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


SERVED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class Wire:
    """The helper's end of the pipe, in this thread: a script of requests (a generator that may read the
    answers sent so far), then `end` (the job's end closing); answers are pickled as a pipe would."""

    def __init__(self, script: Callable[[Wire], Iterator[tuple]], end: type[Exception] = EOFError) -> None:
        self.requests, self.end = script(self), end
        self.sent: list[tuple] = []
        self.refused: list[Exception] = []  # what pickling refused

    def recv(self) -> tuple:
        try:
            return next(self.requests)
        except StopIteration:
            raise self.end() from None

    def send(self, obj: Any) -> None:
        try:
            self.sent.append(pickle.loads(pickle.dumps(obj)))
        except Exception as e:
            self.refused.append(e)
            raise

    def answer(self) -> tuple:
        """The (error, result, run id) of the last answer."""
        return self.sent[-1][1]


def test_the_helper_loop_ignores_the_signals_a_job_gets_and_ends_when_the_job_closes_its_end(
    handlers: None,
) -> None:
    wire = Wire(lambda w: iter(()))
    assert _serve(cast(Any, wire)) is None
    # Ctrl-C and SIGTERM reach the whole process group; SLURM's time limit sends USR1/USR2
    assert [signal.getsignal(s) for s in SERVED_SIGNALS] == [signal.SIG_IGN] * 4
    assert wire.sent == []


def test_the_helper_loop_runs_each_call_on_its_trackers_run_and_answers_with_the_sequence_number(
    handlers: None, store_uri: str
) -> None:
    def script(w: Wire) -> Iterator[tuple]:
        # an open clears the run id the request carries: a new tracker has no run yet
        yield (1, 7, "open", "stale-run", (store_uri, None, ()), {})
        yield (2, 7, "experiment_id", None, ("helper-loop",), {})
        experiment = w.answer()[1]
        yield (3, 7, "start", None, (experiment, "job", {"runner.cell": "c1"}), {})
        run_id = w.answer()[1]
        yield (4, 7, "log_metrics", run_id, ({"loss": 0.5},), {"step": 3})
        yield (5, 7, "last_step", run_id, ("loss",), {})
        yield (6, 7, "get_run", run_id, (run_id,), {})
        yield (7, 9, "last_step", run_id, ("loss",), {})  # key 9 was never opened

    wire = Wire(script)
    _serve(cast(Any, wire))
    assert [seq for seq, _ in wire.sent] == [1, 2, 3, 4, 5, 6, 7]
    answers = [answer for _, answer in wire.sent]
    assert answers[0] == (None, None, None)
    experiment, run_id = answers[1][1], answers[2][1]
    assert answers[1] == (None, experiment, None) and isinstance(experiment, str)
    assert answers[2] == (None, run_id, run_id)  # the run id the call set comes back with the answer
    assert answers[3] == (None, None, run_id)  # the request's run id is the tracker's for the call
    assert answers[4] == (None, 3, run_id)
    error, run, got_id = answers[5]
    assert (error, got_id, type(run), type(run.info)) == (None, run_id, SimpleNamespace, SimpleNamespace)
    assert (run.info.run_id, run.info.experiment_id, run.info.status) == (run_id, experiment, "RUNNING")
    assert (run.data.tags["runner.cell"], run.data.metrics) == ("c1", {"loss": 0.5})
    error, result, got_id = answers[6]
    assert (type(error), error.args, result, got_id) == (KeyError, (9,), None, None)


def test_the_helper_loop_answers_a_failed_call_with_its_error_and_goes_on_serving(
    handlers: None, store_uri: str
) -> None:
    def script(w: Wire) -> Iterator[tuple]:
        yield (1, 3, "open", None, (store_uri,), {"retries": ()})  # no pauses: it fails at once
        yield (2, 3, "adopt", "r1", ("no-such-run", "no-such-parent"), {})
        # a generator context manager: no pipe can carry it
        yield (3, 3, "system_metrics", "r1", (0.5, False), {})
        yield (4, 3, "experiment_id", "r1", ("helper-after-error",), {})

    wire = Wire(script, end=OSError)  # a pipe that breaks ends the loop as a closed one does
    _serve(cast(Any, wire))
    assert [seq for seq, _ in wire.sent] == [1, 2, 3, 4]
    error, result, run_id = wire.sent[1][1]
    assert (type(error), result, run_id) == (TrackingError, None, None)
    assert str(error).startswith(f"MLflow set parent failed 1 times at {store_uri}: ")
    (refused,) = wire.refused
    error, result, run_id = wire.sent[2][1]
    assert (type(error), result, run_id) == (TrackingError, None, None)
    assert str(error) == f"MLflow system_metrics: {type(refused).__name__}: {refused}"
    error, experiment, run_id = wire.sent[3][1]
    assert (error, run_id) == (None, "r1") and isinstance(experiment, str)


def test_the_helper_loop_keeps_a_system_metrics_monitor_open_per_tracker_between_start_and_stop(
    handlers: None, store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple] = []

    @contextlib.contextmanager
    def monitor(self: Tracker, interval_s: float, resume: bool) -> Iterator[None]:
        events.append(("start", self.run_id, interval_s, resume))
        yield
        events.append(("stop", self.run_id))

    monkeypatch.setattr(Tracker, "system_metrics", monitor)
    seen: list[list[tuple]] = []

    def script(w: Wire) -> Iterator[tuple]:
        yield (1, 5, "open", None, (store_uri, None, ()), {})
        yield (2, 6, "open", None, (store_uri, None, ()), {})
        yield (3, 5, "system_metrics_start", "r5", (0.5,), {"resume": True})
        seen.append(list(events))  # started, and still running while other calls are served
        yield (4, 6, "system_metrics_stop", "r6", (), {})  # key 6 started none
        yield (5, 5, "system_metrics_stop", "r5", (), {})

    wire = Wire(script)
    _serve(cast(Any, wire))
    assert seen == [[("start", "r5", 0.5, True)]]
    assert events == [("start", "r5", 0.5, True), ("stop", "r5")]
    answers = [answer for _, answer in wire.sent]
    assert answers[2] == (None, None, "r5") and answers[4] == (None, None, "r5")
    error, result, run_id = answers[3]
    assert (type(error), error.args, result, run_id) == (KeyError, (6,), None, None)


def test_plain_turns_mlflow_runs_into_namespaces_of_the_same_shape_that_unpickle_without_mlflow() -> None:
    from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag

    info = RunInfo(
        run_id="r1", experiment_id="4", user_id="me", status="FINISHED", start_time=10, end_time=20,
        lifecycle_stage="active", artifact_uri="file:///art/r1", run_name="job",
    )  # fmt: skip
    data = RunData(
        metrics=[Metric("loss", 0.5, 0, 3)], params=[Param("lr", "0.1")], tags=[RunTag("runner.cell", "c1")]
    )
    plain = _plain(Run(info, data))
    assert (type(plain), type(plain.info), type(plain.data)) == (SimpleNamespace,) * 3
    assert vars(plain.info) == {
        "run_id": "r1", "run_name": "job", "experiment_id": "4", "user_id": "me", "status": "FINISHED",
        "start_time": 10, "end_time": 20, "artifact_uri": "file:///art/r1", "lifecycle_stage": "active",
    }  # fmt: skip
    assert vars(plain.data) == {
        "tags": {"runner.cell": "c1"},
        "params": {"lr": "0.1"},
        "metrics": {"loss": 0.5},
    }
    assert sorted(vars(plain)) == ["data", "info"]
    assert b"mlflow" not in pickle.dumps(plain)  # unpickling it in the job imports nothing of MLflow's

    other = Run(RunInfo("r2", "4", "me", "RUNNING", 30, None, "active"), RunData())
    runs = _plain([Run(info, data), other, "not a run"])
    assert [type(r) for r in runs] == [SimpleNamespace, SimpleNamespace, str]
    assert (runs[0], runs[2]) == (plain, "not a run")
    assert vars(runs[1].data) == {"tags": {}, "params": {}, "metrics": {}} and runs[1].info.run_id == "r2"
    assert _plain([]) == []


@pytest.mark.parametrize(
    "result",
    [
        None,
        3,
        "text",
        {"info": 1},
        SimpleNamespace(info=SimpleNamespace(run_id="r1"), data=None),  # no data.tags
        SimpleNamespace(info=None, data=SimpleNamespace(tags={})),  # no info.run_id
        SimpleNamespace(info=SimpleNamespace(experiment_id="4"), data=SimpleNamespace(tags={})),
    ],
)
def test_plain_returns_anything_but_a_run_as_it_is(result: Any) -> None:
    assert _plain(result) is result


class Cable:
    """The job's end of the pipe: what it sent, and what it receives (an exception is raised)."""

    def __init__(self, *incoming: Any, send_error: Exception | None = None) -> None:
        self.incoming, self.send_error = list(incoming), send_error
        self.sent: list[tuple] = []
        self.closed = False

    def send(self, obj: tuple) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(obj)

    def recv(self) -> Any:
        item = self.incoming.pop(0) if self.incoming else EOFError()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.closed = True


class Child:
    """A helper process stand-in: join waits `join_for` joins before it ends (more: it never does)."""

    def __init__(self, join_for: int = 1, exitcode: int | None = None) -> None:
        self.join_for, self.exitcode = join_for, exitcode
        self.joins: list[float | None] = []
        self.killed = False
        self.started = False

    def start(self) -> None:
        self.started = True

    def join(self, timeout: float | None = None) -> None:
        self.joins.append(timeout)

    def is_alive(self) -> bool:
        return not self.killed and len(self.joins) < self.join_for

    def kill(self) -> None:
        self.killed = True


def bare_helper(conn: Any, process: Any = None, seq: int = 0) -> Helper:
    """A Helper on stand-ins, its process never started."""
    helper = Helper.__new__(Helper)
    helper.conn, helper.process, helper.seq = conn, process or Child(), seq
    return helper


def test_a_helper_starts_the_loop_in_a_spawned_daemon_process_and_closes_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str | None] = []
    made: list[tuple[Cable, Cable, Child, dict]] = []

    class Context:
        def Pipe(self) -> tuple[Cable, Cable]:
            made.append((Cable(), Cable(), Child(), {}))
            return made[-1][0], made[-1][1]

        def Process(self, **kwargs: Any) -> Child:
            made[-1][3].update(kwargs)
            return made[-1][2]

    def get_context(method: str | None = None) -> Context:
        asked.append(method)
        return Context()

    registered: list[Any] = []
    monkeypatch.setattr(multiprocessing, "get_context", get_context)
    monkeypatch.setattr(atexit, "register", registered.append)
    helper = Helper()
    ((parent, child, process, kwargs),) = made
    assert asked == ["spawn"]  # a fresh interpreter, whatever threads this one runs
    assert kwargs == {"target": _serve, "args": (child,), "name": "runner-mlflow", "daemon": True}
    assert (helper.conn, helper.process, helper.seq) == (parent, process, 0)
    assert process.started and child.closed and not parent.closed  # the helper holds its own copy
    assert registered == [helper.close]


def test_a_request_sends_its_sequence_number_and_skips_the_late_answer_of_an_interrupted_one() -> None:
    late, first, second = (None, "late", None), (None, "exp-1", None), (None, None, "r1")
    cable = Cable((0, late), (1, first), (2, second))
    helper = bare_helper(cable)
    assert helper.request(4, "experiment_id", None, ("x",), {}) == first
    assert helper.request(4, "end", "r1", ("FINISHED",), {"why": 1}) == second
    assert cable.sent == [
        (1, 4, "experiment_id", None, ("x",), {}),
        (2, 4, "end", "r1", ("FINISHED",), {"why": 1}),
    ]
    assert helper.seq == 2


@pytest.mark.parametrize(
    "cable",
    [Cable(EOFError()), Cable(OSError("bad fd")), Cable(send_error=BrokenPipeError(32, "Broken pipe"))],
)
def test_a_helper_that_is_gone_is_a_one_line_tracking_error_naming_the_call(cable: Cable) -> None:
    helper = bare_helper(cable, Child(exitcode=-9))
    with pytest.raises(TrackingError) as gone:
        helper.request(1, "log_metrics", "r1", (), {})
    assert str(gone.value) == "the MLflow helper process exited (exit code -9) during log_metrics"
    assert gone.value.__cause__ is None and gone.value.__suppress_context__


@pytest.mark.parametrize(
    ("seq", "join_for", "joins", "killed"),
    [
        (0, 1, [0], False),  # never asked: not waited for
        (1, 1, [30], False),  # asked: its run may still be closing
        (5, 1, [30], False),
        (1, 99, [30, None], True),  # still alive after the wait: killed, then reaped
        (0, 99, [0, None], True),
    ],
)
def test_closing_a_helper_closes_the_pipe_and_waits_for_it_only_if_it_was_asked_anything(
    seq: int, join_for: int, joins: list, killed: bool
) -> None:
    cable, process = Cable(), Child(join_for=join_for)
    bare_helper(cable, process, seq).close()
    assert (cable.closed, process.joins, process.killed) == (True, joins, killed)


class Desk:
    """A Helper stand-in: records each request and answers from a list ((None, None, None) when it runs out)."""

    def __init__(self, *answers: tuple) -> None:
        self.answers = list(answers)
        self.requests: list[tuple] = []
        self.process = Child()

    def request(self, key: int, method: str, run_id: str | None, args: tuple, kwargs: dict) -> tuple:
        self.requests.append((key, method, run_id, args, kwargs))
        return self.answers.pop(0) if self.answers else (None, None, None)


def test_a_remote_tracker_opens_a_tracker_of_its_own_in_the_helper() -> None:
    desk = Desk()
    first = RemoteTracker(cast(Any, desk), "sqlite:///a.db", "art", ())
    second = RemoteTracker(cast(Any, desk), "sqlite:///b.db", retries=(1.0,))
    assert second._key == first._key + 1  # a key per tracker: the helper holds each one's run
    assert desk.requests == [
        (first._key, "open", None, ("sqlite:///a.db", "art", ()), {}),
        (second._key, "open", None, ("sqlite:///b.db",), {"retries": (1.0,)}),
    ]
    assert (first.uri, first.run_id, first._helper) == ("sqlite:///a.db", None, desk)


def test_a_remote_tracker_call_returns_the_result_and_keeps_the_run_id_the_helper_answers() -> None:
    refused = TrackingError("MLflow set parent failed 1 times at sqlite:///a.db: no such run")
    desk = Desk((None, None, None), (None, "run-9", "run-9"), (None, 20, "run-9"), (refused, None, None))
    tracker = RemoteTracker(cast(Any, desk), "sqlite:///a.db")
    assert tracker.start("1", "job", {"runner.cell": "c1"}) == "run-9"
    assert tracker.run_id == "run-9"
    assert tracker.last_step("loss") == 20
    with pytest.raises(TrackingError) as raised:
        tracker.adopt("no-such-run", "p1")
    assert raised.value is refused and tracker.run_id == "run-9"  # an error leaves the run id as it was
    key = tracker._key
    assert desk.requests[1:] == [
        (key, "start", None, ("1", "job", {"runner.cell": "c1"}), {}),
        (key, "last_step", "run-9", ("loss",), {}),
        (key, "adopt", "run-9", ("no-such-run", "p1"), {}),
    ]


def test_a_remote_tracker_serves_any_public_name_and_no_private_one() -> None:
    desk = Desk()
    tracker = RemoteTracker(cast(Any, desk), "sqlite:///a.db")
    tracker.log_metrics({"loss": 1.0}, step=2)
    assert desk.requests[-1] == (tracker._key, "log_metrics", None, ({"loss": 1.0},), {"step": 2})
    with pytest.raises(AttributeError) as missing:
        tracker._secret  # noqa: B018  # pickle and copy probe such names: they must not become calls
    assert missing.value.args == ("_secret",)
    assert not hasattr(tracker, "__getstate_x__") and len(desk.requests) == 2


def test_a_remote_tracker_sends_the_data_provenance_as_a_plain_namespace() -> None:
    desk = Desk()
    tracker = RemoteTracker(cast(Any, desk), "sqlite:///a.db")
    tracker.run_id = "r1"
    tracker.log_dataset("fashion_mnist", Provenance("/data/f", "abc123", {"train": 512, "val": 128}, True))
    key, method, run_id, (name, provenance), kwargs = desk.requests[-1]
    assert (key, method, run_id, name, kwargs) == (tracker._key, "log_dataset", "r1", "fashion_mnist", {})
    assert type(provenance) is SimpleNamespace  # runner.data's dataclass would import torch in the helper
    assert vars(provenance) == {
        "source": "/data/f", "digest": "abc123", "sizes": {"train": 512, "val": 128}, "generated": True,
    }  # fmt: skip


def test_connect_opens_the_tracker_in_the_running_helper_with_the_store_artifacts_and_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = Desk()  # its process is alive: connect uses it
    monkeypatch.setattr(helper_module, "_helper", desk)
    tracker = connect("sqlite:///a.db", "/runs/art", (1.0, 2.0))
    assert isinstance(tracker, RemoteTracker)
    assert (tracker.uri, tracker._helper) == ("sqlite:///a.db", desk)
    assert desk.requests == [(tracker._key, "open", None, ("sqlite:///a.db", "/runs/art", (1.0, 2.0)), {})]


def test_start_starts_one_helper_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    monkeypatch.setattr(helper_module, "_helper", None)
    monkeypatch.setattr(helper_module, "Helper", lambda: made.append(object()) or made[-1])
    helper_module.start()
    helper_module.start()
    assert len(made) == 1 and helper_module._helper is made[0]


def test_a_remote_tracker_over_a_pipe_to_the_helper_loop_writes_a_run_and_reads_it_back_as_plain_data(
    store_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the loop in a thread of this process: only the main thread may set signal handlers
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    parent, child = multiprocessing.Pipe()

    def serve() -> None:
        try:
            _serve(child)
        finally:
            child.close()  # a loop that ended: the job's recv gets EOF, never hangs

    loop = threading.Thread(target=serve, daemon=True)
    loop.start()
    helper = bare_helper(parent)
    try:
        tracker = RemoteTracker(helper, store_uri, None, ())
        experiment = tracker.experiment_id("helper-pipe")
        run_id = tracker.start(experiment, "job", {"runner.cell": "c2"})
        tracker.log_params({"lr": 0.1})
        tracker.log_dataset("fashion_mnist", Provenance("/data/f", "abc123", {"train": 512}))
        (found,) = tracker.find_runs(experiment, {"runner.cell": "c2"})
        with pytest.raises(TrackingError, match="^MLflow set parent failed 1 times at sqlite"):
            tracker.adopt("no-such-run", run_id)
        tracker.end("FINISHED")
        run = tracker.get_run(run_id)
    finally:
        parent.close()
        loop.join(timeout=10)
    assert not loop.is_alive()  # the job's end closed: the loop returned
    assert (type(found), found.info.run_id, found.data.params) == (SimpleNamespace, run_id, {"lr": "0.1"})
    assert (run.info.status, run.data.tags["runner.cell"], tracker.run_id) == ("FINISHED", "c2", run_id)
    assert helper.seq == 9
