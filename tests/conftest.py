"""Shared test helpers: run the real `runner` entry point in a subprocess, read back the MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A run small enough for a test: a few hundred Fashion-MNIST images, a narrow ResNet-20, one epoch.
TINY = [
    "dataset.subset=512",
    "dataset.val_split=128",
    "dataset.test_subset=256",
    "model.width=4",
    "trainer.epochs=1",
    "trainer.batch_size=64",
    "trainer.log_every=2",
    "trainer.progress=false",
    "trainer.eval_test_every_epoch=true",
]


def run_runner(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`runner <args>` in `cwd`, through the installed console script's module, output captured."""
    # One torch thread: tiny models gain nothing from two, and lose a lot when the machine is busy.
    full_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def mlflow_runs(cwd: Path, experiment: str = "runner") -> list:
    """Every run of an experiment in the default store under `cwd` (oldest first); [] if none."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    db = cwd / "mlflow.db"
    if not db.exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"], max_results=1000)
    return list(runs)


def metric_history(cwd: Path, run_id: str, key: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    return sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """In-process tests use tiny tensors: one thread is fastest, and several spin-wait on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to start `runner` in: its mlflow.db, checkpoints and outputs land here."""
    return tmp_path
