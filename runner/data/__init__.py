"""Datasets (conf/dataset): a registry of builders returning a `Data` bundle of three loaders.

Small data sets (Fashion-MNIST, CIFAR, synthetic) live on the training device as uint8 tensors and are
augmented there in batches (runner/data/tensor_loader.py); no DataLoader workers, no per-image Python.
ImageNet folders are decoded by DataLoader workers (runner/data/imagenet.py, augment.py) behind the same
`batches(epoch, start)` / `len()` interface. Each family registers a builder and, optionally, a check that
the job runs before any MLflow run exists (`check_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from runner.errors import ConfigError


class Loader(Protocol):
    def __len__(self) -> int: ...  # batches per epoch on this rank

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass
class Data:
    train: Loader
    val: Loader | None
    test: Loader
    num_classes: int
    in_channels: int
    image_size: int
    train_size: int  # images per epoch, all ranks together


@dataclass
class Context:
    """Where and how a loader runs: set by the training loop, not by the user's YAML."""

    device: torch.device
    rank: int
    world_size: int
    batch_size: int  # per device
    seed: int
    channels_last: bool
    cwd: Path  # the directory `runner` was started in: relative roots resolve against it


Builder = Callable[[Mapping[str, Any], Context], Data]
# check(cfg, cwd): find (or download) and read-test the files, raising DataError; runs in the job before
# any MLflow run exists, so missing or corrupt data leaves nothing behind.
Check = Callable[[Mapping[str, Any], Path], None]
DATASETS: dict[str, Builder] = {}
CHECKS: dict[str, Check] = {}


def register(name: str, builder: Builder, check: Check | None = None) -> None:
    DATASETS[name] = builder
    if check is not None:
        CHECKS[name] = check


def _load_families() -> None:
    from runner.data import cifar, fashion_mnist, imagenet, synthetic  # noqa: F401


def dataset_names() -> list[str]:
    _load_families()
    return sorted(DATASETS)


def _known(cfg: Mapping[str, Any]) -> str:
    _load_families()
    if cfg["name"] not in DATASETS:
        raise ConfigError(f"dataset.name={cfg['name']!r} is unknown; allowed: {', '.join(sorted(DATASETS))}")
    return cfg["name"]


def check_data(cfg: Mapping[str, Any], cwd: Path) -> None:
    """Fail with one DataError line naming the file if the data set is missing or corrupt."""
    check = CHECKS.get(_known(cfg))
    if check is not None:
        check(cfg, cwd)


def build_data(cfg: Mapping[str, Any], ctx: Context) -> Data:
    return DATASETS[_known(cfg)](cfg, ctx)
