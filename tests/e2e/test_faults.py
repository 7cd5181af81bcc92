"""Faults (issue 7): kills, signals, divergence, refused checkpoints, a tracking store that stops taking writes.

Every test drives the real `runner` entry point in a subprocess and then reads the MLflow store and the
checkpoint files. Runs are tiny (TINY from conftest); each workdir starts from a copy of an empty,
already-migrated MLflow store so that no test pays MLflow's schema migrations.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, compose, metric_history, mlflow_runs, run_in_process, run_runner

# One torch thread per runner: these tests start many processes, and on a busy 2-core machine a
# multi-threaded torch spends most of its time spinning (a tiny step is ~5x slower).
ENV = {"PYTHONUNBUFFERED": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
EVERY_STEP = "trainer.ckpt_minutes=0.000001"  # a checkpoint after every step (not hashed: same job)

pytestmark = pytest.mark.e2e  # every test here starts `runner` in a subprocess


@pytest.fixture
def work(tmp_path: Path, empty_store: Path) -> Path:
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return tmp_path


def args(*extra: str, epochs: int = 3) -> list[str]:
    """TINY for `epochs` epochs, with `extra` (which may set a key TINY sets)."""
    given = {a.split("=")[0] for a in (*extra, "trainer.epochs=")}
    return [a for a in TINY if a.split("=")[0] not in given] + [f"trainer.epochs={epochs}", *extra]


def start(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner.cli.main", *argv],
        cwd=cwd,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def checkpoints(cwd: Path) -> list[Path]:
    return sorted((cwd / "checkpoints").glob("*/*/last.pt"))


def read_ckpt(path: Path) -> dict | None:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return None


def wait_until(proc: subprocess.Popen[str], condition, what: str, limit: float = 300) -> None:
    """Poll until `condition()` holds; fail (with the output) if the process ends first."""
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"runner ended (rc {proc.returncode}) before {what}\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def saves_seen(cwd: Path, count: int):
    """True once `count` checkpoint writes were seen: each atomic save replaces the file (a new inode)."""
    seen: list[int] = []

    def check() -> bool:
        paths = checkpoints(cwd)
        try:
            inode = paths[0].stat().st_ino if paths else None
        except FileNotFoundError:
            inode = None
        if inode is not None and (not seen or seen[-1] != inode):
            seen.append(inode)
        return len(seen) >= count

    return check


def child_runs(cwd: Path) -> list:
    return [r for r in mlflow_runs(cwd) if "runner.config_hash" in r.data.tags]


def assert_clean_history(cwd: Path, run_id: str, epochs: int) -> list:
    """One point per epoch, at increasing steps, none duplicated."""
    history = metric_history(cwd, run_id, "train_loss")
    steps = [m.step for m in history]
    assert len(steps) == epochs and steps == sorted(set(steps)), steps
    return history


def only_checkpoint(cwd: Path) -> dict:
    (path,) = checkpoints(cwd)
    return read_ckpt(path)


@pytest.mark.slow
def test_sigkill_inside_epoch_2_resumes_to_the_same_weights_here_and_from_a_copied_checkpoint(
    tmp_path: Path, empty_store: Path
) -> None:
    """Killed outright inside epoch 2 (a checkpoint after every step), the same command resumes it in its run,
    and the checkpoint carried to another machine (another store) continues there in a new run: both end
    with the uninterrupted run's metrics and weights, bit for bit."""
    import torch

    # log_every=1: every step ends an interval, so the kill never splits one (a resumed epoch's first interval
    # counts only the steps after the checkpoint: runner/train/loop.py, Interval) and every curve compares.
    argv = args("trainer.deterministic=true", "trainer.log_every=1", EVERY_STEP, epochs=3)
    reference, killed, elsewhere = tmp_path / "reference", tmp_path / "killed", tmp_path / "elsewhere"
    for d in (reference, killed, elsewhere):
        d.mkdir()
        shutil.copy(empty_store, d / "mlflow.db")
    done = run_runner([a for a in argv if a != EVERY_STEP], reference, ENV)  # ckpt_minutes: the same job
    assert done.returncode == 0, done.stderr[-3000:]

    proc = start(argv, killed)
    wait_until(proc, saves_seen(killed, 8), "a checkpoint inside epoch 2")  # 6 steps per epoch
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    state = read_ckpt(checkpoints(killed)[0])
    assert state is not None and 1 <= state["train_state"]["epoch"] < 3, "killed outside epoch 2"
    assert [r.info.status for r in mlflow_runs(killed)] == ["RUNNING"]  # SIGKILL: nobody closed it
    carried = elsewhere / "carried.pt"
    shutil.copy(checkpoints(killed)[0], carried)

    again = run_runner(argv, killed, ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout
    runs = mlflow_runs(killed)
    assert [r.info.status for r in runs] == ["FINISHED"]
    ref_run = mlflow_runs(reference)[0]
    for key in (
        "train_loss",
        "train_error",
        "train_loss_interval",
        "val_top1_error",
        "test_top1_error",
        "lr",
    ):
        resumed = [(m.step, m.value) for m in metric_history(killed, runs[0].info.run_id, key)]
        uninterrupted = [(m.step, m.value) for m in metric_history(reference, ref_run.info.run_id, key)]
        assert resumed == uninterrupted, key  # complete, no duplicates, same values
    assert_clean_history(killed, runs[0].info.run_id, 3)

    continued = run_runner([*argv, f"resume_from={carried}"], elsewhere, ENV)
    assert continued.returncode == 0, continued.stderr[-3000:]
    (run,) = child_runs(elsewhere)
    assert run.info.status == "FINISHED" and run.data.tags["runner.resumed_from"] == str(carried)
    still_to_train = [6 * e for e in range(state["train_state"]["epoch"] + 1, 4)]  # 6 steps an epoch
    assert [m.step for m in metric_history(elsewhere, run.info.run_id, "train_loss")] == still_to_train

    a = only_checkpoint(reference)
    for other in (killed, elsewhere):
        b = only_checkpoint(other)
        assert (
            a["train_state"]["global_step"] == b["train_state"]["global_step"]
            and a["model"].keys() == b["model"].keys()
        )
        for name, tensor in a["model"].items():
            assert torch.equal(tensor, b["model"][name]), (other.name, name)


@pytest.mark.slow
def test_interrupted_sweep_skips_the_finished_job_and_completes_the_rest(work: Path) -> None:
    argv = ["--multirun", "optim.lr=0.05,0.06,0.07", *args(epochs=3)]
    proc = start(argv, work)
    wait_until(proc, lambda: len(checkpoints(work)) >= 2, "the second job's first checkpoint (epoch 1 of 3)")
    proc.send_signal(signal.SIGKILL)  # preemption in the middle of job 2
    proc.communicate()
    first = child_runs(work)
    assert [r.info.status for r in first][:1] == ["FINISHED"] and len(first) == 2, [
        r.info.status for r in first
    ]

    again = run_runner(argv, work, ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped") == 1 and again.stdout.count("resuming") == 1, again.stdout[-3000:]
    runs = child_runs(work)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    job1 = next(r for r in runs if r.info.run_id == first[0].info.run_id)
    assert job1.info.end_time == first[0].info.end_time  # not trained again
    for run in runs:
        assert_clean_history(work, run.info.run_id, 3)
    # The re-run sweep's parent holds all three jobs (the skipped and the resumed one too): its report is whole.
    parents = [r for r in mlflow_runs(work) if r.data.tags.get("runner.sweep") == "parent"]
    newest = max(parents, key=lambda r: r.info.start_time)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {newest.info.run_id}


@pytest.mark.slow
def test_sigterm_and_a_store_that_stops_taking_writes_each_keep_a_checkpoint_and_the_last_run_finishes(
    work: Path,
) -> None:
    """One run stopped twice, each at a new checkpoint: by SIGTERM (what SLURM and a preemption send: the run
    closes KILLED, exit 128 + 15), and by its store refusing every metric write (the job fails in one line,
    exit 2, the last checkpoint intact). The third command, the store back, resumes it to the end. SIGINT takes
    the same handler: tests/unit/train/test_loop.py sends real ones to the loop, tests/unit/run/test_job.py
    checks the exit status and the run's status for each signal."""
    epochs = 5  # 6 steps an epoch; a checkpoint at each epoch's end
    argv = args("tracking.retry_seconds=[0.1,0.1]", epochs=epochs)
    proc = start(argv, work)
    wait_until(proc, saves_seen(work, 1), "a checkpoint before SIGTERM")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err[-3000:])
    assert "stopped by SIGTERM" in err and "checkpoint kept" in err and "Traceback" not in err
    run = mlflow_runs(work)[-1]
    assert (run.info.status, run.data.tags["runner.status"]) == ("KILLED", "killed")
    state = read_ckpt(checkpoints(work)[0])
    assert state is not None and 0 < state["train_state"]["global_step"] < epochs * 6

    before = read_ckpt(checkpoints(work)[0])["train_state"]["global_step"]
    proc = start(argv, work)
    wait_until(proc, saves_seen(work, 2), "a new checkpoint before the store goes away")
    db = sqlite3.connect(work / "mlflow.db", timeout=30)
    db.execute("ALTER TABLE metrics RENAME TO metrics_away")  # every metric write now fails at once
    db.commit()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    assert "MLflow log metrics failed 3 times" in err and "Traceback" not in err, err[-3000:]
    state = read_ckpt(checkpoints(work)[0])
    assert state is not None and state["train_state"]["global_step"] > before  # the last checkpoint is intact

    db.execute("ALTER TABLE metrics_away RENAME TO metrics")  # the store is back: the re-run resumes
    db.commit()
    db.close()
    last = run_runner(argv, work, ENV)
    assert last.returncode == 0 and "resuming" in last.stdout, last.stderr[-3000:]
    runs = mlflow_runs(work)
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert_clean_history(work, runs[0].info.run_id, epochs)


# A diverging job in a sweep (a result: FAILED, tagged with its step; the sweep goes on, exits 1, no traceback):
# tests/e2e/test_presets.py::test_smoke_sweep_with_a_diverging_job_goes_on_and_reports_it, which trains it anyway.


def _config_hash(argv: list[str]) -> str:
    from runner.config.identity import config_hash

    return config_hash(compose(argv))


def _refused(cwd: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """`runner <argv>` in `cwd`, run in this process (a refusal is the job's decision, not its process's: no
    `runner` to start for each); it must exit 2 with one line on stderr, which is returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run_in_process(cwd, argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(lines) == 1, err[-3000:]
    return lines[0]


@pytest.mark.slow
def test_truncated_and_foreign_checkpoints_are_refused_naming_the_file(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.train import checkpoint

    argv = args(epochs=1)
    chash = _config_hash(argv)
    # A run of this config was interrupted, and its checkpoint was cut short (a full disk, a crash in a copy).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    exp = client.create_experiment("runner", artifact_location=(work / "mlartifacts").as_uri())
    run = client.create_run(exp, tags={"runner.config_hash": chash})
    client.set_terminated(run.info.run_id, "KILLED")
    auto = work / "checkpoints" / "runner" / chash / "last.pt"
    auto.parent.mkdir(parents=True)
    state = {k: 0 for k in checkpoint.KEYS} | {
        "format": checkpoint.FORMAT,
        "config_hash": chash,
        "run_id": run.info.run_id,
    }
    checkpoint.save(auto, state)
    auto.write_bytes(auto.read_bytes()[:200])
    line = _refused(work, argv, capsys)
    assert str(auto) in line and "cannot be read" in line, line
    assert len(mlflow_runs(work)) == 1 and auto.exists()  # no new run; the file is not silently replaced

    # resume_from: an explicit file of another config (another model, another lr, ...).
    auto.unlink()
    foreign = work / "foreign.pt"
    checkpoint.save(foreign, state | {"config_hash": "0123456789abcdef"})
    line = _refused(work, [*argv, f"resume_from={foreign}"], capsys)
    assert str(foreign) in line and "belongs to another config" in line, line
    assert len(mlflow_runs(work)) == 1 and checkpoints(work) == []

    # A checkpoint of the older format (running sums by position) is refused, never read by position.
    older = work / "older.pt"
    checkpoint.save(older, {k: 0 for k in checkpoint.KEYS if k != "train_state"} | {"partial": [0, 0, 0]})
    line = _refused(work, [*argv, f"resume_from={older}"], capsys)
    assert str(older) in line and "older runner" in line, line
    assert len(mlflow_runs(work)) == 1 and checkpoints(work) == []


def _lock_held_by(cwd: Path, pid: int):
    """True once process `pid` holds a config's lock (runner/run/job.py: one_writer writes its pid there)."""

    def check() -> bool:
        return any(
            p.read_text().startswith(f"process {pid} ") for p in (cwd / "checkpoints").glob("*/*/writer.lock")
        )

    return check


@pytest.mark.slow
def test_a_job_already_training_is_refused_to_a_second_command_and_a_relaunched_sweep_trains_no_job_twice(
    work: Path,
) -> None:
    """A sweep of two jobs is training its first; meanwhile the first job's own command (refused in one line:
    its config has a writer) and the same sweep relaunched (whichever of the two sweeps reaches a job the
    other is training leaves it to the other). Each job trains once, in one run."""
    # The first job long (24 epochs), so it still trains when the second command decides on a quiet machine;
    # the second short (3).
    common = [a for a in args() if not a.startswith("trainer.epochs=")]
    sweep = ["--multirun", "trainer.epochs=24,3", *common]
    first = start(sweep, work)
    wait_until(first, _lock_held_by(work, first.pid), "the first sweep's first job")
    relaunched = start(sweep, work)
    second = run_runner(["trainer.epochs=24", *common], work, ENV)  # the first job's command, while it trains
    assert first.poll() is None, "the first sweep ended before the second command decided: make it longer"
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 2 and len(lines) == 1, second.stderr[-3000:]
    assert f"this config is being trained by process {first.pid} (runner " in lines[0], lines[0]

    _, relaunched_err = relaunched.communicate(timeout=600)
    _, err = first.communicate(timeout=600)
    said = relaunched_err + err  # whichever reached a job the other was training refused it, naming the other
    assert f"being trained by process {first.pid} " in said and "Traceback" not in said, said[-3000:]
    runs = child_runs(work)
    hashes = [r.data.tags["runner.config_hash"] for r in runs]
    assert len(hashes) == 2 and len(set(hashes)) == 2, hashes  # each job trained once, by one of the sweeps
    assert all(r.info.status == "FINISHED" for r in runs) and len(checkpoints(work)) == 2
