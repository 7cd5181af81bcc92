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
