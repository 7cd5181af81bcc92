"""Datasets (conf/dataset): a registry of builders returning a `Data` bundle of three loaders.

Small data sets (Fashion-MNIST, CIFAR, synthetic) live on the training device as uint8 tensors and are
augmented there in batches (runner/data/tensor_loader.py); no DataLoader workers, no per-image Python.
ImageNet folders are decoded by DataLoader workers (runner/data/imagenet.py, augment.py) behind the same
`batches(epoch, start)` / `len()` interface. Shared helpers (download, split, sharding, read cache,
normalisation) are in runner/data/common.py.

Adding a data set: a module with a builder decorated by `@register_dataset(name, shape=..., check=...)`,
found by `_load_families`, and conf/dataset/<name>.yaml holding every key the builder reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from runner.config import CONF_DIR, parse_yaml
from runner.errors import ConfigError


class Loader(Protocol):
    def __len__(self) -> int: ...  # batches per epoch on this rank

    # x on the device: (N, C, H, W), or (N, views, C, H, W) for multi-view tests (ten_crop, dense)
    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


@dataclass(frozen=True)
class Provenance:
    """What a run trained on, logged as its MLflow dataset input: two copies of a data set whose contents
    differ get different digests."""

    source: str  # the folder (or files) read; for generated data, how it was generated
    digest: str  # of the arrays read (resident sets), or of the file list with sizes and mtimes (folders)
    sizes: dict[str, int]  # images per split as this run uses them: train, val, test
    generated: bool = False  # no files: synthetic data, or arrays a builder made in memory


@dataclass
class Data:
    train: Loader
    val: Loader | None
    test: Loader
    num_classes: int
    in_channels: int
    image_size: int  # of the training input
    train_size: int  # images per epoch, all ranks together
    provenance: Provenance | None = None  # None: the builder does not say (the run logs no dataset input)


@dataclass(frozen=True)
class Shape:
    """A data set's training input and class count, known from its config without reading any file."""

    channels: int
    size: int  # the square training input the model sees (ImageNet: dataset.crop)
    classes: int


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
# check(cfg, cwd): find (or download) and read-test the files, raising DataError/ConfigError; runs in the job
# before any MLflow run exists, so missing or corrupt data leaves nothing behind.
Check = Callable[[Mapping[str, Any], Path], None]


@dataclass(frozen=True)
class Family:
    build: Builder
    check: Check | None
    shape: Callable[[Mapping[str, Any]], Shape]


DATASETS: dict[str, Family] = {}


def shape_from_facts(cfg: Mapping[str, Any]) -> Shape:
    """The shape a data set states in its YAML (`about`: channels, image_size, classes)."""
    facts = cfg["about"]
    return Shape(facts["channels"], facts["image_size"], facts["classes"])


def register_dataset(
    name: str, *, shape: Callable[[Mapping[str, Any]], Shape] = shape_from_facts, check: Check | None = None
) -> Callable[[Builder], Builder]:
    """Decorator: `@register_dataset("cifar10", check=check)` on a builder. The shape comes from the YAML's
    `about` block, or from a function of the dataset config where settings decide it (synthetic, ImageNet)."""

    def add(build: Builder) -> Builder:
        DATASETS[name] = Family(build, check, shape)
        return build

    return add


def _load_families() -> None:
    """Import every module of this package: importing a data set's file registers it, so a new file is all a
    new data set needs."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def dataset_names() -> list[str]:
    _load_families()
    return sorted(DATASETS)


def _family(cfg: Mapping[str, Any]) -> Family:
    _load_families()
    if cfg["name"] not in DATASETS:
        raise ConfigError(f"dataset.name={cfg['name']!r} is unknown; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[cfg["name"]]


def dataset_shape(cfg: Mapping[str, Any]) -> Shape:
    """Channels, training input size and classes from the config alone (no file is read): the model check
    builds the model on the meta device with these."""
    return _family(cfg).shape(cfg)


def check_data(cfg: Mapping[str, Any], cwd: Path) -> None:
    """Fail with one DataError/ConfigError line naming the file or key if the data set is missing or corrupt."""
    check = _family(cfg).check
    if check is not None:
        check(cfg, cwd)


def build_data(cfg: Mapping[str, Any], ctx: Context) -> Data:
    return _family(cfg).build(cfg, ctx)


def dataset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """conf/dataset/<name>.yaml as a dict, with `overrides` applied (tests, benchmarks: every key present)."""
    return {**parse_yaml((CONF_DIR / "dataset" / f"{name}.yaml").read_text()), **overrides}
