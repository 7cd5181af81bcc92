"""hydra/launcher=gpus: each concurrent sweep job on its own GPU(s), the rest queued (runner/run/slots.py).

No GPU here: the launcher is given a fake list (hydra.launcher.gpus=[0,1,2,3]) and the jobs train on the
CPU; what is checked is which CUDA_VISIBLE_DEVICES each job received (the launcher's gpu-slots.jsonl and
each run's MLflow tag) and that no two jobs that ran at the same time shared a device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose, mlflow_runs, run_runner

from runner.run import slots as gpu_launcher
from runner.run.slots import claim_slot, device_slots, visible_gpus

FAKE_GPUS = "hydra.launcher.gpus=[0,1,2,3]"
SMALL = [
    *TINY,
    "model.width=2",
    "trainer.max_steps=2",
    "trainer.accelerator=cpu",
    "tracking.log_checkpoint=false",
]


def test_slots_cut_the_gpus_into_groups_of_trainer_devices():
    gpus = ["0", "1", "2", "3"]
    assert device_slots(gpus, 1) == ["0", "1", "2", "3"]
    assert device_slots(gpus, 2) == ["0,1", "2,3"]
    assert device_slots(gpus, 3) == ["0,1,2"]  # GPU 3 left idle: a job needs 3
    assert device_slots(gpus, "auto") == ["0,1,2,3"]
    assert device_slots(gpus, 2, jobs_per_gpu=2) == ["0,1", "2,3", "0,1", "2,3"]  # spread out first
    with pytest.raises(ValueError, match="trainer.devices=5 but hydra.launcher.gpus has 4"):
        device_slots(gpus, 5)


def test_visible_gpus_from_the_option_then_cuda_visible_devices(monkeypatch):
    assert visible_gpus([0, 1]) == ["0", "1"]
    assert visible_gpus("2, 3") == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # the sweep's own restriction: physical ids 4 and 6
    assert visible_gpus(None) == ["4", "6"]
    with pytest.raises(ValueError, match="no GPU is visible"):
        visible_gpus([])


def test_the_launcher_config_takes_its_group_size_from_trainer_devices():
    cfg = compose(["hydra/launcher=gpus", "trainer.devices=2"], hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.runner_gpu_launcher.gpu_launcher.GpuLauncher"
    assert launcher.devices == 2 and launcher.gpus is None and launcher.jobs_per_gpu == 1


def test_a_slot_is_held_by_one_process_for_its_whole_life(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_launcher, "_held", {})
    locks = str(tmp_path / "locks")
    try:
        assert claim_slot(locks, 2) == 0
        assert claim_slot(locks, 2) == 0  # the same slot for every later job of this process
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from runner.run.slots import claim_slot; print(claim_slot({locks!r}, 2))",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.stdout.strip() == "1", other.stderr  # slot 0 is locked by this process
    finally:
        for _, fd in gpu_launcher._held.values():
            os.close(fd)


# --- through the real `runner` (e2e) ---------------------------------------------------------------------
def sweep_log(workdir: Path) -> list[dict]:
    (log,) = workdir.glob(f"multirun/*/*/{gpu_launcher.LOG_NAME}")
    return [json.loads(line) for line in log.read_text().splitlines()]


def check_no_shared_device(jobs: list[dict], limit: int) -> int:
    """No two overlapping jobs share a GPU, at most `limit` run at once; the most that ran at once."""
    most = 0
    for job in jobs:
        running = [j for j in jobs if j["start"] <= job["start"] < j["end"]]  # incl. itself
        devices = [d for j in running for d in j["devices"].split(",")]
        assert len(devices) == len(set(devices)), f"GPU shared at t={job['start']}: {running}"
        most = max(most, len(running))
    assert most <= limit, f"{most} jobs ran at once, more than the {limit} slots"
    return most


def check_runs_tagged(workdir: Path, jobs: list[dict]) -> None:
    """Every job finished in its MLflow run under the sweep's parent, tagged with the devices the launcher gave
    it (job i = seed i)."""
    runs = mlflow_runs(workdir)
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep") == "parent"]
    children = [r for r in runs if r is not parent]
    assert len(children) == len(jobs) and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {
        parent.info.run_id
    }  # found by the workers
    tagged = {int(r.data.params["seed"]): r.data.tags["runner.cuda_visible_devices"] for r in children}
    assert tagged == {j["job"]: j["devices"] for j in jobs}


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.cluster  # several processes per job on 2 cores: make test-cluster (make test keeps to 12 min)
def test_three_jobs_on_two_gpus_run_two_at_a_time_each_on_its_own(workdir):
    """More jobs than slots: two run side by side, each on its own GPU, and the third waits for a free one
    in a worker that keeps its GPU (2 fake GPUs: each worker costs a process that imports torch and MLflow)."""
    result = run_runner(
        ["-m", "hydra/launcher=gpus", "hydra.launcher.gpus=[0,1]", *SMALL, "seed=0,1,2"], cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sweep_log(workdir)
    assert sorted(j["job"] for j in jobs) == [0, 1, 2]
    assert {j["devices"] for j in jobs} == {"0", "1"}
    assert check_no_shared_device(jobs, limit=2) == 2  # and they really ran side by side
    by_process: dict[int, str] = {}
    for j in jobs:  # a worker process never changes GPU between jobs (CUDA reads the variable once)
        assert by_process.setdefault(j["pid"], j["devices"]) == j["devices"]
    assert len(by_process) < len(jobs)  # a worker ran a second job: the check above had something to check
    check_runs_tagged(workdir, jobs)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.cluster  # several processes per job on 2 cores: make test-cluster (make test keeps to 12 min)
def test_two_device_jobs_get_pairs_of_gpus(workdir):
    """trainer.devices=2: slots (0,1) and (2,3); each job is a real 2-process DDP job (gloo on the CPU)."""
    result = run_runner(
        ["-m", "hydra/launcher=gpus", FAKE_GPUS, *SMALL, "trainer.devices=2", "seed=0,1"], cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sweep_log(workdir)
    assert sorted(j["devices"] for j in jobs) == ["0,1", "2,3"]
    assert check_no_shared_device(jobs, limit=2) == 2
    check_runs_tagged(workdir, jobs)
