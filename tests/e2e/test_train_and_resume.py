"""The spine, end to end through the real `runner` entry point: compose → train → MLflow."""

from __future__ import annotations

import shutil

import pytest
from conftest import TINY_SWEEP, images_wrong, metric_history, mlflow_runs, run_in_process, run_runner

pytestmark = pytest.mark.e2e  # every test here starts `runner` in a subprocess


@pytest.mark.slow
def test_tiny_run_is_logged_to_mlflow(tiny_sweep):
    """A job of the shared sweep (TINY, 2 epochs, act=prelu: trained and logged as `runner <those overrides>`
    alone would, but for its run's name), read back from its store."""
    cwd, stdout = tiny_sweep
    (run,) = [r for r in mlflow_runs(cwd) if r.data.params.get("act") == "prelu"]
    assert run.info.status == "FINISHED"
    assert f"MLflow run {run.info.run_id}; browse it with `make ui`" in stdout
    assert run.info.run_name == "resnet20-kaiming-prelu"  # a sweep's job: its groups and swept keys only
    params = run.data.params
    assert (params["model"], params["init"], params["act"]) == ("resnet20", "kaiming", "prelu")
    assert params["optim.lr"] == "0.1" and params["model.width"] == "4"
    tags = run.data.tags
    assert tags["runner.status"] == "finished" and tags["runner.torch"].startswith("2.")
    assert "runner.git_commit" in tags and tags["runner.device"].startswith("cpu")

    # one point per epoch, at the iteration count: 384 training images / 64 = 6 steps per epoch
    for key in ("train_loss", "train_error", "val_top1_error", "val_top5_error", "lr", "images_per_s"):
        history = metric_history(cwd, run.info.run_id, key)
        assert [m.step for m in history] == [6, 12], key
    top1 = metric_history(cwd, run.info.run_id, "test_top1_error")
    assert len(top1) == 2 and all(images_wrong(m.value, 256) in range(257) for m in top1)  # 256 test images

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "overrides.txt", "model_summary.txt", "checkpoint"} <= artifacts
    assert (cwd / "mlartifacts").is_dir()  # artifacts beside the store, not in Hydra's job dir


@pytest.mark.slow
def test_rerun_skips_a_finished_config_and_the_same_seed_gives_the_same_metrics(tiny_sweep, workdir):
    """In a copy of the shared sweep's store: the same sweep again (on Hydra's own launcher this time: the
    launcher is not part of a job's identity) trains nothing; one of its configs again with resume=never
    trains afresh and ends with the same metrics (same seed, same config)."""
    shutil.copytree(tiny_sweep[0], workdir, dirs_exist_ok=True)
    before = mlflow_runs(workdir)
    again = run_runner([a for a in TINY_SWEEP if not a.startswith("hydra")], cwd=workdir)
    assert again.returncode == 0 and again.stdout.count("skipped") == 2, again.stdout[-3000:]
    jobs = [r for r in mlflow_runs(workdir) if "runner.config_hash" in r.data.tags]
    assert {r.info.run_id for r in jobs} <= {r.info.run_id for r in before} and len(jobs) == 2

    config = [a for a in TINY_SWEEP[1:] if not a.startswith(("act=", "hydra"))]
    run_in_process(workdir, [*config, "act=relu", "resume=never"])  # here: the runner's start was paid above
    first = next(r for r in jobs if r.data.params["act"] == "relu")
    second = mlflow_runs(workdir)[-1]
    assert second.info.run_id not in {r.info.run_id for r in before}
    assert second.info.run_name.startswith("resnet20-kaiming-relu-")  # alone: + the overrides that train
    assert second.data.tags["runner.config_hash"] == first.data.tags["runner.config_hash"]
    for key in ("train_loss", "val_top1_error", "test_top1_error", "test_loss"):
        a, b = (metric_history(workdir, r.info.run_id, key)[-1].value for r in (first, second))
        assert a == b, key


@pytest.mark.slow
def test_multirun_creates_one_run_per_job_under_a_parent(tiny_sweep):
    """The shared sweep ran its jobs in Hydra's joblib worker processes: they still found the parent run."""
    cwd, stdout = tiny_sweep
    runs = mlflow_runs(cwd)
    parents = [r for r in runs if r.data.tags.get("runner.sweep") == "parent"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].info.run_name == "sweep act=relu,prelu"  # named by what it sweeps
    assert sorted(r.data.params["act"] for r in children) == ["prelu", "relu"]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert f"MLflow sweep (parent run) {parents[0].info.run_id}; browse it with `make ui`" in stdout
