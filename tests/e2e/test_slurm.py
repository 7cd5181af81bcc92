"""hydra/launcher=slurm through a real SLURM controller: the one-node cluster of scripts/slurm_cluster.sh
(`make slurm`), started for this module under its own state directory on free ports, stopped after it.

Jobs train on the CPU (hydra/launcher=slurm_cpu, gloo for the 2-task job). A requeued job is held by SLURM
for about 2 minutes before it may start again (its BeginTime); the tests release it at once with
`scontrol update StartTime=now`, as an operator would. Each test skips, saying why, when the cluster cannot
start (not root, no apt-get, a port taken).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, TINY, metric_history, mlflow_runs, run_runner

# One cluster for the module, on one pytest-xdist worker (make test runs --dist loadgroup).
pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.xdist_group("slurm")]

SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
SLURM = ["-m", "hydra/launcher=slurm_cpu", "trainer.accelerator=cpu", "tracking.log_checkpoint=false"]
STEPS_PER_EPOCH = 6  # TINY: (512 - 128) training images / batch 64
LOG_EVERY = 2  # TINY's trainer.log_every: a point of the curves every 2 steps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """The cluster's environment (SLURM_CONF) for `runner` and the SLURM commands; skips when it cannot start."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the `slurm` extra is not installed")
    state = Path(tempfile.mkdtemp(prefix="runner-slurm-"))  # not pytest's tmp: munged's user must reach it
    state.chmod(0o755)
    env = {
        **os.environ,
        "STATE": str(state),
        "SLURMCTLD_PORT": str(free_port()),
        "SLURMD_PORT": str(free_port()),
    }
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
        reason = (started.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no SLURM cluster here: scripts/slurm_cluster.sh start failed ({reason})")
    try:
        yield {"SLURM_CONF": str(state / "slurm" / "slurm.conf")}
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


def slurm_cmd(slurm: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        list(args), env={**os.environ, **slurm}, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def wait_for(what: str, check: Callable[[], object], timeout: float = 240) -> object:
    """Poll `check` until it returns something true; fail naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def runner_in_background(
    args: list[str], cwd: Path, slurm: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """`runner <args>` in the background (the sweep process waits for its SLURM jobs), as run_runner starts
    it; killed, by its pid, if the test ends first."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1", **slurm}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.cli.main", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def finish(process: subprocess.Popen[str], timeout: float = 300) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"runner did not finish in {timeout} s:\n{out[-3000:]}")
    assert process.returncode == 0, out[-3000:]
    return out


def job_of(cwd: Path, slurm: dict[str, str]) -> tuple[str, str] | None:
    """(job id, state) of the one SLURM job started from `cwd`; None while there is none."""
    lines = slurm_cmd(slurm, "squeue", "-h", "-o", "%A %T %Z").splitlines()
    jobs = [line.split()[:2] for line in lines if line.split()[2] == str(cwd)]
    return (jobs[0][0], jobs[0][1]) if jobs else None


def sweep_runs(cwd: Path) -> tuple[object, list]:
    runs = mlflow_runs(cwd)
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep") == "parent"]
    return parent, [r for r in runs if r is not parent]


def job_logs(cwd: Path) -> str:
    """Everything the SLURM jobs printed (submitit appends each attempt of a requeued job to its files)."""
    return "".join(p.read_text() for p in sorted(cwd.glob("multirun/*/*/.submitit/*/*_log.*")))


def first_epoch_done(cwd: Path) -> bool:
    """The job's first checkpoint is there: it trains its second epoch (of 12; cheap to poll, unlike the store)."""
    return bool(list(cwd.glob("checkpoints/*/*/last.pt")))


def check_steps_contiguous(cwd: Path, run_id: str, total: int, stopped: int) -> list[int]:
    """Every point of the step curves once: no repeated and no missing step across the interruption (the
    interval that a signal ends early is a point of its own, at the step it stopped at)."""
    points = [m.step for m in metric_history(cwd, run_id, "train_loss_interval")]
    assert points == sorted({*range(LOG_EVERY, total + 1, LOG_EVERY), stopped}), points
    epochs = [m.step for m in metric_history(cwd, run_id, "train_loss")]
    assert epochs == list(range(STEPS_PER_EPOCH, total + 1, STEPS_PER_EPOCH)), epochs
    return points


def test_a_sweep_submits_one_job_per_config_under_one_parent(workdir, slurm):
    result = run_runner([*SLURM, *TINY, "seed=0,1"], cwd=workdir, env=slurm)
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(workdir)
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1"]
    # one SLURM job (array element) per config, each with its own log and result
    elements = sorted(p.name for p in workdir.glob("multirun/*/*/.submitit/*_*") if p.is_dir())
    assert len(elements) == 2 and len({e.split("_")[0] for e in elements}) == 1, elements
    assert all(list(workdir.glob(f"multirun/*/*/.submitit/{e}/{e}_0_result.pkl")) for e in elements)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    assert "report.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "| seeds |" in result.stdout  # the report, printed at the end of the sweep


def test_two_tasks_train_as_two_ranks_in_one_run(workdir, slurm):
    result = run_runner([*SLURM, *TINY, "trainer.devices=2"], cwd=workdir, env=slurm)
    assert result.returncode == 0, result.stderr[-3000:]
    _, children = sweep_runs(workdir)
    (run,) = children
    assert run.info.status == "FINISHED"
    assert run.data.tags["runner.world_size"] == "2" and run.data.tags["runner.devices"] == "2"
    assert [m.step for m in metric_history(workdir, run.info.run_id, "train_loss")] == [STEPS_PER_EPOCH // 2]
    logs = job_logs(workdir)
    assert "global_rank=0(2)" in logs and "global_rank=1(2)" in logs  # two SLURM tasks, one per rank


def release_requeued(workdir: Path, slurm: dict[str, str]) -> None:
    """Wait until the requeued job is back in the queue; start it now (SLURM holds it ~2 min: BeginTime)."""
    job = wait_for(
        "the requeued job to be pending", lambda: (job_of(workdir, slurm) or ("", ""))[1] == "PENDING"
    )
    assert job
    job_id, _ = job_of(workdir, slurm)
    slurm_cmd(slurm, "scontrol", "update", f"jobid={job_id}", "StartTime=now")


def check_one_run_resumed(workdir: Path, signal_name: str, total: int) -> tuple[int, list[int]]:
    """One MLflow run, finished, stopped once by `signal_name` and resumed from its checkpoint in that run,
    its step curves without a gap or a repeat; (the step it stopped at, the curve's steps)."""
    _, children = sweep_runs(workdir)
    (run,) = children  # the requeued job went on in the run it started
    assert run.info.status == "FINISHED" and run.data.tags["runner.status"] == "finished"
    logs = job_logs(workdir)
    stopped = re.findall(rf"stopped by {signal_name} at step (\d+)", logs)
    assert len(stopped) == 1, logs[-3000:]
    assert re.search(rf"resuming .* in run {run.info.run_id} from .*last\.pt", logs), logs[-3000:]
    step = int(stopped[0])
    assert 0 < step < total
    return step, check_steps_contiguous(workdir, run.info.run_id, total, step)


def interrupt_after_first_epoch(
    workdir, slurm, command: list[str], signal_name: str
) -> tuple[str, int, list[int]]:
    """A 12-epoch job, interrupted by `command <job id>` once its first epoch is logged and released when the
    scheduler requeues it; (job id, the step it stopped at, the logged steps) once it resumed and finished."""
    epochs = 12
    with runner_in_background([*SLURM, *TINY, f"trainer.epochs={epochs}"], workdir, slurm) as process:
        wait_for("the first epoch", lambda: first_epoch_done(workdir))
        job_id, _ = job_of(workdir, slurm)
        slurm_cmd(slurm, *command, job_id)
        release_requeued(workdir, slurm)
        finish(process)
    step, points = check_one_run_resumed(workdir, signal_name, epochs * STEPS_PER_EPOCH)
    return job_id, step, points


def test_a_requeued_job_resumes_in_its_run_from_the_checkpoint(workdir, slurm):
    """`scontrol requeue`, as preemption does: SIGTERM → checkpoint, run KILLED; the scheduler requeues."""
    _, step, points = interrupt_after_first_epoch(workdir, slurm, ["scontrol", "requeue"], "SIGTERM")
    print(f"requeued at step {step}; train_loss_interval at steps {points}")


def test_a_job_signalled_before_its_time_limit_requeues_itself_and_resumes(workdir, slurm):
    """The time limit: the sbatch script asks for --signal=USR2@<signal_delay_s> (see the plan test), and
    SLURM's controller delivers it to every task of the job, as `scancel --signal=USR2` does here (the
    controller checks limits only every 30 s: a real limit would make the test's timing a guess). The
    runner checkpoints, marks the run KILLED and requeues its own job, which resumes in the same run."""
    job_id, step, points = interrupt_after_first_epoch(
        workdir, slurm, ["scancel", "--signal=USR2"], "SIGUSR2"
    )
    assert f"SLURM job {job_id} requeued" in job_logs(workdir)
    print(f"signalled at step {step}; train_loss_interval at steps {points}")


def test_plan_shows_the_sbatch_script_it_would_submit(workdir):
    result = run_runner(["--plan", *SLURM, *TINY, "seed=0,1", "hydra.launcher.timeout_min=30"], cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "plan: 2 job(s), 2 train" in out and "2 Slurm job(s), submitted as:" in out
    for line in (
        "--array=0-1%2",
        "--ntasks-per-node=1",
        "--cpus-per-task=1",
        "--time=30",
        "--signal=USR2@120",
    ):
        assert f"#SBATCH {line}\n" in out, out
    assert "#SBATCH --requeue\n" in out and "--gpus-per-node" not in out
    assert "-m submitit.core._submit" in out
    assert not (workdir / "multirun").exists() and mlflow_runs(workdir) == []  # nothing submitted or written


def test_only_the_time_limit_signal_requeues_and_only_from_rank_0(tmp_path, monkeypatch):
    """runner/run/ddp.py: USR1/USR2 (before the time limit) → rank 0 runs `scontrol requeue <job>`; SIGTERM
    (preemption, scancel) is left to the scheduler. A fake scontrol records what it was asked."""
    calls = tmp_path / "calls"
    fake = tmp_path / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.delenv("RANK", raising=False)
    from runner.run.ddp import requeue_after_time_limit

    previous = signal.getsignal(signal.SIGTERM)  # the requeue ignores SIGTERM from then on
    try:
        requeue_after_time_limit(signal.SIGTERM)
        assert not calls.exists()
        requeue_after_time_limit(signal.SIGUSR2)
        assert calls.read_text() == "requeue 41\n"
        monkeypatch.setenv("RANK", "1")
        requeue_after_time_limit(signal.SIGUSR1)
        assert calls.read_text() == "requeue 41\n"  # rank 1 leaves it to rank 0
    finally:
        signal.signal(signal.SIGTERM, previous)
