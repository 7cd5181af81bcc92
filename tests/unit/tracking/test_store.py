"""tracking.uri=postgresql://… (issue 18): SQLAlchemy ≥ 2.1 reads a bare postgresql:// as psycopg (v3), which the
project does not install; the runner names the psycopg2 driver its extras install, and a driver that is missing
stops the command in one line naming the package to install."""

from __future__ import annotations

import contextlib
import email.message
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import STORE_GROUP

from runner.errors import TrackingError
from runner.run.preflight import precheck
from runner.tracking.store import (
    LOGIN_VARS,
    check_database,
    check_login,
    check_reachable,
    database_uri,
    resolve_uri,
)

pytestmark = pytest.mark.xdist_group(STORE_GROUP)  # opens MLflow stores: one worker imports MLflow

HAS_PSYCOPG2 = importlib.util.find_spec("psycopg2") is not None


@pytest.mark.skipif(not HAS_PSYCOPG2, reason="psycopg2-binary (the dev extra) is not installed")
def test_a_bare_postgresql_uri_names_the_installed_driver() -> None:
    assert database_uri("postgresql://mlflow@127.0.0.1:5432/mlflow") == (
        "postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow"
    )
    assert resolve_uri("postgres://u@h/db", Path.cwd()) == "postgresql+psycopg2://u@h/db"
    assert database_uri("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert database_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_a_missing_driver_stops_the_command_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_drivers(name: str, *args: object) -> object:
        return None if name in ("psycopg", "psycopg2") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_drivers)
    with pytest.raises(
        TrackingError, match=r"needs the PostgreSQL driver psycopg2.*pip install psycopg2-binary"
    ):
        database_uri("postgresql://u@h/db")
    problem = precheck(["tracking.uri=postgresql+psycopg://u@127.0.0.1/db"])
    assert problem is not None and "\n" not in problem
    assert problem.startswith("tracking.uri=postgresql+psycopg://") and problem.endswith(
        "pip install psycopg[binary]"
    )  # the server extra installs psycopg2 only: no hint of it for psycopg


