"""MLflow in a helper process, so that its import (~2 s: MLflow 3 imports pandas, FastAPI, its GenAI judges)
and its store writes run beside the job instead of before it.

The `runner` command starts the helper (`start`) once its config passed the torch-free checks, before torch is
imported; while the command imports torch and dry-builds the model, the helper imports MLflow on the other core. A
job then talks to it through `connect`, whose RemoteTracker has Tracker's methods: each call is one request
and one answer over a pipe, run by a real Tracker in the helper (retries, TrackingError and all). Where no
helper was started (tests calling `runner.cli.main` in-process, DDP workers, the report and results tools),
`connect` returns an in-process Tracker.

The helper ignores SIGINT and SIGTERM: a Ctrl-C reaches the whole process group, and the job still has to
close its run through the helper (status KILLED) before it exits. It ends when the job's end of the pipe
closes: at exit, or when the job is killed outright.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import itertools
import multiprocessing
import signal
import types
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, cast

from runner.errors import TrackingError
from runner.tracking.store import RunLog

_helper: Helper | None = None
_keys = itertools.count()


def _serve(conn: Connection) -> None:
    """The helper's loop: (seq, tracker key, method, run id, args, kwargs) in, (seq, (error, result, run id)) out."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):  # USR: SLURM's time limit
        signal.signal(signum, signal.SIG_IGN)
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  # the default store's code, before it is asked

    from runner.tracking.store import Tracker

    trackers: dict[int, Tracker] = {}
    monitors: dict[int, contextlib.AbstractContextManager[None]] = {}
    while True:
        try:
            seq, key, method, run_id, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if method == "open":
                trackers[key] = Tracker(*args, **kwargs)
            tracker = trackers[key]
            tracker.run_id = run_id if method != "open" else None
            result = None
            if method == "system_metrics_start":
                monitors[key] = tracker.system_metrics(*args, **kwargs)
                monitors[key].__enter__()
            elif method == "system_metrics_stop":
                monitors.pop(key).__exit__(None, None, None)
            elif method != "open":
                result = _plain(getattr(tracker, method)(*args, **kwargs))
            answer: tuple[Any, ...] = (None, result, tracker.run_id)
        except Exception as e:
            answer = (e, None, None)
        try:
            conn.send((seq, answer))
        except Exception as e:  # an answer that does not pickle: say what it was, in one line
            conn.send((seq, (TrackingError(f"MLflow {method}: {type(e).__name__}: {e}"), None, None)))


# What a job reads of a run (runner/run/job.py: decide; sweep.py; the report): RunInfo's fields in MLflow 3.
RUN_INFO = (
    "run_id", "run_name", "experiment_id", "user_id", "status", "start_time", "end_time", "artifact_uri",
    "lifecycle_stage",
)  # fmt: skip


def _plain(result: Any) -> Any:
    """MLflow's Run entities (alone or in a list) as plain namespaces of the same shape (.info.run_id,
    .data.tags, ...): unpickling the entities would import MLflow in the job's process (~2 s of every
    `runner` start on 2 cores), which is what the helper is there to spare it."""
    if isinstance(result, list):
        return [_plain(r) for r in result]
    info, data = getattr(result, "info", None), getattr(result, "data", None)
    if not hasattr(info, "run_id") or not hasattr(data, "tags"):
        return result
    return types.SimpleNamespace(
        info=types.SimpleNamespace(**{k: getattr(info, k) for k in RUN_INFO}),
        data=types.SimpleNamespace(
            tags=dict(data.tags), params=dict(data.params), metrics=dict(data.metrics)
        ),
    )


class Helper:
    def __init__(self) -> None:
        # spawn: a fresh interpreter, whatever threads this process has by the time it is asked to start
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), name="runner-mlflow", daemon=True)
        self.process.start()
        child.close()
        self.seq = 0
        atexit.register(self.close)  # before multiprocessing's own exit handler, which joins the helper

    def request(self, key: int, method: str, run_id: str | None, args: tuple, kwargs: dict) -> tuple:
        self.seq += 1
        try:
            self.conn.send((self.seq, key, method, run_id, args, kwargs))
            while True:  # an answer to a request that a signal interrupted arrives late: skip it
                seq, answer = self.conn.recv()
                if seq == self.seq:
                    return answer
        except (EOFError, OSError):
            raise TrackingError(
                f"the MLflow helper process exited (exit code {self.process.exitcode}) during {method}"
            ) from None

    def close(self) -> None:
        """Close the pipe (the helper's signal to end), and wait for it; a helper never asked is stopped."""
        asked = self.seq > 0
        self.conn.close()
        self.process.join(timeout=30 if asked else 0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class RemoteTracker:
    """runner.tracking.store.Tracker's interface; every method runs in the helper process."""

    def __init__(self, helper: Helper, uri: str, *args: Any, **kwargs: Any) -> None:
        self.uri, self.run_id = uri, None
        self._helper, self._key = helper, next(_keys)
        self._call("open", uri, *args, **kwargs)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        error, result, run_id = self._helper.request(self._key, method, self.run_id, args, kwargs)
        if error is not None:
            raise error
        self.run_id = run_id
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self._call, name)

    def log_dataset(self, name: str, provenance: Any) -> None:
        # a plain namespace: unpickling runner.data's dataclass would import torch in the helper
        self._call("log_dataset", name, types.SimpleNamespace(**dataclasses.asdict(provenance)))

    @contextlib.contextmanager
    def system_metrics(self, interval_s: float, resume: bool) -> Iterator[None]:
        self._call("system_metrics_start", interval_s, resume)
        try:
            yield
        finally:
            self._call("system_metrics_stop")


def start() -> None:
    """Start the helper (once per process): the `runner` command does, before anything heavy is imported."""
    global _helper
    if _helper is None:
        _helper = Helper()


def connect(uri: str, artifact_root: str | None = None, retries: Any = None) -> RunLog:
    """A tracker for `uri`: in the helper process when one was started here, else in this process."""
    if _helper is not None and _helper.process.is_alive():
        return cast(
            RunLog, RemoteTracker(_helper, uri, artifact_root, retries)
        )  # RunLog's methods, served remotely
    from runner.tracking.store import Tracker

    return Tracker(uri, artifact_root, retries)
