"""Shared test helpers, written once: paths, the tiny run, composing the config in-process, running the real
`runner` entry point in a subprocess, reading back the MLflow store.

Two tiers (markers in pyproject.toml): `make test-fast` runs the in-process tests for the edit loop; a test
that starts `runner` (or a server, a browser, pip) in a subprocess is marked `e2e` and runs in `make test`,
as do the in-process ones that take seconds: `slow`, and `whole_run` (trains or logs whole runs through an
entry point; `make mutants` runs these). `run_runner` refuses to start from a test not marked `e2e`, so the
fast tier stays fast.
"""

from __future__ import annotations

import copy
import functools
import gc
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

# Hypothesis loads its plugins on import: trio's (trio comes with selenium) registers a Random, which walks the
# whole heap (gc.get_referrers) of a process that has torch imported: 0.5 s a pytest process, for nothing here.
os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "runner" / "conf"  # what runner.config.CONF_DIR names in a checkout (conf/ is a link to it)

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


def images_wrong(error_percent: float, images: int) -> int:
    """The number of misclassified images behind an error rate (%) over `images`: a whole number, or it fails."""
    wrong = error_percent * images / 100
    assert wrong == pytest.approx(round(wrong), abs=1e-3), f"{error_percent} % of {images} images is no count"
    return round(wrong)


def options(group: str) -> list[str]:
    """The options of a config group (`experiment` for the presets): the stems of conf/<group>/*.yaml."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def yaml_option(group: str, option: str) -> dict:
    """conf/<group>/<option>.yaml as a plain dict: the defaults a run composes (read as runner reads it)."""
    from runner.config import parse_yaml

    return parse_yaml((CONF_DIR / group / f"{option}.yaml").read_text())


# The xdist group of the tests that compose every preset: one worker composes each once (see compose).
PRESETS_GROUP = "presets"
# The xdist group of the test modules that open MLflow stores in-process: one worker pays MLflow's import and
# its first store (1-2 s a process on the EPYCs), not both. A module left out still passes: it costs time only.
STORE_GROUP = "store"


def compose(overrides: Sequence[str] = (), *, hydra: bool = False):
    """The config `runner <overrides>` composes, in-process: a resolved plain dict, as a job gets it.

    hydra=True: the DictConfig itself with its `hydra` node (sweeper params, runtime choices), unresolved.

    A copy of what one composition gave the first time these overrides were asked for in this process (Hydra
    takes 0.15-0.3 s a composition, and the tests ask for the presets again and again): the job's config is
    the composed one less its `hydra` node, as Hydra's own compose gives it (runner.config.compose.job_config).
    """
    from omegaconf import OmegaConf

    from runner.config.compose import job_config

    cfg = _composed(tuple(overrides))
    if hydra:
        return copy.deepcopy(cfg)
    return OmegaConf.to_container(job_config(cfg), resolve=True)


@functools.cache
def _composed(overrides: tuple[str, ...]):
    from runner.config.compose import compose as runner_compose

    return runner_compose(overrides, hydra=True)


def pytest_configure(config: pytest.Config) -> None:
    # Collection imports torch, torch._dynamo, Hydra and the test modules: millions of objects that live to the
    # end. With Python's thresholds (a collection each 700 allocations) it walks them again and again:
    # collecting took 3.2-3.5 s a worker with these, 4.0-4.3 s without (AMD EPYC, family 26, 2026-12-08).
    gc.set_threshold(20_000, 20, 100)
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        # A mutant's child, forked from a server that imported torch and every test module: pytest's exit runs a
        # full gc.collect over that whole heap (0.7 s of the child's 1.0 s on the EPYC); frozen, it walks only
        # what this child made (0.3 s a mutant).
        gc.freeze()
    # `make test` runs -m "not claims"; `make test-claims` runs these: a paper's claim measured at a budget
    # where its outcome is settled (minutes of training), which a newcomer's `make test` should not wait for.
    config.addinivalue_line(
        "markers", "claims: a scientific claim at a settled budget (make test-claims; not in make test)"
    )
    config.addinivalue_line(
        "markers",
        "cluster: several processes or machines per job: SLURM, the shared store and server, torchrun, GPU slots (make test-cluster)",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is imported by now (torch, MLflow, Hydra, every test module) lives to the end: frozen, the
    collector no longer walks it, and it runs less often. The tests allocate Hydra compositions by the
    hundred thousand objects; with Python's defaults (a collection each 700 allocations, a full one often)
    the edit loop took 63-66 s on the EPYC, frozen with these thresholds 54-55 s (make test-fast, 2026-12-07);
    the thresholds are set from pytest_configure on."""
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A pytest-xdist worker that has sent its last report (`workerfinished`, written to the pipe before its
    unconfigure) leaves at once: its interpreter's teardown, collections over a heap holding torch, MLflow and
    Hydra, took 3-5 s that the whole run waited for, and tells the main process nothing."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# The test being run (set before its fixtures): run_runner checks that it is marked e2e.
