"""The pre-flight checks what a run will touch, not only what was typed (issue 30): a value beyond the library's
limits, a directory that cannot be written, a launcher without its GPUs, a test view the data set cannot do, a
key no code reads, a tracking store that does not answer. Each is one line and exit 2 from the real entry point
(in-process), with no MLflow run, no checkpoint and no output directory left; and one process at a time writes
a config (runner/run/job.py: one_writer)."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import STORE_GROUP, TINY, mlflow_runs, run_in_process

from runner.errors import RunnerError
from runner.run.preflight import precheck

pytestmark = pytest.mark.xdist_group(STORE_GROUP)  # opens MLflow stores: one worker imports MLflow

HAS_PSYCOPG2 = __import__("importlib.util").util.find_spec("psycopg2") is not None


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a PostgreSQL server that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Each example kind of issue 30: the overrides, and what the one line must say.
KINDS = {
    "seed beyond 64 bits": ([f"seed={2**64}"], "seed=18446744073709551616 is beyond what torch.manual_seed takes"),
    "ckpt dir on a virtual file system": (["trainer.ckpt_dir=/proc/runner-ckpt"], "trainer.ckpt_dir=/proc/runner-ckpt cannot be written"),
    "ckpt dir under a file": (["trainer.ckpt_dir=a-file/ckpt"], "trainer.ckpt_dir=a-file/ckpt cannot be written"),
    "store dir unwritable": (["tracking.uri=sqlite:////proc/runner/mlflow.db"], "tracking.uri=sqlite:////proc/runner/mlflow.db cannot be written"),
    "artifact root unwritable": (["tracking.artifact_root=/proc/runner-art"], "tracking.artifact_root=/proc/runner-art cannot be written"),
    "output dir unwritable": (["hydra.run.dir=/proc/runner-out"], "hydra.run.dir=/proc/runner-out cannot be written"),
    "gpu launcher without GPUs": (["-m", "hydra/launcher=gpus", "seed=0,1"], "hydra/launcher=gpus: no GPU is visible"),
    "ten_crop on a 32x32 set": (["dataset=cifar10", "dataset.test_view=ten_crop"], "dataset.test_view='ten_crop' is not offered for cifar10"),
    "a key no code reads": (["+trainer.epoch=3"], "trainer.epoch is not a key runner reads; trainer keys: "),
    "resume from a missing file": (["resume_from=gone.pt"], "resume_from=gone.pt is not a file"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_stops_in_one_line_before_anything_is_written(
    kind: str,
    tmp_path: Path,
    empty_store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    overrides, said = KINDS[kind]
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # a machine without GPUs, wherever this runs
    with pytest.raises(SystemExit) as stopped:
        run_in_process(tmp_path, [*TINY, *overrides])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stopped.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("runner: error: ") and said in lines[0], lines[0]
    assert mlflow_runs(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "mlflow.db"]  # no checkpoints/, outputs/


def test_the_limit_is_the_librarys_own() -> None:
    """2^64 − 1 is the largest seed torch takes: accepted; one more is refused before torch would raise."""
    import torch

    torch.Generator().manual_seed(2**64 - 1)
    with pytest.raises((ValueError, OverflowError, RuntimeError)):
        torch.Generator().manual_seed(2**64)
    assert precheck([f"seed={2**64 - 1}", f"dataset.split_seed={2**64 - 1}"]) is None
    assert precheck([f"dataset.split_seed={2**64}"]).startswith(
        "dataset.split_seed=18446744073709551616 is beyond"
    )
    lr = precheck(["optim.lr=1" + "0" * 400])  # an int too large for a float: refused, not an OverflowError
    assert lr is not None and lr.endswith("0… (401 characters) is not allowed; expected a finite number > 0")


def test_a_resident_set_offers_whole_and_dense_and_imagenet_its_crops() -> None:
    for dataset in ("fashion_mnist", "cifar10", "synthetic"):
        assert precheck([f"dataset={dataset}", "dataset.test_view=dense"]) is None
        problem = precheck([f"dataset={dataset}", "dataset.test_view=center"])
        assert problem is not None and problem.endswith("allowed: whole, dense"), problem


@pytest.mark.slow  # seconds a test: make test runs it, make test-fast leaves it
@pytest.mark.skipif(not HAS_PSYCOPG2, reason="psycopg2-binary (the dev extra) is not installed")
def test_an_unreachable_postgresql_store_fails_within_15_seconds_in_one_line(silent_server: int) -> None:
    refused = precheck([f"tracking.uri=postgresql://u:secret@127.0.0.1:{_free_port()}/db"])
    assert refused is not None and "\n" not in refused and "Connection refused" in refused
    assert "secret" not in refused  # the password is not printed
    started = time.monotonic()
    hung = precheck([f"tracking.uri=postgresql://u@127.0.0.1:{silent_server}/db"])
    elapsed = time.monotonic() - started
    assert hung is not None and "\n" not in hung and "is unreachable within 5 s" in hung, hung
    assert elapsed < 15, elapsed  # the bound: the driver's timeout, not MLflow's minutes of retries
    assert os.environ.get("PGCONNECT_TIMEOUT") == "5"  # the job's own connections are bounded too


def test_the_gpu_launcher_with_its_gpus_listed_passes_the_pre_flight() -> None:
    assert precheck(["-m", "hydra/launcher=gpus", "hydra.launcher.gpus=[0,1]", "seed=0,1"]) is None
    problem = precheck(
        ["-m", "hydra/launcher=gpus", "hydra.launcher.gpus=[0]", "trainer.devices=2", "seed=0,1"]
    )
    assert problem == "trainer.devices=2 but hydra.launcher.gpus has 1: ['0']"


# --- one writer per config ---------------------------------------------------------------------------------


def _spec(tmp_path: Path) -> types.SimpleNamespace:
    path = tmp_path / "checkpoints" / "runner" / "0123abcd" / "last.pt"
    return types.SimpleNamespace(ckpt_path=path, name="resnet20", resolved={})


def test_a_second_writer_is_refused_naming_the_first_then_takes_the_lock(tmp_path: Path) -> None:
    from runner.run.job import LOCK_NAME, one_writer

    spec = _spec(tmp_path)
    with one_writer(spec):
        with pytest.raises(RunnerError) as refused, one_writer(spec):
            pytest.fail("two writers of one config")
        line = str(refused.value)
        assert f"this config is being trained by process {os.getpid()} (runner " in line and "\n" not in line
        assert str(spec.ckpt_path.parent / LOCK_NAME) in line
    with one_writer(spec):  # released when its holder is done
        pass


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    from runner.run.job import LOCK_NAME, one_writer

    spec = _spec(tmp_path)
    lock = spec.ckpt_path.parent / LOCK_NAME
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(  # another process holds the lock the way one_writer does
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.pwrite(fd, f'process {os.getpid()} (runner seed=0)'.encode(), 0)\nprint('held', flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunnerError, match=f"being trained by process {holder.pid} \\(runner seed=0\\)"):
            with one_writer(spec):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with one_writer(spec):  # the kernel released the dead holder's lock
        assert lock.read_text().startswith(f"process {os.getpid()} ")


# --- what the run will touch, function by function ----------------------------------------------------------

GPU_LAUNCHER = "hydra_plugins.runner_gpu_launcher.gpu_launcher.GpuLauncher"


def job_cfg(uri: str = "sqlite:///mlflow.db", root: str = "mlartifacts", ckpt: str = "checkpoints") -> dict:
    """The keys of a composed config that say where a job writes (conf/tracking/mlflow.yaml's defaults)."""
    return {
        "tracking": {"uri": uri, "artifact_root": root},
        "trainer": {"ckpt_dir": ckpt},
        "resume_from": None,
    }


CKPT = ("trainer.ckpt_dir", "checkpoints")

# (tracking.uri, tracking.artifact_root) → the directories besides the checkpoints, each with the key naming it.
WRITTEN = {
    "sqlite: the database file's folder": ("sqlite:///mlflow.db", "mlartifacts",
        {".": ("tracking.uri", "sqlite:///mlflow.db"), "mlartifacts": ("tracking.artifact_root", "mlartifacts")}),
    "sqlite and file:// at absolute paths": ("sqlite:////srv/db/m.db", "file:///srv/art",
        {"/srv/db": ("tracking.uri", "sqlite:////srv/db/m.db"), "/srv/art": ("tracking.artifact_root", "file:///srv/art")}),
    "MLflow's file store by file://": ("file:///srv/mlruns", "mlartifacts",
        {"/srv/mlruns": ("tracking.uri", "file:///srv/mlruns"), "mlartifacts": ("tracking.artifact_root", "mlartifacts")}),
    "MLflow's file store by a bare path": ("mlruns", "art",
        {"mlruns": ("tracking.uri", "mlruns"), "art": ("tracking.artifact_root", "art")}),
    "a server keeps its artifacts": ("http://127.0.0.1:5000", "mlartifacts", {}),
    "an https server too": ("https://mlflow.example", "file:///srv/art", {}),
    "a database store, artifacts in a bucket": ("postgresql://u@db/runs", "s3://bucket/art", {}),
    "a database store, artifacts on disk": ("postgresql://u@db/runs", "file:///srv/art",
        {"/srv/art": ("tracking.artifact_root", "file:///srv/art")}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(WRITTEN))
def test_the_directories_a_job_writes_are_named_by_their_keys(case: str, tmp_path: Path) -> None:
    from runner.run.preflight import written_paths

    uri, root, beside = WRITTEN[case]
    expected = {tmp_path / "checkpoints": CKPT, **{tmp_path / p: named for p, named in beside.items()}}
    assert written_paths(job_cfg(uri, root), tmp_path) == expected


def test_one_directory_written_for_two_keys_is_named_by_the_checkpoints_key(tmp_path: Path) -> None:
    from runner.run.preflight import written_paths

    cfg = job_cfg("sqlite:///state/mlflow.db", "file://state", ckpt="state")
    assert written_paths(cfg, tmp_path) == {tmp_path / "state": ("trainer.ckpt_dir", "state")}


def test_a_directory_under_a_file_is_refused_naming_the_key_and_the_file(tmp_path: Path) -> None:
    from runner.errors import ConfigError
    from runner.run.preflight import prove_writable

    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ConfigError) as refused:
        prove_writable("trainer.ckpt_dir", "a-file/ckpt", tmp_path / "a-file" / "ckpt")
    assert str(refused.value) == (
        f"trainer.ckpt_dir=a-file/ckpt cannot be written: {tmp_path / 'a-file'}: not a directory"
    )
    assert refused.value.__cause__ is None and refused.value.__suppress_context__  # no traceback chain


def test_a_directory_yet_to_be_made_is_proved_where_it_would_be_and_nothing_is_left(tmp_path: Path) -> None:
    from runner.run.preflight import prove_writable

    (tmp_path / "kept").write_text("x")
    prove_writable("trainer.ckpt_dir", "new/deeper", tmp_path / "new" / "deeper")
    prove_writable("tracking.artifact_root", "kept-dir", tmp_path)  # one that exists
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]  # no probe, and the directory not made


