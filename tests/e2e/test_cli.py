"""Bad input (issues 3 and 7): one line naming the key and what is allowed, exit 2, no MLflow run, no checkpoint.

Most mistakes are caught by `runner.run.preflight.precheck` before Hydra starts (no torch, no mlflow imported); a few
need the machine or the data (devices, val_split, dataset.root) and are caught in the job, still before any
MLflow run or checkpoint exists.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, mlflow_runs, run_runner

from runner.run.preflight import precheck

# (overrides, the key the error must name, a word of what is allowed)
BEFORE_HYDRA = [
    (["model=nope"], "model", "resnet20"),
    (["optim.lrr=0.1"], "optim.lrr", "unknown key"),
    (["trainer.epochs=abc"], "trainer.epochs", "integer"),
    (["optim.lr=0"], "optim.lr", "> 0"),
    (["optim.lr=-1"], "optim.lr", "> 0"),
    (["trainer.batch_size=0"], "trainer.batch_size", "≥ 1"),
    (["trainer.epochs=0"], "trainer.epochs", "≥ 1"),
    (["--multirun", "optim.lr=0.1,-0.1"], "optim.lr", "> 0"),  # every value of a sweep is checked
    (["tracking.uri=http://127.0.0.1:9"], "tracking.uri", "unreachable"),
    # issue 18: elements of a list, rules between keys, the meta-device dry build, a missing database driver
    (["dataset.augment=[crop,flop]"], "dataset.augment[1]", "one of crop, flip"),
    ([*TINY, "dataset.val_split=600"], "dataset.val_split", "smaller than the training set (512"),
    (["dataset=synthetic", "model=prelu_14", "dataset.image_size=4"], "model=prelu_14", "4×4 input"),
    (["tracking.uri=postgresql+psycopg://u@127.0.0.1/db"], "tracking.uri", "pip install psycopg[binary]"),
]
IN_JOB = [
    (["trainer.accelerator=cpu", "trainer.devices=999"], "trainer.devices", "allowed: 1.."),
    ([*TINY, "dataset.root=no_such_dir"], "dataset.root", "existing directory"),
]


def assert_one_line_error(done: subprocess.CompletedProcess[str], cwd: Path, key: str, allowed: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("runner: error: ") and key in lines[0] and allowed in lines[0], lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert mlflow_runs(cwd) == [] and not (cwd / "checkpoints").exists()


@pytest.mark.e2e
@pytest.mark.parametrize(("overrides", "key", "allowed"), BEFORE_HYDRA, ids=lambda v: str(v)[:40])
def test_bad_overrides_fail_before_hydra(overrides: list[str], key: str, allowed: str, workdir: Path) -> None:
    done = run_runner(overrides, workdir, timeout=60)
    assert_one_line_error(done, workdir, key, allowed)
    assert not (workdir / "outputs").exists() and not (workdir / "multirun").exists()


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "key", "allowed"), IN_JOB, ids=["devices", "root"])
def test_bad_values_the_job_finds_leave_no_run(
    overrides: list[str], key: str, allowed: str, workdir: Path
) -> None:
    done = run_runner(overrides, workdir, {"OMP_NUM_THREADS": "1"})
    assert_one_line_error(done, workdir, key, allowed)


def test_precheck_names_the_key_in_process() -> None:
    assert precheck(["optim.lr=0.1"]) is None
    assert "optim.momentum" in precheck(["optim.momentum=1.5"])
    assert "resume" in precheck(["resume=sometimes"])
    assert "tracking.retry_seconds" in precheck(["tracking.retry_seconds=[1,-1]"])
    assert "act" in precheck(["act=nope"])


@pytest.mark.e2e
@pytest.mark.parametrize("argv", [["optim.lr=-1"], ["--help"]], ids=["config-error", "help"])
def test_help_and_config_errors_import_neither_torch_nor_mlflow(argv: list[str], workdir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner.cli.main", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "hydra" in imported or "runner" in imported, done.stderr[-1000:]  # importtime did report
    assert "torch" not in imported and "mlflow" not in imported
