"""The pre-flight checks what a run will touch, not only what was typed (issue 30): a value beyond the library's
limits, a directory that cannot be written, a launcher without its GPUs, a test view the data set cannot do, a
key no code reads, a tracking store that does not answer. Each is one line and exit 2 from the real entry point
(in-process), with no MLflow run, no checkpoint and no output directory left; and one process at a time writes
a config (runner/run/job.py: one_writer)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY, mlflow_runs, run_in_process

from runner.errors import RunnerError
from runner.run.preflight import precheck

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
