"""The CUDA code paths: a training step in fp32, bf16 + channels_last and torch.compile; DDP over NCCL on 1
and 2 GPUs; the resident data path on the GPU; resume on the GPU. `make gpu-check` runs them (`pytest -m gpu`)
with the GPU benchmark; without a CUDA GPU every test here is skipped.

The data set is `synthetic` (random images, resident on the device): a GPU machine needs no data files.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import compose, metric_history, mlflow_runs, run_runner

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPUS == 0, reason="no CUDA GPU")]

CUDA = [
    "dataset=synthetic",
    "dataset.train_size=1024",
    "dataset.test_size=256",
    "model.width=8",
    "trainer.accelerator=cuda",
    "trainer.batch_size=64",
    "trainer.log_every=4",
    "trainer.progress=false",
    "tracking.log_checkpoint=false",
]
STEPS = ["trainer.max_steps=8", "trainer.epochs=1"]


def job_runs(cwd: Path) -> list:
    return [r for r in mlflow_runs(cwd) if r.data.tags.get("runner.sweep") != "parent"]


def finished_on_gpu(cwd: Path, result, devices: int = 1):
    """The one run of `cwd`: finished, on a CUDA device, with a finite training loss."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (run,) = job_runs(cwd)
    assert run.info.status == "FINISHED" and run.data.tags["runner.status"] == "finished"
    assert not run.data.tags["runner.device"].startswith("cpu"), run.data.tags["runner.device"]
    assert run.data.tags["runner.devices"] == str(devices)
    assert all(math.isfinite(m.value) for m in metric_history(cwd, run.info.run_id, "train_loss"))
    return run


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    [
        ["trainer.precision=fp32", "trainer.channels_last=false"],
        ["trainer.precision=bf16", "trainer.channels_last=true"],
        ["trainer.precision=bf16", "trainer.channels_last=true", "trainer.compile=true"],
    ],
    ids=["fp32", "bf16_channels_last", "bf16_channels_last_compile"],
)
def test_cuda_training_steps(workdir: Path, variant: list[str]) -> None:
    finished_on_gpu(workdir, run_runner([*CUDA, *STEPS, *variant], workdir))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2])
def test_ddp_over_nccl(workdir: Path, devices: int) -> None:
    if devices > GPUS:
        pytest.skip(f"needs {devices} GPUs, {GPUS} visible")
    result = run_runner([*CUDA, *STEPS, f"trainer.devices={devices}", "trainer.sync_bn=true"], workdir)
    finished_on_gpu(workdir, result, devices)


def test_resident_data_lives_on_the_gpu_and_is_a_function_of_the_seed() -> None:
    from runner.data import Context, build_data

    cfg = compose(CUDA)
    ctx = Context(torch.device("cuda", 0), 0, 1, 64, 0, True, Path.cwd())
    first = [build_data(cfg["dataset"], ctx).train.batches(0) for _ in range(2)]
    for _ in range(3):  # batch i of epoch e: the same tensors from two independent builds
        (x, y), (x2, y2) = next(first[0]), next(first[1])
        assert x.is_cuda and y.is_cuda and x.dtype == torch.float32 and x.shape == (64, 3, 32, 32)
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x, x2) and torch.equal(y, y2)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_run_stopped_on_the_gpu_resumes_there(workdir: Path) -> None:
    """Rank 0 fails after step 20 of 32 (test-only fault, runner/env.py FAULT); the same command continues
    the run from its epoch-1 checkpoint (loaded onto the GPU) and finishes it in the same MLflow run."""
    argv = [*CUDA, "trainer.epochs=2", "dataset.train_size=1024", "trainer.batch_size=64"]  # 16 steps/epoch
    failed = run_runner(argv, workdir, env={"RUNNER_FAULT": "0:20"})
    assert failed.returncode != 0
    (run,) = job_runs(workdir)
    assert run.info.status == "FAILED"
    again = run_runner(argv, workdir)
    assert "resuming" in again.stdout, again.stdout[-2000:]
    resumed = finished_on_gpu(workdir, again)
    assert resumed.info.run_id == run.info.run_id
    steps = [m.step for m in metric_history(workdir, run.info.run_id, "train_loss")]
    assert steps == sorted(set(steps)) and len(steps) == 2  # one point per epoch, none twice
