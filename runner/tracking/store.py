"""The only module that talks to MLflow. Rank 0 logs; other ranks never construct a Tracker.

One store for every run (default `sqlite:///mlflow.db` and `mlartifacts/` in the directory `runner`
was started in), so the UI shows every ablation side by side. Every write is retried; a write that
keeps failing raises TrackingError, and the job fails with its last checkpoint intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from runner.errors import TrackingError

T = TypeVar("T")
RETRIES = (1.0, 2.0, 4.0)  # seconds between attempts (conf/tracking: retry_seconds)


# PostgreSQL drivers SQLAlchemy knows: the module each imports, and the package that provides it.
PG_DRIVERS = {
    "psycopg2": ("psycopg2", "psycopg2-binary"),
    "psycopg": ("psycopg", "psycopg[binary]"),
    "pg8000": ("pg8000", "pg8000"),
}


def database_uri(uri: str) -> str:
    """A postgresql:// URI with its driver named. A bare postgresql:// makes SQLAlchemy ≥ 2.1 import psycopg
    (v3), which the project does not install ("No module named 'psycopg'"); the dev and server extras install
    psycopg2-binary, so a bare URI names psycopg2 (or psycopg where only that one is installed). A driver that
    is not installed stops here in one line naming the package to install. Other URIs are returned as given."""
    import importlib.util

    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        return uri
    driver = scheme.partition("+")[2]
    if not driver:
        installed = importlib.util.find_spec("psycopg2") or not importlib.util.find_spec("psycopg")
        driver = "psycopg2" if installed else "psycopg"
    module, package = PG_DRIVERS.get(driver, (driver, driver))
    if importlib.util.find_spec(module) is None:
        extra = " (or pip install 'runner[server]')" if module == "psycopg2" else ""
        raise TrackingError(
            f"tracking.uri={uri} needs the PostgreSQL driver {module}, which is not installed; "
            f"pip install {package}{extra}"
        )
    return f"postgresql+{driver}://{rest}"


def resolve_uri(uri: str, cwd: Path) -> str:
    """Relative sqlite/file stores resolve against the directory `runner` was started in; a PostgreSQL URI
    gets its installed driver named (database_uri)."""
    if uri.startswith(("postgresql", "postgres:")):
        return database_uri(uri)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((cwd / uri[len("sqlite:///") :]).resolve())
    if "://" not in uri:  # a plain path: MLflow's file store
        return str((cwd / uri).resolve())
    return uri


CONNECT_TIMEOUT_S = 5  # a server or database that does not answer in this: one line, not minutes of retries
# The keyword each PostgreSQL driver takes for its connection timeout (libpq's drivers also read
# PGCONNECT_TIMEOUT, which bounds the job's own connections through MLflow).
PG_TIMEOUT_ARGS = {"psycopg2": "connect_timeout", "psycopg": "connect_timeout", "pg8000": "timeout"}


class RunLog(Protocol):
    """What a job and its training loop do with their MLflow run: a Tracker in this process, or one served by
    the helper process (runner/tracking/helper.py) with the same methods."""

    run_id: str | None

    def experiment_id(self, name: str) -> str: ...
    def find_runs(self, experiment_id: str, tags: Mapping[str, str]) -> list[Any]: ...
    def start(
        self, experiment_id: str, name: str, tags: Mapping[str, str], parent_id: str | None = None
    ) -> str: ...
    def attach(self, run_id: str) -> None: ...
    def end(self, status: str) -> None: ...
    def run_url(self) -> str | None: ...
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def adopt(self, run_id: str, parent_id: str) -> None: ...
    def log_series(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None: ...
    def last_step(self, key: str) -> int: ...
    def log_file(self, path: Path, artifact_path: str | None = None) -> None: ...
    def log_text(self, text: str, filename: str) -> None: ...
    def log_dataset(self, name: str, provenance: Any) -> None: ...
    def system_metrics(self, interval_s: float, resume: bool) -> contextlib.AbstractContextManager[None]: ...


def artifact_location(root: str, cwd: Path) -> str:
    """tracking.artifact_root as MLflow is to get it: a URI as it is, a path against the start directory."""
    return root if "://" in root else str((cwd / root).resolve())


def store_exists(uri: str) -> bool:
    """Whether a store is there to read: opening a missing sqlite file (or file store) would create it."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).exists()
    return "://" in uri or Path(uri).exists()