_current: dict[str, pytest.Item] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    _current["item"] = item


# `make mutants`: mutmut runs each mutant against the tests that cover its function, stopping at the first
# failure, in the order it lists them (a set's order). Fastest first, by the durations its stats run
# recorded, makes a killed mutant cost its quickest failing test. A survivor runs them all, minutes where a
# function is covered by every training test: MUTANT_TEST_SECONDS caps each mutant's tests at that much of their
# recorded time (the fastest first, at least one), so a mutant that only a slower test would kill counts as
# surviving — the score is then a lower bound.
_MUTMUT_STATS = ROOT / "mutmut-stats.json"  # ROOT is the mutants/ copy while mutmut runs
_TEST_SECONDS: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "MUTANT_UNDER_TEST" in os.environ:  # every phase of `make mutants` (clean run, stats, mutants) sets it
        # A `serial` test must not share the machine, and mutmut runs two mutants at once.
        serial = [item for item in items if item.get_closest_marker("serial")]
        if serial:
            config.hook.pytest_deselected(items=serial)
            items[:] = [item for item in items if not item.get_closest_marker("serial")]
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "") and _MUTMUT_STATS.exists():
        if not _TEST_SECONDS:
            _TEST_SECONDS.update(json.loads(_MUTMUT_STATS.read_text())["duration_by_test"])
        items.sort(key=lambda item: _TEST_SECONDS.get(item.nodeid, 0.0))
        budget, spent = float(os.environ.get("MUTANT_TEST_SECONDS", "inf")), 0.0
        for kept, item in enumerate(items):
            spent += _TEST_SECONDS.get(item.nodeid, 0.0)
            if kept and spent > budget:
                config.hook.pytest_deselected(items=items[kept:])
                del items[kept:]
                break


def run_runner(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`runner <args>` in `cwd`, through the installed console script's module, output captured."""
    item = _current.get("item")
    if item is not None and item.get_closest_marker("e2e") is None:
        pytest.fail(
            f"{item.nodeid} starts `runner` in a subprocess: mark it @pytest.mark.e2e "
            "(`make test-fast` leaves those to `make test`)",
            pytrace=False,
        )
    # One torch thread: tiny models gain nothing from two, and lose a lot when the machine is busy.
    full_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "runner.cli.main", *args],
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