@pytest.mark.parametrize(
    ("installed", "driver"),
    [({"psycopg2", "psycopg"}, "psycopg2"), ({"psycopg"}, "psycopg"), ({"psycopg2"}, "psycopg2")],
)
def test_a_bare_postgresql_uri_names_psycopg2_unless_only_psycopg_is_installed(
    monkeypatch: pytest.MonkeyPatch, installed: set[str], driver: str
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name in ("psycopg", "psycopg2"):
            return SimpleNamespace(name=name) if name in installed else None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert database_uri("postgresql://u@h/db") == f"postgresql+{driver}://u@h/db"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback (trust auth), its database `mlflow`; the bare URI."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins or not HAS_PSYCOPG2:
        pytest.skip("PostgreSQL or psycopg2 missing: `make test-deps` installs them")
    pgbin = bins[-1]
    state = Path(tempfile.mkdtemp(prefix="runner-pgtest-"))
    state.chmod(0o755)  # as root the cluster belongs to `postgres`, who must reach it
    data, port = state / "data", _free_port()
    as_db_user = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    data.mkdir()
    if os.getuid() == 0:
        shutil.chown(data, "postgres")
    run = lambda *a: subprocess.run([*as_db_user, *a], check=True, capture_output=True, timeout=60)  # noqa: E731
    run(str(pgbin / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8")
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {data}"
    run(str(pgbin / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w", "-s", "-o", opts, "start")
    try:
        run(str(pgbin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        run(str(pgbin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-s", "stop")
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.e2e
def test_a_bare_postgresql_uri_logs_a_run_through_the_installed_driver(postgres: str, tmp_path: Path) -> None:
    from runner.tracking.store import Tracker

    assert precheck([f"tracking.uri={postgres}"]) is None
    tracker = Tracker(resolve_uri(postgres, tmp_path), str(tmp_path / "mlartifacts"), retries=())
    experiment = tracker.experiment_id("runner")
    run_id = tracker.start(experiment, "pg", {"runner.status": "finished"})
    tracker.log_metrics({"images_per_s": 123.0}, step=1)
    tracker.end("FINISHED")
    (run,) = tracker.find_runs(experiment, {"runner.status": "finished"})
    assert run.info.run_id == run_id and run.data.metrics["images_per_s"] == 123.0


class FlakyClient:
    """An MlflowClient whose store refuses `failures` writes in a row (a locked sqlite file), then takes them."""

    failures = 0

    def __init__(self, tracking_uri: str) -> None:
        self.refused = 0

    def set_terminated(self, run_id: str, status: str) -> None:
        if self.refused < FlakyClient.failures:
            self.refused += 1
            raise OSError("database is locked\n(background on this error at: https://sqlalche.me/e/20/e3q8)")


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the tracker takes (time.sleep recorded, not slept), with FlakyClient as MLflow's client."""
    import mlflow.tracking

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", FlakyClient)
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    return slept


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_a_refused_write_is_tried_again_after_each_pause_of_the_default_retries(
    pauses: list[float], failures: int
) -> None:
    from runner.tracking.store import Tracker

    FlakyClient.failures = failures
    tracker = Tracker("sqlite:///x.db")  # conf/tracking's retry_seconds: [1, 2, 4]
    tracker.run_id = "r1"
    tracker.end("FINISHED")
    assert pauses == [1.0, 2.0, 4.0][:failures] and tracker.client.refused == failures


def test_a_write_refused_after_every_pause_fails_in_one_line_and_later_writes_are_tried_once(
    pauses: list[float],
) -> None:
    from runner.tracking.store import Tracker

    FlakyClient.failures = 100
    tracker = Tracker("sqlite:///x.db", retries=(0.5, 3.0))
    tracker.run_id = "r1"
    with pytest.raises(TrackingError) as gave_up:
        tracker.end("FINISHED")
    assert str(gave_up.value) == "MLflow end run failed 3 times at sqlite:///x.db: database is locked"
    assert pauses == [0.5, 3.0] and tracker.client.refused == 3
    with pytest.raises(TrackingError, match="^MLflow end run failed 1 times at"):
        tracker.end("KILLED")  # the job is failing already: closing its run waits no more
    assert pauses == [0.5, 3.0] and tracker.client.refused == 4


# --- check_database: one connection to a PostgreSQL store, its driver told when to give up ---------------------


class Engine:
    """sqlalchemy.create_engine's stand-in: records how it was made; connect raises `refusal` if given."""

    def __init__(self, refusal: Exception | None) -> None:
        self.refusal, self.connected, self.disposed = refusal, 0, False

    def connect(self) -> contextlib.AbstractContextManager[None]:
        if self.refusal is not None:
            raise self.refusal
        self.connected += 1
        return contextlib.nullcontext()

    def dispose(self) -> None:
        self.disposed = True


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """No database: `made` holds the (args, kwargs, engine) of each create_engine call, and each engine's
    connect raises the next of `refusals` (connects when there is none)."""
    import sqlalchemy

    engines = SimpleNamespace(made=[], refusals=[])

    def create_engine(*args: Any, **kwargs: Any) -> Engine:
        engine = Engine(engines.refusals.pop(0) if engines.refusals else None)
        engines.made.append((args, kwargs, engine))
        return engine

    monkeypatch.setattr(sqlalchemy, "create_engine", create_engine)
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)  # and put back as it was, after
    return engines


@pytest.mark.parametrize(
    ("driver", "timeout_arg"),
    [
        ("+psycopg2", "connect_timeout"),
        ("+psycopg", "connect_timeout"),
        ("+pg8000", "timeout"),  # pg8000 names it differently
        ("+asyncpg", "connect_timeout"),  # a driver the table does not know: libpq's name
        ("", "connect_timeout"),
    ],
)
def test_a_postgresql_store_that_answers_is_checked_with_one_connection_that_gives_up_in_time(
    engines: SimpleNamespace, driver: str, timeout_arg: str
) -> None:
    from sqlalchemy.pool import NullPool

    # a "://" later in the URL (a query's value) leaves the driver the scheme names
    url = f"postgresql{driver}://mlflow:secret@db:5432/mlflow?application_name=runner://check"
    assert check_database(url, "postgresql://mlflow:secret@db:5432/mlflow", 7.9) is None
    ((args, kwargs, engine),) = engines.made
    assert args == (url,)
    assert kwargs == {
        "poolclass": NullPool,
        "connect_args": {timeout_arg: 7},
    }  # no pool: one connection, closed
    assert (engine.connected, engine.disposed) == (1, True)
    assert os.environ["PGCONNECT_TIMEOUT"] == "7"  # the job's own MLflow connections give up in time too


def test_a_connect_timeout_the_user_set_is_left_as_it_is(
    engines: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "30")
    check_database("postgresql+psycopg2://u@h/db", "postgresql://u@h/db", 5)
    assert os.environ["PGCONNECT_TIMEOUT"] == "30"
    assert engines.made[0][1]["connect_args"] == {"connect_timeout": 5}


def test_a_postgresql_store_that_refuses_is_one_line_with_the_drivers_reason_and_no_password(
    engines: SimpleNamespace,
) -> None:
    import sqlalchemy.exc

    refused = Exception(
        'connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
    )
    engines.refusals.append(sqlalchemy.exc.OperationalError("SELECT 1", {}, refused))
    with pytest.raises(TrackingError) as unreachable:
        check_database(
            "postgresql+psycopg2://mlflow:secret@db:5432/mlflow",
            "postgresql://mlflow:secret@db:5432/mlflow",
            5.0,
        )
    # the driver's own first line (sqlalchemy's wrapper would prefix "(psycopg2...)" and a link)
    assert str(unreachable.value) == (
        "tracking.uri=postgresql://mlflow:***@db:5432/mlflow is unreachable within 5 s "
        '(connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused)'
    )
    assert unreachable.value.exit_code == 2 and unreachable.value.__cause__ is None
    assert unreachable.value.__suppress_context__  # one line: no chained traceback


@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        (
            RuntimeError("\n  timeout expired\nafter 2.5 s\n"),
            "timeout expired",
        ),  # no .orig: its own first line
        (OSError(), "OSError"),  # nothing said: its kind
        (ConnectionRefusedError(""), "ConnectionRefusedError"),
    ],
)
def test_a_refusal_without_a_driver_error_is_named_by_its_first_line_or_its_kind(
    engines: SimpleNamespace, refusal: Exception, reason: str
) -> None:
    engines.refusals.append(refusal)
    with pytest.raises(TrackingError) as unreachable:
        check_database("postgresql+pg8000://u@h/db", "postgres://u@h/db", 2.5)
    assert str(unreachable.value) == f"tracking.uri=postgres://u@h/db is unreachable within 2.5 s ({reason})"


def test_a_postgresql_uri_whose_driver_sqlalchemy_cannot_load_is_one_line() -> None:
    # the real create_engine, which refuses before any connection
    with pytest.raises(TrackingError) as unreachable:
        check_database("postgresql+nosuch://u@h/db", "postgresql+nosuch://u@h/db", 5)
    assert str(unreachable.value) == (
        "tracking.uri=postgresql+nosuch://u@h/db is unreachable within 5 s "
        "(Can't load plugin: sqlalchemy.dialects:postgresql.nosuch)"
    )


# --- check_login: a server with logins asked one read with the login MLflow will send ---------------------------


class Response:
    def __init__(self) -> None:
        self.read_ = False

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read(self) -> bytes:
        self.read_ = True
        return b"{}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """No server: `asked` holds the (request, timeout, response) of each urlopen, and each raises the next of
    `errors` (answers when there is none). No login is set."""
    server = SimpleNamespace(asked=[], errors=[])

    def urlopen(request: urllib.request.Request, timeout: float = -1.0) -> Response:
        server.asked.append((request, timeout, Response()))
        if server.errors:
            raise server.errors.pop(0)
        return server.asked[-1][2]

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    for name in LOGIN_VARS:
        monkeypatch.delenv(name, raising=False)
    return server


def http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://h/api", code, "refused", email.message.Message(), None)


def test_a_login_check_asks_the_server_one_search_with_the_login_mlflow_will_send(
    server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    assert check_login("http://mlflow.example:5000/", 3.5) is None
    ((request, timeout, response),) = server.asked
    assert request.full_url == "http://mlflow.example:5000/api/2.0/mlflow/experiments/search?max_results=1"
    assert request.get_header("Authorization") == "Basic YWxpY2U6czNjcmV0"  # base64 of alice:s3cret
    assert (timeout, response.read_) == (3.5, True)


@pytest.mark.parametrize(
    "login", [{}, {"MLFLOW_TRACKING_USERNAME": "alice"}, {"MLFLOW_TRACKING_PASSWORD": "s3cret"}]
)
def test_a_login_check_without_both_user_and_password_sends_no_login(
    server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, login: dict[str, str]
) -> None:
    for name, value in login.items():
        monkeypatch.setenv(name, value)
    check_login("https://mlflow.example", 5)
    ((request, _, _),) = server.asked
    assert request.full_url == "https://mlflow.example/api/2.0/mlflow/experiments/search?max_results=1"
    assert not request.has_header("Authorization")


@pytest.mark.parametrize("code", [401, 403])
@pytest.mark.parametrize(
    "password, uri, refused",
    [
        ("wrong", "http://h:5000/", "refused the login of alice"),
        (None, "http://h:5000", "refused no login"),  # a user without a password: MLflow sends none
    ],
)
def test_a_server_that_refuses_is_one_line_naming_the_login_and_the_variables_to_set(
    server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, code: int, password, uri: str, refused: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    if password is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    server.errors.append(http_error(code))
    with pytest.raises(TrackingError) as error:
        check_login(uri, 5)
    assert str(error.value) == (
        f"tracking.uri={uri} {refused} (HTTP {code}); "
        "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to a user of that server"
    )
    assert error.value.exit_code == 2 and error.value.__cause__ is None


@pytest.mark.parametrize(
    "answer",
    [
        http_error(400),
        http_error(404),  # a server without the search API: not a login problem
        http_error(500),
        urllib.error.URLError("timed out"),  # /health answered: MLflow's own retries take it from here
        ConnectionResetError(104, "Connection reset by peer"),
        ValueError("bad response"),
    ],
)
def test_a_login_check_lets_anything_but_a_refused_login_pass(
    server: SimpleNamespace, answer: Exception
) -> None:
    server.errors.append(answer)
    assert check_login("http://h:5000", 5) is None
    assert len(server.asked) == 1


def test_a_server_is_asked_its_health_then_the_login_each_within_the_timeout(server: SimpleNamespace) -> None:
    assert check_reachable("http://mlflow.example:5000/", 2.5) is None
    (health, _, answered), (login, timeout, _) = server.asked
    assert (health, answered.read_) == ("http://mlflow.example:5000/health", True)
    assert login.full_url == "http://mlflow.example:5000/api/2.0/mlflow/experiments/search?max_results=1"
    assert [asked[1] for asked in server.asked] == [2.5, 2.5]


def test_a_server_that_does_not_answer_its_health_is_one_line_saying_how_to_start_it(
    server: SimpleNamespace,
) -> None:
    server.errors.append(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")))
    with pytest.raises(TrackingError) as error:
        check_reachable("https://h:5000")
    assert str(error.value) == (
        "tracking.uri=https://h:5000 is unreachable ([Errno 111] Connection refused); start it with `make server`"
    )
    assert len(server.asked) == 1  # no login asked of a server that is not there


# --- Tracker.adopt and attach, on a real sqlite store --------------------------------------------------------------


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> str:
    """One migrated sqlite store for this module (each test its own experiment)."""
    db = tmp_path_factory.mktemp("tracker-store") / "mlflow.db"
    shutil.copy(empty_store, db)
    return f"sqlite:///{db}"


def test_adopting_a_run_nests_it_under_the_new_parent_and_leaves_the_trackers_own_run(store_uri: str) -> None:
    from runner.tracking.store import Tracker

    tracker = Tracker(store_uri, retries=())
    experiment = tracker.experiment_id("adopt")
    parent, child, own = (tracker.start(experiment, name, {}) for name in ("sweep", "job", "own"))
    tracker.adopt(child, parent)
    assert tracker.get_run(child).data.tags["mlflow.parentRunId"] == parent  # the tag MLflow's UI nests by
    assert "mlflow.parentRunId" not in tracker.get_run(own).data.tags
    assert tracker.run_id == own
    with pytest.raises(TrackingError) as failed:
        tracker.adopt("no-such-run", parent)
    assert str(failed.value).startswith(f"MLflow set parent failed 1 times at {store_uri}: ")


def test_attaching_to_a_finished_run_reopens_it_and_makes_it_the_trackers_run(store_uri: str) -> None:
    from runner.tracking.store import Tracker

    first = Tracker(store_uri, retries=())
    run_id = first.start(first.experiment_id("attach"), "job", {})
    first.end("FINISHED")
    resumed = Tracker(store_uri, retries=())
    resumed.attach(run_id)
    assert resumed.run_id == run_id
    assert resumed.get_run(run_id).info.status == "RUNNING"
    resumed.log_metrics({"loss": 0.25}, step=4)  # later writes land on the attached run
    assert resumed.get_run(run_id).data.metrics == {"loss": 0.25}
    with pytest.raises(TrackingError) as failed:
        Tracker(store_uri, retries=()).attach("no-such-run")
    assert str(failed.value).startswith(f"MLflow reopen run failed 1 times at {store_uri}: ")


# --- what a Tracker asks of MLflow's client, recorded ----------------------------------------------------------


class Client:
    """MlflowClient's write calls and searches, recorded; `get_run` answers with its experiment, and
    `search_experiments` finds those of `experiments`."""

    experiments: tuple[str, ...] = ("0", "4")

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        self.calls.append(("log_batch", run_id, list(metrics), list(params), list(tags)))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.calls.append(("set_tag", run_id, key, value))

    def set_terminated(self, run_id: str, status: str) -> None:
        self.calls.append(("set_terminated", run_id, status))

    def update_run(self, run_id: str, status: str) -> None:
        self.calls.append(("update_run", run_id, status))

    def create_run(self, experiment_id: str, run_name: str, tags: dict[str, str]) -> Any:
        self.calls.append(("create_run", experiment_id, run_name, tags))
        return SimpleNamespace(info=SimpleNamespace(run_id="new1"))

    def get_run(self, run_id: str) -> Any:
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id, experiment_id="4"))

    def log_inputs(self, run_id: str, datasets: Any) -> None:
        self.calls.append(("log_inputs", run_id, list(datasets)))

    def search_experiments(self) -> list[Any]:
        return [SimpleNamespace(experiment_id=i) for i in self.experiments]

    def search_runs(self, experiment_ids: list[str], **kwargs: Any) -> list[Any]:
        self.calls.append(("search_runs", experiment_ids, kwargs))
        return ["run-b", "run-a"]


def recorded(uri: str = "sqlite:///x.db") -> Any:
    """A Tracker over the recording Client; MLflow's own client is never made (it would create x.db here)."""
    from unittest import mock

    from runner.tracking.store import Tracker

    with mock.patch("mlflow.tracking.MlflowClient", lambda tracking_uri: Client()):
        return Tracker(uri, retries=())


def test_a_tracker_quiets_mlflows_own_loggers_only() -> None:
    import logging

    root = logging.getLogger().level
    recorded()
    assert logging.getLogger("mlflow.store.db.utils").level == logging.CRITICAL
    assert logging.getLogger("mlflow.system_metrics").level == logging.WARNING
    assert logging.getLogger().level == root


def test_params_go_in_batches_of_100_as_text_cut_at_6000_characters() -> None:
    """MLflow takes at most 100 params a batch and 6000 characters a value."""
    tracker = recorded()
    tracker.run_id = "r1"
    tracker.log_params({f"p{i:03d}": i for i in range(250)} | {"long": "x" * 7000})
    batches = [call[3] for call in tracker.client.calls]
    assert [len(b) for b in batches] == [100, 100, 51] and {c[1] for c in tracker.client.calls} == {"r1"}
    assert (batches[0][0].key, batches[0][0].value) == ("p000", "0") and batches[2][-1].value == "x" * 6000


def test_metrics_and_series_are_logged_with_their_step_and_a_millisecond_timestamp() -> None:
    import time

    tracker = recorded()
    tracker.run_id = "r1"
    before = int(time.time() * 1000)
    tracker.log_metrics({"train_loss": 2, "lr": 0.1}, step=7)
    tracker.log_series([(s, {"val_loss": s / 10}) for s in range(1500)])
    after = int(time.time() * 1000)
    (_, run_id, metrics, _, _), *series = tracker.client.calls
    assert run_id == "r1" and [(m.key, m.value, m.step) for m in metrics] == [
        ("train_loss", 2.0, 7),
        ("lr", 0.1, 7),
    ]
    assert all(before <= m.timestamp <= after for m in metrics)
    assert [len(call[2]) for call in series] == [1000, 500]  # MLflow takes at most 1000 values a batch
    points = [m for call in series for m in call[2]]
    assert [(m.step, m.value) for m in points[:2]] == [(0, 0.0), (1, 0.1)] and points[-1].step == 1499
    assert all(before <= m.timestamp <= after for m in points)


def test_tags_parents_start_attach_and_end_reach_the_run() -> None:
    tracker = recorded("http://store:5000/")
    assert tracker.start("3", "job", {"a": "1"}, parent_id="p9") == "new1" and tracker.run_id == "new1"
    tracker.set_tags({"runner.status": "finished", "runner.diverged_step": 12})
    tracker.adopt("old2", "p9")
    assert tracker.run_url() == "http://store:5000/#/experiments/4/runs/new1"
    tracker.end("FINISHED")
    tracker.attach("r5")
    calls = tracker.client.calls
    assert calls[0] == ("create_run", "3", "job", {"a": "1", "mlflow.parentRunId": "p9"})
    assert [(t.key, t.value) for t in calls[1][4]] == [
        ("runner.status", "finished"),
        ("runner.diverged_step", "12"),
    ]
    assert calls[2:] == [
        ("set_tag", "old2", "mlflow.parentRunId", "p9"),
        ("set_terminated", "new1", "FINISHED"),
        ("update_run", "r5", "RUNNING"),
    ]
    assert tracker.run_id == "r5"
    local = recorded()
    local.start("3", "job", {"a": "1"})
    assert local.client.calls == [("create_run", "3", "job", {"a": "1"})] and local.run_url() is None


@pytest.mark.parametrize(
    ("provenance", "source_type", "source"),
    [(("/data/FashionMNIST", False), "local", {"uri": "/data/FashionMNIST"}),
     (("synthetic(seed=0)", True), "code", {"tags": {"source": "synthetic(seed=0)"}})],
)  # fmt: skip
def test_the_data_set_is_logged_as_the_runs_training_input_with_its_source_digest_and_split_sizes(
    provenance: tuple[str, bool], source_type: str, source: dict
) -> None:
    """A folder read is MLflow's "local" source with its uri; data made in code a "code" source (MetaDataset's
    shapes), so that the UI's Datasets column shows where the images came from."""
    import json

    from runner.data import Provenance

    tracker = recorded()
    tracker.run_id = "r1"
    tracker.log_dataset(
        "fashion_mnist", Provenance(provenance[0], "abc123", {"train": 384, "val": 128}, provenance[1])
    )
    ((method, run_id, (entry,)),) = tracker.client.calls
    dataset = entry.dataset
    assert (method, run_id, dataset.name, dataset.digest) == ("log_inputs", "r1", "fashion_mnist", "abc123")
    assert (dataset.source_type, json.loads(dataset.source)) == (source_type, source)
    assert json.loads(dataset.profile) == {"train_size": 384, "val_size": 128}
    assert [(t.key, t.value) for t in entry.tags] == [("mlflow.data.context", "train")]


def test_a_run_lookup_that_keeps_failing_is_one_line_naming_the_lookup() -> None:
    tracker = recorded("http://store:5000/")
    tracker.run_id = "r1"

    def refused(run_id: str) -> Any:
        raise ConnectionRefusedError(111, "Connection refused")

    tracker.client.get_run = refused
    with pytest.raises(TrackingError) as failed:
        tracker.run_url()
    assert (
        str(failed.value)
        == "MLflow run lookup failed 1 times at http://store:5000/: [Errno 111] Connection refused"
    )


def test_a_search_everywhere_asks_every_experiment_with_the_filter_newest_first() -> None:
    tracker = recorded()
    assert tracker.search_everywhere("tags.`runner.status` = 'finished'", max_results=5) == ["run-b", "run-a"]
    assert tracker.client.calls == [
        ("search_runs", ["0", "4"],
         {"filter_string": "tags.`runner.status` = 'finished'", "order_by": ["attributes.start_time DESC"],
          "max_results": 5}),
    ]  # fmt: skip
    tracker.client.experiments = ()
    assert (
        tracker.search_everywhere("params.lr = '0.1'") == [] and len(tracker.client.calls) == 1
    )  # no search


def test_runs_are_found_by_all_their_tags_newest_first_at_most_50() -> None:
    tracker = recorded()
    found = tracker.find_runs("7", {"runner.config_hash": "ab12", "runner.status": "finished"})
    assert found == ["run-b", "run-a"]
    assert tracker.client.calls == [
        ("search_runs", ["7"],
         {"filter_string": "tags.`runner.config_hash` = 'ab12' and tags.`runner.status` = 'finished'",
          "order_by": ["attributes.start_time DESC"], "max_results": 50}),
    ]  # fmt: skip


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise OSError("database is locked")


@pytest.mark.parametrize(
    ("what", "write"),
    [
        ("set tags", lambda tracker: tracker.set_tags({"runner.status": "finished"})),
        ("log metrics", lambda tracker: tracker.log_metrics({"loss": 0.5}, step=3)),
        ("log metrics", lambda tracker: tracker.log_series([(3, {"loss": 0.5})])),
        ("log params", lambda tracker: tracker.log_params({"lr": 0.1})),
    ],
)
def test_a_refused_batch_write_is_one_line_naming_what_was_written(what: str, write: Any) -> None:
    tracker = recorded()
    tracker.run_id = "r1"
    tracker.client.log_batch = _refuse
    with pytest.raises(TrackingError) as failed:
        write(tracker)
    assert str(failed.value) == f"MLflow {what} failed 1 times at sqlite:///x.db: database is locked"


@pytest.mark.parametrize(
    ("what", "broken", "read"),
    [
        ("search", "search_runs", lambda tracker: tracker.find_runs("7", {"runner.status": "finished"})),
        ("list artifacts", "list_artifacts", lambda tracker: tracker.read_artifact_text("r1", "report.md")),
        (
            "download artifact",
            "download_artifacts",
            lambda tracker: tracker.read_artifact_text("r1", "report.md"),
        ),
        ("run lookup", "get_run", lambda tracker: tracker.run_id_or_none("r1")),
        (
            "search",
            "search_runs",
            lambda tracker: (
                setattr(
                    tracker.client, "get_experiment_by_name", lambda name: SimpleNamespace(experiment_id="7")
                ),
                tracker.newest_sweep("init_depth_small"),
            ),
        ),
    ],
)
def test_a_refused_read_is_one_line_naming_what_was_read(what: str, broken: str, read: Any) -> None:
    tracker = recorded()
    tracker.client.list_artifacts = lambda run_id: [SimpleNamespace(path="report.md")]
    setattr(tracker.client, broken, _refuse)
    with pytest.raises(TrackingError) as failed:
        read(tracker)
    assert str(failed.value) == f"MLflow {what} failed 1 times at sqlite:///x.db: database is locked"


def test_a_store_exists_where_its_file_does_or_wherever_a_server_or_database_is_named(tmp_path: Path) -> None:
    """Opening a missing sqlite file or folder would create it; a server's or database's URI is asked as it is."""
    from runner.tracking.store import store_exists

    (tmp_path / "mlflow.db").write_bytes(b"")
    assert store_exists(f"sqlite:///{tmp_path / 'mlflow.db'}") and store_exists(str(tmp_path))
    assert not store_exists(f"sqlite:///{tmp_path / 'none.db'}") and not store_exists(
        str(tmp_path / "mlruns")
    )
    assert store_exists("http://127.0.0.1:5000") and store_exists("postgresql+psycopg2://mlflow@db/mlflow")
