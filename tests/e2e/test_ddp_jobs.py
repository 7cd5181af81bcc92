"""DDP on CPU with gloo, 2 processes: started by the runner (also inside a sweep) and by torchrun.

A 2-process run must train the same weights as a 1-process run with the same global batch (SyncBatchNorm
on, so the batch statistics are those of the global batch too), log one MLflow run with one point per
epoch, survive a dying rank (run FAILED, the sweep goes on) and resume from rank 0's checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, compose, metric_history, mlflow_runs, run_in_process, run_runner

# One thread per process: the 2 workers share 2 cores with whatever else runs here.
ENV = {"OMP_NUM_THREADS": "1"}
# 192 training images: 3 steps of 64 images per epoch; 2 epochs, so a fault in epoch 2 leaves a checkpoint.
# The weights are compared on act=tanh with flips only: ReLU's kinks and the crop turn float rounding
# differences (any other order of summation, even float32 vs float64 in one process) into large ones.
BASE = [a for a in TINY if not a.startswith(("trainer.epochs", "trainer.batch_size", "dataset."))] + [
    "dataset.subset=320",
    "dataset.val_split=128",
    "dataset.test_subset=128",
    "dataset.augment=[flip]",
    "trainer.epochs=2",
    "trainer.accelerator=cpu",
    "trainer.sync_bn=true",
    "optim.lr=0.01",  # at 0.1 the 6 steps amplify float rounding (f32 vs f64 in one process: 2e-5) too
]
ONE = [*BASE, "trainer.devices=1", "trainer.batch_size=64"]
TWO = [*BASE, "trainer.devices=2", "trainer.batch_size=32"]  # global batch 2 × 32 = 64


def job_runs(cwd: Path) -> list:
    return [r for r in mlflow_runs(cwd) if r.data.tags.get("runner.sweep") != "parent"]


def weights(cwd: Path, run) -> dict[str, torch.Tensor]:
    path = cwd / "checkpoints" / "runner" / run.data.tags["runner.config_hash"] / "last.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], running: bool) -> float:
    """Max |a - b| over the weights, or max |a - b| / (1 + |b|) over the BN running statistics."""
    assert a.keys() == b.keys()
    keys = [k for k in a if ("running_" in k) == running and "num_batches" not in k]
    scale = (lambda t: 1 + t.abs()) if running else (lambda t: 1)
    return max(((a[k].double() - b[k].double()) / scale(b[k].double())).abs().max().item() for k in keys)


def evaluate_in_one_process(
    cwd: Path, overrides: list[str], state: dict[str, torch.Tensor]
) -> dict[str, float]:
    """The test-set metrics of these weights, computed here by one process on the whole test set."""
    from runner.data import Context, build_data
    from runner.models import build_model
    from runner.models.layers import make_act
    from runner.train.loop import evaluate

    cfg = compose(overrides)
    ctx = Context(torch.device("cpu"), 0, 1, 64, cfg["seed"], False, cwd)
    data = build_data(cfg["dataset"], ctx)
    model = build_model(cfg["model"], num_classes=10, in_channels=1, image_size=32, act=make_act(cfg["act"]))
    model.load_state_dict(state)
    return evaluate(model, data.test, contextlib.nullcontext, 1)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.cluster  # 2 processes a job, 7 `runner` processes in all (~2 min of a core): make test-cluster
def test_sweep_of_two_process_jobs_survives_a_dead_rank_resumes_and_matches_one_process(
    workdir: Path,
) -> None:
    run_in_process(workdir, [*ONE, "act=tanh"])  # the 1-process reference: no `runner` to start for it

    # Rank 1 of the first job raises after step 5 (epoch 2); the second job must still run.
    sweep = ["-m", *TWO, "act=tanh,relu"]
    faulty = run_runner(sweep, workdir, env={**ENV, "RUNNER_FAULT": "1:5"}, timeout=300)
    assert faulty.returncode == 1
    assert "RuntimeError: injected fault on rank 1 at step 5" in faulty.stdout + faulty.stderr
    runs = {r.data.tags["runner.act"]: r for r in job_runs(workdir) if r.data.tags["runner.devices"] == "2"}
    assert {a: r.info.status for a, r in runs.items()} == {"tanh": "FAILED", "relu": "FINISHED"}
    assert all(r.data.tags["runner.world_size"] == "2" for r in runs.values())

    # The same command again: tanh resumes from rank 0's epoch-1 checkpoint in its run, relu is skipped.
    again = run_runner(sweep, workdir, env=ENV, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    shown = again.stdout + again.stderr
    assert "resuming resnet20-kaiming-tanh" in shown and "skipped resnet20-kaiming-relu" in shown
    runs = job_runs(workdir)
    assert len(runs) == 3  # the reference and one per sweep job: no run from rank 1, none from the re-run
    two = {r.data.tags["runner.act"]: r for r in runs if r.data.tags["runner.devices"] == "2"}
    one = next(r for r in runs if r.data.tags["runner.devices"] == "1")
    assert {a: r.info.status for a, r in two.items()} == {"tanh": "FINISHED", "relu": "FINISHED"}
    for run in [one, *two.values()]:  # one point per epoch, at the epoch's last step
        assert [m.step for m in metric_history(workdir, run.info.run_id, "test_top1_error")] == [3, 6]

    # Same global batch and seed → same weights, whether 1 or 2 processes (and across a DDP resume).
    w2, w1 = weights(workdir, two["tanh"]), weights(workdir, one)
    diff, stats = max_diff(w2, w1, running=False), max_diff(w2, w1, running=True)
    print(f"max |w_2proc - w_1proc| = {diff:.3g}; BN running stats max rel diff = {stats:.3g}")
    assert diff <= 1e-5 and stats <= 1e-4
    assert torch.equal(w2["stem.1.num_batches_tracked"], w1["stem.1.num_batches_tracked"])

    # The logged test metrics (all-reduced over the ranks' shards) = one process evaluating the same weights.
    own = evaluate_in_one_process(workdir, [*TWO, "act=tanh"], weights(workdir, two["tanh"]))
    logged = two["tanh"].data.metrics
    assert logged["test_top1_error"] == own["top1_error"]
    assert logged["test_loss"] == pytest.approx(own["loss"], rel=1e-6)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.cluster  # several processes per job on 2 cores: make test-cluster (make test keeps to 12 min)
def test_torchrun_gives_one_run_and_one_output_dir(workdir: Path) -> None:
    (workdir / "tmp").mkdir()
    env = {**ENV, "TMPDIR": str(workdir / "tmp")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "runner.cli.main", *[a for a in TWO if a != "trainer.devices=2"], "trainer.epochs=1"]
    done = subprocess.run(
        command, cwd=workdir, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = mlflow_runs(workdir)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["runner.world_size"] == "2" and runs[0].data.tags["runner.devices"] == "2"
    assert [m.step for m in metric_history(workdir, runs[0].info.run_id, "train_loss")] == [3]
    job_dirs = [p for p in (workdir / "outputs").glob("*/*") if p.is_dir()]
    assert len(job_dirs) == 1 and (job_dirs[0] / ".hydra").is_dir()
    assert list((workdir / "tmp").glob("runner-rank*")) == []  # rank 1's scratch Hydra dir is gone

    # Again: rank 0 finds the finished run and skips; rank 1 must learn it from rank 0, not wait for it.
    again = subprocess.run(
        command, cwd=workdir, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped" in again.stdout + again.stderr and len(mlflow_runs(workdir)) == 1


def test_slurm_tasks_become_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """hydra/launcher=slurm: one task per GPU; each task reads its rank from SLURM_* and spawns nothing."""
    pytest.importorskip("submitit")
    from runner.run.ddp import under_torchrun, worker_env

    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "42",
        "SLURM_NTASKS": "4",
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_TASKS_PER_NODE": "2(x2)",
    }
    ours = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in ours}
    monkeypatch.setattr(os, "environ", {**env, **slurm})  # a copy: what export() writes goes away after
    assert under_torchrun()
    assert worker_env() == (3, 4, 1)
    assert os.environ["MASTER_ADDR"] == "gpu07"
