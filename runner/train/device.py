"""Which device a job trains on: the one place that decides "is this a CUDA run?" (conf/trainer:
`accelerator`, `devices`)."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any

import torch

from runner.errors import ConfigError


def uses_cuda(trainer: Mapping[str, Any]) -> bool:
    """accelerator=cuda, or auto with a GPU visible."""
    accelerator = trainer["accelerator"]
    return accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available())


def pick_device(trainer: Mapping[str, Any], local_rank: int) -> torch.device:
    return torch.device("cuda", local_rank) if uses_cuda(trainer) else torch.device("cpu")


def resolve_devices(trainer: Mapping[str, Any]) -> int:
    """`devices` as a number; more than exist is a config error (GPUs, or CPU cores for gloo)."""
    if trainer["accelerator"] == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=cuda but no GPU is visible; allowed here: auto or cpu")
    cuda = uses_cuda(trainer)
    available = torch.cuda.device_count() if cuda else (os.cpu_count() or 1)
    devices = trainer["devices"]
    if devices == "auto":
        return available if cuda else 1
    if devices > available:
        kind = "GPU(s) are visible" if cuda else "CPU cores exist (one process per device)"
        raise ConfigError(
            f"trainer.devices={devices} but only {available} {kind}; allowed: 1..{available} or auto"
        )
    return int(devices)


def device_name(trainer: Mapping[str, Any]) -> str:
    """The GPU's name, or the CPU's: an MLflow tag, so that timings can be compared by hardware."""
    if uses_cuda(trainer):
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()})"


# Launchers whose jobs run side by side on this machine, and the option that says how many at once.
# (The gpus launcher sets OMP_NUM_THREADS per GPU slot itself: runner/run/slots.py; SLURM jobs get nodes.)
PARALLEL_LAUNCHERS = {"JoblibLauncher": "n_jobs"}


def jobs_at_once(launcher: Mapping[str, Any] | None, cores: int) -> int:
    """How many jobs of a sweep train at once on this machine: a joblib launcher's `n_jobs` (negative as in
    joblib: -1 = every core, -2 = all but one), 1 for the basic launcher and a single run."""
    target = str((launcher or {}).get("_target_", "")).rsplit(".", 1)[-1]
    key = PARALLEL_LAUNCHERS.get(target)
    if key is None or launcher.get(key) is None:  # type: ignore[union-attr]
        return 1
    n = int(launcher[key])  # type: ignore[index]
    return max(1, n if n > 0 else cores + 1 + n)


def job_threads(
    requested: int | None, cores: int, jobs: int = 1, processes: int = 1, omp: str | None = None
) -> tuple[int, str]:
    """Torch threads for each process of a job, and why. `trainer.threads` when set; else OMP_NUM_THREADS
    when the user or a launcher set it (joblib's workers and the gpus launcher's get one); else the cores
    this process may run on ÷ (jobs at once × processes per job), at least 1. More threads than cores are
    a loss: two 2-thread jobs on 2 cores wait for each other at every op (~9× slower, README: Speed)."""
    if requested is not None:
        return int(requested), "trainer.threads"
    if omp and omp.strip().isdigit() and int(omp) >= 1:
        return int(omp), "OMP_NUM_THREADS"
    share = jobs * processes
    threads = max(1, cores // share)
    return threads, f"{cores} core(s)" + (f" ÷ {share} processes at once" if share > 1 else "")


def usable_cores() -> int:
    """The cores this process may run on (its affinity: taskset, cgroups' cpusets), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
