"""The built wheel works outside the checkout (issue 13): it carries every config and paper preset, and the
installed `runner` composes its config and trains 2 steps from an unrelated directory.

The wheel is built offline from a copy of the sources (no build isolation, no index: the setuptools of this
environment) so the build neither writes build/ into the checkout nor picks up a stale build/lib there. It
is installed with --no-deps into a temporary --target beside this environment (torch, hydra, mlflow come from
the environment; `runner` from the target, which PYTHONPATH puts first), which keeps the test fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import CONF_DIR, ROOT, mlflow_runs

pytestmark = pytest.mark.e2e  # pip and `runner` in subprocesses

TWO_STEPS = [
    "model.width=2",
    "dataset.subset=256",
    "dataset.val_split=64",
    "dataset.test_subset=64",
    "trainer.max_steps=2",
    "trainer.epochs=1",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "tracking.log_checkpoint=false",
]


def pip(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--disable-pip-version-check", "-q"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "runner", src / "runner", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(
        ROOT / "hydra_plugins", src / "hydra_plugins", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-build-isolation", "--wheel-dir", str(out), str(src), cwd=src)
    (built,) = out.glob("runner-*.whl")
    return built


@pytest.fixture(scope="module")
def target(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    pip("install", "--target", str(site), str(wheel), cwd=site)
    return site


def run_installed(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python <args>` from `cwd` with only the installed wheel on PYTHONPATH (the checkout is not reachable)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), PYTHONUNBUFFERED="1", COLUMNS="200", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_wheel_carries_every_config_and_preset(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    in_wheel = {n for n in names if n.endswith(".yaml")}
    in_checkout = {f"runner/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*.yaml")}
    assert in_wheel == in_checkout
    assert {"runner/conf/config.yaml", "runner/conf/hydra/launcher/slurm.yaml"} <= in_wheel
    assert any(n.startswith("runner/conf/experiment/") for n in in_wheel)  # the paper presets
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert (
        "runner = runner.cli.main:run" in scripts and "runner-report = runner.analysis.report:main" in scripts
    )


def test_installed_runner_composes_and_trains_two_steps_outside_the_checkout(
    target: Path, tmp_path: Path
) -> None:
    where = run_installed(["-c", "import runner, runner.cli.main; print(runner.__file__); print(runner.config.CONF_DIR)"],
                          target, tmp_path)  # fmt: skip
    assert where.returncode == 0, where.stderr[-3000:]
    module, conf = where.stdout.split()
    assert Path(module).is_relative_to(target) and Path(conf).is_relative_to(target), where.stdout
    assert not Path(module).is_relative_to(ROOT)

    printed = run_installed(["-m", "runner.cli.main", "--cfg", "job"], target, tmp_path)
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "model:" in printed.stdout and "name: resnet20" in printed.stdout and "seed: 0" in printed.stdout

    done = run_installed(["-m", "runner.cli.main", *TWO_STEPS], target, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FINISHED"