@pytest.mark.parametrize(
    ("raised", "says"),
    [
        (PermissionError(13, "Permission denied"), "Permission denied"),  # a read-only mount, even as root
        (OSError("disk quota exceeded"), "disk quota exceeded"),  # no strerror: the error itself
    ],
)
def test_a_failed_probe_is_one_line_with_the_systems_reason(
    raised: OSError, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from runner.errors import ConfigError
    from runner.run.preflight import prove_writable

    def refuse(**kwargs: object) -> str:
        raise raised

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(ConfigError) as refused:
        prove_writable("hydra.run.dir", "out", tmp_path / "out")
    assert str(refused.value) == f"hydra.run.dir=out cannot be written: {tmp_path}: {says}"


def test_resume_from_must_be_a_file_relative_to_the_start_directory(tmp_path: Path) -> None:
    from runner.errors import ConfigError
    from runner.run.preflight import check_resume_from

    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "last.pt").write_bytes(b"")
    check_resume_from({"resume_from": "ck/last.pt"}, tmp_path)
    check_resume_from({"resume_from": None}, tmp_path)  # nothing to resume from: nothing checked
    with pytest.raises(ConfigError) as refused:
        check_resume_from({"resume_from": "ck"}, tmp_path)  # a directory is no checkpoint
    assert str(refused.value) == f"resume_from=ck is not a file (relative to {tmp_path})"


