"""tracking.uri=postgresql://… (issue 18): SQLAlchemy ≥ 2.1 reads a bare postgresql:// as psycopg (v3), which the
project does not install; the runner names the psycopg2 driver its extras install, and a driver that is missing
stops the command in one line naming the package to install."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import TrackingError
from runner.run.preflight import precheck
from runner.tracking.store import database_uri, resolve_uri

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
    assert (
        problem.startswith("tracking.uri=postgresql+psycopg://") and "pip install psycopg[binary]" in problem
    )


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
