"""Where a job trains (runner/train/device.py): CUDA or the CPU, how many devices, the hardware's name, and the
torch threads of a job: the cores it has, shared with the jobs beside it. The GPU's presence is faked: these
run the same on a machine with or without one."""

from __future__ import annotations

import os
import platform

import pytest
import torch
from conftest import compose

from runner.errors import ConfigError
from runner.train.device import (
    device_name,
    job_threads,
    jobs_at_once,
    pick_device,
    resolve_devices,
    usable_cores,
    uses_cuda,
)

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def test_a_job_alone_takes_every_core_and_jobs_side_by_side_share_them() -> None:
    assert job_threads(None, cores=2) == (2, "2 core(s)")
    assert job_threads(None, cores=2, jobs=2) == (1, "2 core(s) ÷ 2 processes at once")
    assert job_threads(None, cores=16, jobs=3)[0] == 5  # never more threads than cores in all
    assert job_threads(None, cores=16, jobs=2, processes=4)[0] == 2  # CPU DDP: ranks × jobs share them
    assert job_threads(None, cores=2, jobs=4)[0] == 1  # more jobs than cores: one each, not zero


def test_an_explicit_number_wins_then_omp_num_threads() -> None:
    assert job_threads(3, cores=2, jobs=2, omp="1") == (3, "trainer.threads")
    assert job_threads(None, cores=2, jobs=2, omp="2") == (2, "OMP_NUM_THREADS")
    assert job_threads(None, cores=4, jobs=2, omp="") == (2, "4 core(s) ÷ 2 processes at once")
    assert job_threads(None, cores=4, jobs=1, omp="0")[0] == 4  # not a thread count: ignored


@pytest.mark.parametrize(
    ("launcher", "cores", "expected"),
    [
        (None, 8, 1),  # a single run
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8, 1),
        ({"_target_": JOBLIB, "n_jobs": 2}, 8, 2),
        ({"_target_": JOBLIB, "n_jobs": -1}, 8, 8),  # joblib's -1: every core
        ({"_target_": JOBLIB, "n_jobs": -2}, 8, 7),  # all but one
        ({"_target_": JOBLIB, "n_jobs": -20}, 8, 1),
        ({"_target_": JOBLIB, "n_jobs": None}, 8, 1),  # joblib's own default: one at a time
        ({"_target_": JOBLIB}, 8, 1),
        ({"_target_": "JoblibLauncher", "n_jobs": 3}, 8, 3),  # the class name alone, without its module
        ({"_target_": "my.JoblibLauncher.Basic", "n_jobs": 3}, 8, 1),  # the class name decides, not a part
    ],
)
def test_jobs_at_once_reads_the_launcher(launcher: dict | None, cores: int, expected: int) -> None:
    assert jobs_at_once(launcher, cores) == expected


def test_the_default_leaves_threads_to_the_rule() -> None:
    assert compose([])["trainer"]["threads"] is None
    assert compose(["trainer.threads=1"])["trainer"]["threads"] == 1


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """A machine with `gpus` GPUs (0: none visible) and `cores` CPU cores, as torch and os report them."""

    def make(gpus: int, cores: int | None = 8) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: f"Fake GPU {index}")
        monkeypatch.setattr(os, "cpu_count", lambda: cores)

    return make


def trainer(accelerator: str, devices: int | str = 1) -> dict:
    return {"accelerator": accelerator, "devices": devices}


@pytest.mark.parametrize(
    ("accelerator", "gpus", "cuda"),
    [("cuda", 1, True), ("auto", 1, True), ("auto", 0, False), ("cpu", 1, False), ("cpu", 0, False)],
)
def test_a_run_uses_cuda_when_asked_or_on_auto_when_a_gpu_is_visible(
    machine, accelerator: str, gpus: int, cuda: bool
) -> None:
    machine(gpus)
    assert uses_cuda(trainer(accelerator)) is cuda
    expected = torch.device("cuda", 3) if cuda else torch.device("cpu")
    assert pick_device(trainer(accelerator), local_rank=3) == expected