def open_existing(uri: str) -> Tracker | None:
    """A Tracker over an existing store (no retries: a reader), None where there is none to read."""
    return Tracker(uri, retries=()) if store_exists(uri) else None


def check_reachable(uri: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail before training, in one line, when an http(s) tracking server or a PostgreSQL store does not
    answer within `timeout`, or a database URI's driver is not installed."""
    url = database_uri(uri)
    if uri.startswith(("postgresql", "postgres:")):
        check_database(url, uri, timeout)
        return
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(
            f"tracking.uri={uri} is unreachable ({reason}); start it with `make server`"
        ) from None
    check_login(uri, timeout)


# MLflow's own client reads these (mlflow.utils.rest_utils): the login to a server with basic auth.
LOGIN_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def check_login(uri: str, timeout: float) -> None:
    """A server with logins (`make server`: MLflow's basic-auth app) answers /health to anyone: ask it one
    read with the login MLflow will send (LOGIN_VARS), so that a missing or wrong one is one line now,
    not a job failing after its retries."""
    import base64

    request = urllib.request.Request(uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1")
    user, password = (os.environ.get(k) for k in LOGIN_VARS)
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            given = f"the login of {user}" if user and password else "no login"
            raise TrackingError(
                f"tracking.uri={uri} refused {given} (HTTP {e.code}); set {' and '.join(LOGIN_VARS)} "
                "to a user of that server"
            ) from None
    except (urllib.error.URLError, OSError, ValueError):
        return  # /health answered; MLflow's own retries deal with a server that stops answering now


def check_database(url: str, given: str, timeout: float) -> None:
    """Open (and close) one connection to the PostgreSQL store at `url`, its driver told to give up after
    `timeout`: MLflow would otherwise retry a silent or refusing server for minutes before saying anything."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    os.environ.setdefault("PGCONNECT_TIMEOUT", str(int(timeout)))  # the job's MLflow connections, too
    driver = url.partition("://")[0].partition("+")[2]
    connect_args = {PG_TIMEOUT_ARGS.get(driver, "connect_timeout"): int(timeout)}
    shown = sqlalchemy.engine.make_url(given).render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:  # the driver's own error (refused, timeout, authentication, no such database)
        lines = str(getattr(e, "orig", None) or e).strip().splitlines()
        reason = lines[0] if lines else type(e).__name__
        raise TrackingError(f"tracking.uri={shown} is unreachable within {timeout:g} s ({reason})") from None


class Tracker:
    def __init__(
        self, uri: str, artifact_root: str | None = None, retries: Sequence[float] | None = None
    ) -> None:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        import logging

        import mlflow
        from mlflow.tracking import MlflowClient

        # MLflow logs each failed sqlite statement with a traceback; our TrackingError says it in one line.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        # The system-metrics monitor says "Started/Stopping..." at INFO on every run: not worth a console line.
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
        self.mlflow = mlflow
        self.uri, self.artifact_root = uri, artifact_root
        self.retries = tuple(RETRIES if retries is None else retries)
        self.failed = False  # after one write gave up, later ones (closing the run) are tried once
        self.client = self._retry("connect", lambda: MlflowClient(tracking_uri=uri))
        self.run_id: str | None = None

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        pauses = () if self.failed else self.retries
        for attempt, pause in enumerate((*pauses, None)):
            try:
                return fn()
            except Exception as e:  # MLflow raises many kinds: OSError, MlflowException, sqlalchemy
                if pause is None:
                    self.failed = True
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise TrackingError(
                        f"MLflow {what} failed {attempt + 1} times at {self.uri}: {first}"
                    ) from None
                time.sleep(pause)
        raise AssertionError("unreachable")

    # --- experiments and runs -------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        def get_or_create() -> str:
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            location = None
            # An http server stores artifacts in its own root (proxied with --serve-artifacts); a local
            # path here would make each client write to its own disk, out of the server's reach.
            remote = self.uri.startswith(("http://", "https://"))
            if remote and self.artifact_root and "://" not in self.artifact_root:
                location = None
            elif self.artifact_root and "://" not in self.artifact_root:
                location = Path(self.artifact_root).resolve().joinpath(name).as_uri()
            elif self.artifact_root:
                location = f"{self.artifact_root.rstrip('/')}/{name}"
            return self.client.create_experiment(name, artifact_location=location)

        return self._retry("experiment lookup", get_or_create)

    def find_runs(self, experiment_id: str, tags: Mapping[str, str]) -> list[Any]:
        """Runs carrying all these tags, newest first."""
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        return self._retry(
            "search",
            lambda: self.client.search_runs(
                [experiment_id], filter_string=query, order_by=["attributes.start_time DESC"], max_results=50
            ),
        )

    def start(
        self, experiment_id: str, name: str, tags: Mapping[str, str], parent_id: str | None = None
    ) -> str:
        all_tags = dict(tags)
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self._retry(
            "create run", lambda: self.client.create_run(experiment_id, run_name=name, tags=all_tags)
        )
        self.run_id = run.info.run_id
        return self.run_id

    def attach(self, run_id: str) -> None:
        """Continue logging to an existing run (a resumed job, or a DDP worker given the id)."""
        self.run_id = run_id
        self._retry("reopen run", lambda: self.client.update_run(run_id, status="RUNNING"))

    def end(self, status: str) -> None:
        """FINISHED, FAILED or KILLED."""
        if self.run_id:
            self._retry("end run", lambda: self.client.set_terminated(self.run_id, status=status))

    def run_url(self) -> str | None:
        if self.uri.startswith(("http://", "https://")) and self.run_id:
            run = self._retry("run lookup", lambda: self.client.get_run(self.run_id))
            return f"{self.uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{self.run_id}"
        return None

    # --- writes -----------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            chunk = items[i : i + 100]
            self._retry("log params", lambda c=chunk: self.client.log_batch(self.run_id, params=c))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self._retry("set tags", lambda: self.client.log_batch(self.run_id, tags=items))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self._retry("log metrics", lambda: self.client.log_batch(self.run_id, metrics=items))

    def adopt(self, run_id: str, parent_id: str) -> None:
        """Nest an existing run under another parent (a sweep run again skips or resumes its jobs)."""
        self._retry("set parent", lambda: self.client.set_tag(run_id, "mlflow.parentRunId", parent_id))

    def log_series(self, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        """Many steps' metrics in as few calls as MLflow allows (1000 values a batch), not one call a point."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for step, values in points for k, v in values.items()]
        for i in range(0, len(items), 1000):
            chunk = items[i : i + 1000]
            self._retry("log metrics", lambda c=chunk: self.client.log_batch(self.run_id, metrics=c))

    def last_step(self, key: str) -> int:
        """The highest step logged for a metric (-1 if none): a resumed job skips what is already there."""
        history = self._retry("metric history", lambda: self.client.get_metric_history(self.run_id, key))
        return max((m.step for m in history), default=-1)

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        self._retry("log artifact", lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def log_text(self, text: str, filename: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            path.write_text(text)
            self.log_file(path)

    def log_dataset(self, name: str, provenance: Any) -> None:
        """The run's data set as an MLflow dataset input (the UI's Datasets column): name, source, digest,
        and the split sizes in its profile. `provenance` is a runner.data.Provenance."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        # What mlflow.data.meta_dataset.MetaDataset gives for a local folder ("local", {"uri": ...}) or for
        # data made in code ("code"), plus a profile, which MetaDataset has no place for.
        source_type = "code" if provenance.generated else "local"
        source = (
            {"tags": {"source": provenance.source}} if provenance.generated else {"uri": provenance.source}
        )
        dataset = Dataset(
            name=name,
            digest=provenance.digest,
            source_type=source_type,
            source=json.dumps(source),
            profile=json.dumps({f"{split}_size": n for split, n in provenance.sizes.items()}),
        )
        inputs = [DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "train")])]
        self._retry("log dataset", lambda: self.client.log_inputs(self.run_id, datasets=inputs))

    @contextlib.contextmanager
    def system_metrics(self, interval_s: float, resume: bool) -> Iterator[None]:
        """MLflow's own system metrics (system/cpu_utilization_percentage, memory, disk, network, and GPU
        utilisation and memory where pynvml finds a GPU) sampled every `interval_s` in a thread while the
        block runs. A resumed run continues their steps."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = self._retry(
            "system metrics",
            lambda: SystemMetricsMonitor(
                self.run_id, sampling_interval=interval_s, resume_logging=resume, tracking_uri=self.uri
            ),
        )
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()  # joins the thread and flushes what it sampled; logs, never raises

    # --- reads (the sweep report), retried like the writes -----------------------------------------
    def get_run(self, run_id: str) -> Any:
        return self._retry("run lookup", lambda: self.client.get_run(run_id))

    def newest_sweep(self, experiment_name: str) -> str | None:
        """The id of the newest sweep parent run of an experiment (None: no such experiment or sweep)."""
        exp = self._retry("experiment lookup", lambda: self.client.get_experiment_by_name(experiment_name))
        if exp is None:
            return None
        runs = self._retry(
            "search",
            lambda: self.client.search_runs(
                [exp.experiment_id],
                filter_string="tags.`runner.sweep` = 'parent'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            ),
        )
        return runs[0].info.run_id if runs else None

    def child_runs(self, parent: Any) -> list[Any]:
        """The runs nested under a parent run, oldest first."""
        query = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        return self._retry(
            "search",
            lambda: self.client.search_runs(
                [parent.info.experiment_id],
                filter_string=query,
                order_by=["attributes.start_time ASC"],
                max_results=5000,
            ),
        )

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of one metric of a run, by step."""
        history = self._retry("metric history", lambda: self.client.get_metric_history(run_id, key))
        return sorted((m.step, m.value) for m in history)

    def read_artifact_text(self, run_id: str, path: str) -> str | None:
        """The text of a run's artifact, None when the run has no such file."""
        listed = self._retry("list artifacts", lambda: self.client.list_artifacts(run_id))
        if path not in {info.path for info in listed}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = self._retry(
                "download artifact", lambda: self.client.download_artifacts(run_id, path, tmp)
            )
            return Path(local).read_text()

    def experiment_id_or_none(self, name: str) -> str | None:
        """The id of an experiment, None when the store has none of that name (never creates one)."""
        exp = self._retry("experiment lookup", lambda: self.client.get_experiment_by_name(name))
        return None if exp is None else exp.experiment_id

    def search_everywhere(self, filter_string: str, max_results: int = 20) -> list[Any]:
        """Runs of every experiment matching `filter_string`, newest first (runner --plan's throughput)."""
        ids = [e.experiment_id for e in self._retry("search", self.client.search_experiments)]
        if not ids:
            return []
        return self._retry(
            "search",
            lambda: self.client.search_runs(
                ids,
                filter_string=filter_string,
                order_by=["attributes.start_time DESC"],
                max_results=max_results,
            ),
        )

    def download_artifact(self, run_id: str, path: str, dst: Path) -> Path | None:
        """A run's artifact file (`checkpoint/last.pt`) downloaded into `dst`; None when the run has none."""
        folder = path.rpartition("/")[0] or None
        listed = self._retry("list artifacts", lambda: self.client.list_artifacts(run_id, folder))
        if path not in {info.path for info in listed}:
            return None
        local = self._retry(
            "download artifact", lambda: self.client.download_artifacts(run_id, path, str(dst))
        )
        return Path(local)

    def run_id_or_none(self, run_id: str) -> str | None:
        """`run_id` if the store holds that run, else None (a final answer: not retried)."""
        from mlflow.exceptions import MlflowException

        def lookup() -> str | None:
            try:
                return self.client.get_run(run_id).info.run_id
            except MlflowException as e:
                if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

        return self._retry("run lookup", lookup)