def file_in_the_way(root: Path) -> str:
    """`root/a-file`, a file where a run would make a directory; returns how the pre-flight says so."""
    (root / "a-file").write_text("not a directory")
    return f"cannot be written: {root / 'a-file'}: not a directory"


def test_each_directory_touched_is_checked_once_named_by_the_first_key_that_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.run.preflight import check_touched

    monkeypatch.chdir(tmp_path)
    under_file = file_in_the_way(tmp_path)
    fine, bad = job_cfg(), job_cfg(ckpt="a-file/ckpt")
    assert check_touched([fine], ("hydra.run.dir", "outputs/run"), {}) is None
    assert (
        check_touched([fine], ("hydra.run.dir", "a-file/out"), {}) == f"hydra.run.dir=a-file/out {under_file}"
    )
    assert check_touched([bad], ("hydra.run.dir", "a-file/ckpt"), {}) == (
        f"hydra.run.dir=a-file/ckpt {under_file}"  # Hydra's output is named first
    )
    assert check_touched([fine, bad], ("hydra.sweep.dir", "multirun/x"), {}) == (
        f"trainer.ckpt_dir=a-file/ckpt {under_file}"  # every variant of a sweep, not only the first
    )
    gone = {**fine, "resume_from": "gone.pt"}
    assert check_touched([gone], ("hydra.run.dir", "outputs/run"), {}) == (
        f"resume_from=gone.pt is not a file (relative to {tmp_path})"
    )
    launcher = {"_target_": GPU_LAUNCHER, "gpus": [0], "devices": 2, "jobs_per_gpu": 1}
    assert check_touched([fine], ("hydra.sweep.dir", "multirun/x"), launcher) == (
        "trainer.devices=2 but hydra.launcher.gpus has 1: ['0']"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written


def test_only_the_gpu_launcher_has_its_resources_checked() -> None:
    from runner.errors import ConfigError
    from runner.run.preflight import check_launcher

    check_launcher({})  # a single run: no launcher
    check_launcher({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher", "gpus": []})
    check_launcher({"_target_": GPU_LAUNCHER, "gpus": [0, 1], "devices": 2, "jobs_per_gpu": 1})
    with pytest.raises(ConfigError, match=r"^hydra\.launcher\.jobs_per_gpu=0; allowed: 1 or more$"):
        check_launcher({"_target_": GPU_LAUNCHER, "gpus": [0, 1], "devices": 1, "jobs_per_gpu": 0})


def test_a_model_name_or_option_the_registry_lacks_is_one_line_naming_what_is_allowed() -> None:
    from runner.errors import ConfigError
    from runner.models import model_names
    from runner.run.preflight import check_model

    check_model({"model": {"name": "resnet20", "width": 4, "shortcut": "A"}})
    with pytest.raises(ConfigError) as unknown:
        check_model({"model": {"name": "resnet21"}})
    assert str(unknown.value) == f"model.name='resnet21' is unknown; allowed: {', '.join(model_names())}"
    assert "resnet20" in model_names()
    with pytest.raises(ConfigError) as option:  # alexnet's options asked of a ResNet: the first one named
        check_model({"model": {"name": "resnet20", "width": 4, "lrn": True, "dropout": 0.5}})
    assert str(option.value) == "model.dropout is not an option of resnet20; allowed: shortcut, width"
    with pytest.raises(ConfigError) as option:
        check_model({"model": {"name": "alexnet", "width": 3}})
    assert str(option.value) == (
        "model.width is not an option of alexnet; allowed: dropout, groups, lrn, overlap_pool, width_mult"
    )


@pytest.fixture(scope="module")
def default_cfg() -> dict:
    """The default run's composed config (ResNet-20 on Fashion-MNIST), composed once for these tests."""
    from conftest import compose

    return compose()


def test_the_default_config_dry_builds_on_the_meta_device(default_cfg: dict) -> None:
    from runner.run.preflight import check_parts

    check_parts(copy.deepcopy(default_cfg))
    dense = copy.deepcopy(default_cfg)
    dense["dataset"]["test_view"] = "dense"
    check_parts(dense)


# Where a builder fails → the part the line names (default config: resnet20, Fashion-MNIST 32×32, cosine/sgd).
FAILING_PART = {
    "the model": ("runner.models.build_for", False, "model=resnet20 on the 32×32 input of dataset=fashion_mnist"),
    "its dense form": ("runner.models.dense.dense_scores", True, "dataset.test_view=dense with model=resnet20"),
    "the optimizer": ("runner.train.optim.build_optimizer", False, "schedule=cosine with optim=sgd"),
    "the schedule": ("runner.train.schedule.build_schedule", False, "schedule=cosine with optim=sgd"),
}  # fmt: skip


@pytest.mark.parametrize("where", list(FAILING_PART))
@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (ValueError("too small\n  (details on the next line)"), "too small"),  # the first line only
        (TypeError(), "TypeError"),  # no message: the exception's name
        (IndexError("list index out of range"), "list index out of range"),
        (RuntimeError("shape mismatch"), "shape mismatch"),
    ],
)
def test_a_builders_error_is_one_line_naming_the_part(
    where: str,
    raised: Exception,
    reason: str,
    default_cfg: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runner.errors import ConfigError
    from runner.run.preflight import check_parts

    target, dense, part = FAILING_PART[where]
    cfg = copy.deepcopy(default_cfg)
    assert (cfg["schedule"]["name"], cfg["optim"]["name"]) == ("cosine", "sgd")
    if dense:
        cfg["dataset"]["test_view"] = "dense"

    def fail(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(target, fail)
    with pytest.raises(ConfigError) as refused:
        check_parts(cfg)
    assert str(refused.value) == f"{part}: {reason}"
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_an_augmentation_that_fails_on_a_dummy_batch_is_named_with_its_data_set(
    default_cfg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.data.tensor_loader import AUGMENTS
    from runner.errors import ConfigError
    from runner.run.preflight import check_parts

    def fail(batch: object, gen: object, lo: int, total: int) -> None:
        raise RuntimeError("flip of a 1-channel batch")

    monkeypatch.setitem(AUGMENTS, "flip", fail)
    cfg = copy.deepcopy(default_cfg)
    cfg["dataset"]["augment"] = ["crop", "flip"]  # ResNet's CIFAR recipe (Sec. 4.2); the default run has none
    with pytest.raises(ConfigError) as refused:
        check_parts(cfg)
    assert str(refused.value) == (
        "dataset.augment=['crop', 'flip'] of dataset=fashion_mnist: flip of a 1-channel batch"
    )


def test_an_error_other_than_a_builders_is_not_passed_off_as_a_config_error(
    default_cfg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyError is a bug in runner, not a bad value: it must surface, not become a line about the config."""
    from runner.run.preflight import check_parts

    def bug(*args: object, **kwargs: object) -> None:
        raise KeyError("lr")

    monkeypatch.setattr("runner.train.optim.build_optimizer", bug)
    with pytest.raises(KeyError):
        check_parts(copy.deepcopy(default_cfg))


def test_a_sweeps_override_that_does_not_parse_is_one_line_naming_its_key_as_a_single_run_does() -> None:
    problem = precheck(["-m", "seed=0,1", "act=relu,"])
    assert problem is not None and "\n" not in problem
    assert problem.startswith("act: cannot parse 'act=relu,': mismatched input '<EOF>' expecting "), problem
    assert problem.endswith("; allowed: lrelu, prelu, prelu_shared, relu, tanh")
    assert precheck(["seed=0", "act=relu,"]).startswith("act: mismatched input '<EOF>'")  # type: ignore[union-attr]


HYDRA_DIRS = ["hydra.sweep.dir=a-file/sweep", "hydra.run.dir=outputs/run"]  # the sweep's cannot be written


def test_a_sweep_checks_its_sweep_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    under_file = file_in_the_way(tmp_path)
    assert precheck(["--multirun", *HYDRA_DIRS, "seed=0,1"]) == f"hydra.sweep.dir=a-file/sweep {under_file}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_single_run_checks_its_run_directory_only_and_no_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run: Hydra writes its run directory, never the sweep's, and starts no launcher (none of its GPUs).
    No dry build: what is checked here comes before it, and the meta-device build costs seconds."""
    monkeypatch.chdir(tmp_path)
    file_in_the_way(tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    assert precheck([*HYDRA_DIRS, "hydra/launcher=gpus"], build=False) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_bad_setting_of_hydras_own_is_one_line_naming_it() -> None:
    """Hydra's error names only the setting it could not merge: the line leads with every hydra setting typed."""
    assert precheck(["hydra.run.dir=out", "hydra.job.chdir=abc"]) == (
        "hydra.run.dir=out hydra.job.chdir=abc: Error merging override hydra.job.chdir=abc"
    )


def test_a_bad_value_beside_hydras_settings_is_named_not_the_settings() -> None:
    """The first job's config and Hydra's settings come from one composition: where it fails, the value typed
    for the job is named when it fails alone, the Hydra settings only when it does not."""
    assert precheck(["hydra.run.dir=out", "act=nope"]).startswith("act=nope: unknown act; allowed: lrelu, ")
    assert precheck(["hydra.job.chdir=abc", "act=prelu"]).startswith("hydra.job.chdir=abc: Error merging")


def test_the_data_set_is_decoded_in_a_daemon_thread_that_swallows_errors_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon thread: a pre-flight that stops with an error exits at once, not after the decoding; an error
    of the data is left to the job's own check to say (runner/data check_data)."""
    import threading

    import runner.data
    from runner.run.preflight import read_data_beside

    asked: list[tuple[dict, Path]] = []
    uncaught: list[object] = []

    def corrupt(dataset: dict, cwd: Path) -> None:
        asked.append((dataset, cwd))
        raise OSError("truncated file")

    monkeypatch.setattr(runner.data, "check_data", corrupt)
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    monkeypatch.chdir(tmp_path)
    thread = read_data_beside({"name": "cifar10", "download": True, "root": None})
    assert thread is not None and thread.daemon and thread.name == "runner-read-data"
    thread.join(10)
    assert not thread.is_alive() and uncaught == []
    assert asked == [({"name": "cifar10", "download": False, "root": None}, tmp_path)]


def test_every_view_of_a_folder_set_dry_runs_on_a_photo_sized_image() -> None:
    """ImageNet's training and test views (conf/dataset/imagenet.yaml) over one dummy 500×375 RGB image."""
    from conftest import compose

    from runner.data.augment import TEST_VIEWS, TRAIN_VIEWS
    from runner.run.preflight import _dry_augment

    data = compose(["dataset=imagenet"])["dataset"]
    for augment in TRAIN_VIEWS:
        for view in TEST_VIEWS:
            _dry_augment({**data, "augment": augment, "test_view": view}, 3, data["crop"])


def test_a_folder_sets_view_that_fails_is_named_with_its_data_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import compose

    from runner.data.augment import TRAIN_VIEWS
    from runner.errors import ConfigError
    from runner.run.preflight import check_parts

    def scale_jitter(cfg: dict) -> Callable[..., None]:
        def view(image: object, rng: object) -> None:
            raise ValueError("crop 224 is larger than the image")

        return view

    monkeypatch.setitem(TRAIN_VIEWS, "scale_jitter", scale_jitter)
    with pytest.raises(ConfigError) as refused:
        check_parts(compose(["dataset=imagenet"]))
    assert str(refused.value) == (
        "dataset.augment='scale_jitter' of dataset=imagenet: crop 224 is larger than the image"
    )


def test_a_key_the_config_lacks_is_one_line_naming_it_and_how_to_add_one() -> None:
    assert precheck(["model.widht=8"]) == (
        "model.widht: unknown key; check the spelling, or add a new key with +model.widht=..."
    )


def test_the_first_variant_that_cannot_be_built_is_named(default_cfg: dict) -> None:
    from runner.run.preflight import dry_build

    fine, option, unregistered = (copy.deepcopy(default_cfg) for _ in range(3))
    option["model"]["lrn"] = True
    unregistered["init"]["name"] = "orthogonal"
    assert dry_build([fine]) is None
    assert dry_build([fine, option, unregistered]) == (
        "model.lrn is not an option of resnet20; allowed: shortcut, width"
    )
    assert dry_build([unregistered, option]).startswith("init.name='orthogonal' is not registered; allowed: ")


class Command:
    """What `runner` (with_helper) does around the dry build: MLflow's helper started, the data read beside."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import runner.tracking.helper
        from runner.run import preflight

        self.events: list[object] = []
        real_dry_build = preflight.dry_build

        def dry_build(configs: list[dict]) -> str | None:
            self.events.append("dry build")
            return real_dry_build(configs)

        monkeypatch.setattr(runner.tracking.helper, "start", lambda: self.events.append("helper"))
        monkeypatch.setattr(preflight, "read_data_beside", self.read)
        monkeypatch.setattr(preflight, "dry_build", dry_build)

    def read(self, dataset: dict) -> Command:
        self.events.append(("read", dataset["name"]))
        return self

    def join(self) -> None:
        self.events.append("joined")


def test_the_command_starts_the_helper_and_reads_the_data_beside_the_dry_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command = Command(monkeypatch)
    assert precheck(["dataset=synthetic"], with_helper=True) is None
    assert command.events == ["helper", ("read", "synthetic"), "dry build", "joined"]
    command.events.clear()
    assert precheck(["dataset=synthetic"]) is None  # the other entry points: the checks only
    assert command.events == ["dry build"]


def test_the_command_stopped_by_a_check_says_so_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    command = Command(monkeypatch)
    problem = precheck(["dataset=synthetic", "model=prelu_14", "dataset.image_size=4"], with_helper=True)
    assert problem is not None and problem.startswith(
        "model=prelu_14 on the 4×4 input of dataset=synthetic: "
    )
    assert command.events == ["helper", ("read", "synthetic"), "dry build"]  # not waiting for the data
    command.events.clear()
    assert precheck(["optim.lr=nan"], with_helper=True) == (
        "optim.lr=nan is not allowed; expected a finite number > 0"
    )
    assert command.events == []  # a torch-free check failed: no helper, no torch


@pytest.mark.parametrize("fails_at", ["iteration", "epoch_end"])
def test_a_schedule_that_fails_on_a_training_error_or_an_epochs_end_is_caught_before_the_run(
    fails_at: str, default_cfg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dry build steps the schedule once with a running training error and ends one epoch: a schedule
    (a registered extension's too) that cannot take them fails now, not after the first epoch's training."""
    from runner.errors import ConfigError
    from runner.run.preflight import check_parts
    from runner.train.schedule import SCHEDULES, Schedule

    class Picky(Schedule):
        def iteration(self, step: int, train_error: float | None = None) -> None:
            if fails_at == "iteration" and train_error is not None:
                raise ValueError(f"train_error={train_error} is not a fraction")

        def epoch_end(self, monitored_error: float) -> None:
            if fails_at == "epoch_end":
                raise ValueError(f"monitored_error={monitored_error} is not a fraction")

    monkeypatch.setitem(SCHEDULES, "cosine", Picky)
    with pytest.raises(ConfigError, match=r"^schedule=cosine with optim=sgd: \w+=50\.0 is not a fraction$"):
        check_parts(copy.deepcopy(default_cfg))


IMPORT_UNDER_META = """
import importlib, pkgutil, torch, runner
with torch.device("meta"):  # as the dry build may be the first to import a module (a fresh joblib worker's job)
    modules = [importlib.import_module(m.name) for m in pkgutil.walk_packages(runner.__path__, "runner.")]
print(sorted(f"{m.__name__}.{k}" for m in modules for k, v in vars(m).items()
             if isinstance(v, torch.Tensor) and v.device.type != "cpu"))
"""


@pytest.mark.slow  # a fresh interpreter: which module is imported first must not be this session's
def test_a_module_first_imported_under_the_dry_builds_meta_device_keeps_its_constants_on_the_cpu() -> None:
    """ImageNet's lighting read its PCA eigenvalues from module constants made at import: imported first inside
    the pre-flight's meta device context, they were meta tensors and every lighting step failed ("Cannot copy
    out of meta tensor")."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_UNDER_META], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_without_the_dry_build_only_what_torch_alone_can_tell_passes() -> None:
    """runner-eval checks its overrides but not the default model: the evaluated run's config decides that."""
    too_small = ["dataset=synthetic", "model=prelu_14", "model.width_mult=0.0625", "dataset.image_size=4"]
    assert precheck(too_small).startswith("model=prelu_14 on the 4×4 input of dataset=synthetic: ")  # type: ignore[union-attr]
    assert precheck(too_small, build=False) is None
    assert (
        precheck(["trainer.epochs=0"], build=False)
        == "trainer.epochs=0 is not allowed; expected an integer ≥ 1"
    )