def test_accelerator_cuda_says_cuda_even_before_the_gpu_check() -> None:
    """resolve_devices refuses it without a GPU; uses_cuda only reads the config."""
    assert uses_cuda(trainer("cuda")) is True


@pytest.mark.parametrize(
    ("accelerator", "gpus", "devices", "expected"),
    [
        ("cuda", 4, "auto", 4),  # every visible GPU
        ("auto", 4, "auto", 4),
        ("cuda", 4, 2, 2),
        ("cuda", 4, 4, 4),
        ("auto", 0, "auto", 1),  # on the CPU, auto is one process
        ("cpu", 4, "auto", 1),  # GPUs visible but not used
        ("cpu", 4, 6, 6),  # CPU processes count against the 8 cores, not the 4 GPUs
        ("auto", 0, 8, 8),
    ],
)
def test_devices_resolve_to_a_number_within_what_exists(
    machine, accelerator: str, gpus: int, devices: int | str, expected: int
) -> None:
    machine(gpus, cores=8)
    assert resolve_devices(trainer(accelerator, devices)) == expected


@pytest.mark.parametrize(
    ("accelerator", "gpus", "cores", "devices", "message"),
    [
        ("cuda", 4, 8, 5, "trainer.devices=5 but only 4 GPU(s) are visible; allowed: 1..4 or auto"),
        ("auto", 2, 8, 3, "trainer.devices=3 but only 2 GPU(s) are visible; allowed: 1..2 or auto"),
        ("cpu", 4, 8, 9,
         "trainer.devices=9 but only 8 CPU cores exist (one process per device); allowed: 1..8 or auto"),
        ("cpu", 0, None, 2,  # os.cpu_count() does not know: one core assumed
         "trainer.devices=2 but only 1 CPU cores exist (one process per device); allowed: 1..1 or auto"),
        ("cuda", 0, 8, 1, "trainer.accelerator=cuda but no GPU is visible; allowed here: auto or cpu"),
    ],
)  # fmt: skip
def test_more_devices_than_exist_or_cuda_without_a_gpu_is_a_config_error_naming_the_choices(
    machine, accelerator: str, gpus: int, cores: int | None, devices: int, message: str
) -> None:
    machine(gpus, cores)
    with pytest.raises(ConfigError) as refused:
        resolve_devices(trainer(accelerator, devices))
    assert str(refused.value) == message


def test_the_device_name_is_the_first_gpus_or_the_cpus(machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine(2)
    assert device_name(trainer("auto")) == "Fake GPU 0"
    assert device_name(trainer("cpu")) == f"cpu ({platform.processor() or platform.machine()})"
    monkeypatch.setattr(platform, "processor", lambda: "")  # Linux often says nothing here
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert device_name(trainer("cpu")) == "cpu (x86_64)"
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert device_name(trainer("cpu")) == "cpu (arm)"


def test_usable_cores_are_this_processs_affinity_else_the_machines_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert usable_cores() == 2  # taskset -c 0,3 on a 6-core machine
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows
    assert usable_cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cores() == 1


@pytest.mark.parametrize(
    ("omp", "expected"),
    [
        (" 3 ", (3, "OMP_NUM_THREADS")),  # as a shell may leave it
        ("1", (1, "OMP_NUM_THREADS")),
        ("0", (4, "8 core(s) ÷ 2 processes at once")),  # not a thread count: the cores' rule
        ("-2", (4, "8 core(s) ÷ 2 processes at once")),
        ("two", (4, "8 core(s) ÷ 2 processes at once")),
        (None, (4, "8 core(s) ÷ 2 processes at once")),
    ],
)
def test_omp_num_threads_counts_only_when_it_is_a_positive_number(omp: str | None, expected: tuple) -> None:
    assert job_threads(None, cores=8, processes=2, omp=omp) == expected