@pytest.fixture(autouse=True)
def environment_restored() -> Iterator[None]:
    """Each test leaves os.environ as it found it. The code under test sets variables for the processes it
    starts (a sweep's parent run and swept keys, a job's threads, the driver's timeout) in this process, and
    monkeypatch restores only what a test set through it: a sweep callback's RUNNER_SWEPT_KEYS, left behind by
    a test of it, once renamed a later test's run in the same worker."""
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """In-process tests use tiny tensors: one thread is fastest, and several spin-wait on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _migrated_store_template() -> Path:
    """An empty MLflow sqlite store with its schema migrated, kept per MLflow version in the user's cache: the
    migrations take seconds (tens on a busy 2-core machine), and every pytest process (each xdist worker, each
    mutant `make mutants` tests) would pay them again. Built once under a file lock, moved into place whole."""
    import mlflow
    from filelock import FileLock

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "runner-tests"
    cache.mkdir(parents=True, exist_ok=True)
    template = cache / f"mlflow-{mlflow.__version__}.db"
    with FileLock(str(template) + ".lock"):
        if not template.exists():
            from mlflow.tracking import MlflowClient

            partial = template.with_suffix(f".{os.getpid()}.tmp")
            MlflowClient(tracking_uri=f"sqlite:///{partial}").search_experiments()  # creates the tables
            os.replace(partial, template)
    return template


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store of this session: copy it to `<dir>/mlflow.db` so that a test (or the `runner`
    it starts there) does not pay MLflow's migrations again."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    shutil.copyfile(_migrated_store_template(), db)
    return db


# The e2e tier's shared sweep: two TINY jobs of two epochs (act=relu,prelu) under one parent run, trained once a
# session by Hydra's parallel launcher (two joblib worker processes, as `make reproduce` runs its presets).
# Tests that only read it take `tiny_sweep`; one that writes (a re-run) copies it first.
TINY_SWEEP = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    *TINY,
    "trainer.epochs=2",
    "act=relu,prelu",
]


def _train_once(
    factory: pytest.TempPathFactory, empty_store: Path, name: str, argv: list[str]
) -> tuple[Path, str]:
    """`runner <argv>` in a fresh directory holding a copy of the empty store: the directory and its stdout.

    Once per `pytest` command, not once per worker: under pytest-xdist (`make test` runs `-n`), the first worker
    to ask trains it in the directory the workers share, under a file lock; the others wait and read it."""
    from filelock import FileLock

    shared = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # each worker's basetemp is a folder of the session's
    cwd, out = shared / name, shared / f"{name}.stdout"
    with FileLock(str(shared / f"{name}.lock")):
        if out.exists():
            return cwd, out.read_text()
        shutil.rmtree(cwd, ignore_errors=True)  # a worker's failed try before
        cwd.mkdir()
        (cwd / "mlflow.db").write_bytes(empty_store.read_bytes())
        result = subprocess.run(
            [sys.executable, "-m", "runner.cli.main", *argv],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )  # not run_runner: a session fixture has no single e2e test to check
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        out.write_text(result.stdout)
    return cwd, result.stdout


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> tuple[Path, str]:
    """The directory holding the shared sweep's store (mlflow.db, mlartifacts, checkpoints) and its output.
    Read it, never write it: copy it (`shutil.copytree`) to run `runner` in it again."""
    return _train_once(tmp_path_factory, empty_store, "tiny-sweep", TINY_SWEEP)


# The e2e tier's shared preset sweep, the verdict engine end to end in seconds: init_depth_small's 30-layer half
# at a budget where nothing is settled (2 inits × 2 seeds of 4 iterations, 2-filter nets), trained once a
# session. What holds at any budget is asserted on it (tests/e2e/test_reproduce.py); its verdicts at the
# preset's own budget are `make reproduce`'s, the 30-layer claim where it is settled `make test-claims`'.
INIT_DEPTH_QUICK = [
    "-m", "+experiment=init_depth_small", "model=plain_deep30", "model.width=2", "dataset.subset=384",
    "dataset.val_split=128", "dataset.test_subset=128", "trainer.epochs=1", "seed=0,1",
]  # fmt: skip


@pytest.fixture(scope="session")
def init_depth_quick(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Path:
    """The directory holding INIT_DEPTH_QUICK's store (experiment init_depth_small). Read it, never write it:
    copy it (`shutil.copytree`) to run `runner` in it again."""
    return _train_once(tmp_path_factory, empty_store, "init-depth-quick", INIT_DEPTH_QUICK)[0]


@pytest.fixture
def workdir(tmp_path: Path, empty_store: Path) -> Path:
    """A directory to start `runner` in, holding only an empty, already-migrated store (mlflow.db, what the
    runner would create there): its runs, checkpoints and outputs land here, and no `runner` started in it
    pays MLflow's schema migrations (~4 s a store on a 2-core machine)."""
    (tmp_path / "mlflow.db").write_bytes(empty_store.read_bytes())
    return tmp_path


def run_in_process(cwd: Path, args: list[str]) -> None:
    """`runner <args>` in `cwd`, in this process through `runner.cli.main` (no subprocess: what a test
    registers is what the runner sees; a test that trains through it is marked `whole_run`)."""
    from hydra.core.global_hydra import GlobalHydra

    from runner.cli.main import main

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", ["runner", *args])
        patch.setenv("OMP_NUM_THREADS", "1")  # the job sets this process's threads: keep one_torch_thread's 1
        try:
            main()  # exits only on an error
        finally:
            GlobalHydra.instance().clear()


def finished_tiny_run(cwd: Path, empty_store: Path, overrides: list[str]):
    """A TINY run with `overrides`, in-process, in a copy of the empty store under `cwd`; its MLflow run."""
    (cwd / "mlflow.db").write_bytes(empty_store.read_bytes())
    run_in_process(cwd, [*TINY, *overrides])
    (run,) = mlflow_runs(cwd)
    assert run.info.status == "FINISHED"
    return run
