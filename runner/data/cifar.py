"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 50k train / 10k test, 32×32 RGB, 10 or 100 classes.

Read from the python pickle batches as distributed, in torchvision's layout under `<root>`:
    <root>/cifar-10-batches-py/data_batch_1..5, test_batch      (dicts with b'data' (N, 3072) and b'labels')
    <root>/cifar-100-python/train, test                        (b'data' and b'fine_labels')
`download: true` fetches and unpacks the official tarball (md5-checked) when the files are missing.
The batches are decoded once per job (common.read_once): the check reads them, the build reuses them.
"""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runner.data import Context, Data, register_dataset
from runner.data.common import fetch, read_once
from runner.data.tensor_loader import check_options, resident_data
from runner.errors import DataError


@dataclass(frozen=True)
class Layout:
    title: str
    folder: str  # inside <root>, as the tarball unpacks
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: bytes
    num_classes: int
    url: str
    md5: str  # of the tarball


LAYOUTS = {
    "cifar10": Layout(
        "CIFAR-10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        b"labels",
        10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": Layout(
        "CIFAR-100",
        "cifar-100-python",
        ("train",),
        ("test",),
        b"fine_labels",
        100,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
}
Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]


def read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch → uint8 images (N, 3, 32, 32) and int64 labels (N,); DataError naming a bad file."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = (
            np.asarray(batch[b"data"], dtype=np.uint8),
            np.asarray(batch[label_key], dtype=np.int64),
        )
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, IndexError) as e:
        raise DataError(
            f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e}); delete it and rerun with dataset.download=true"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(
            f"{path}: expected b'data' of shape (N, 3072) and N labels, found {data.shape} and {len(labels)}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def download(layout: Layout, root: Path) -> None:
    tarball = root / layout.url.rsplit("/", 1)[1]
    if not tarball.exists():
        how = f"on a machine that is online run `curl -O {layout.url} && tar xzf {tarball.name} -C {root}`"
        fetch(layout.url, tarball, layout.md5, how)
    try:
        with tarfile.open(tarball) as tar:
            try:
                tar.extractall(root, filter="data")
            except TypeError:  # Python < 3.11.4 has no extraction filters
                tar.extractall(root)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise DataError(f"{tarball}: cannot unpack ({e}); delete it and run again") from None


def locate(cfg: Mapping[str, Any], cwd: Path) -> tuple[Layout, Path]:
    """The batch folder, downloaded first if asked and missing; DataError saying where it looked if absent."""
    layout = LAYOUTS[cfg["name"]]
    root = (cwd / cfg["root"]).resolve()
    folder = root / layout.folder
    missing = [name for name in layout.train + layout.test if not (folder / name).is_file()]
    if missing and cfg["download"]:
        download(layout, root)
        missing = [name for name in layout.train + layout.test if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{layout.title} not found: {folder / missing[0]} is missing; rerun with dataset.download=true "
            f"(fetches {layout.url}) or set dataset.root to the folder holding {layout.folder}/"
        )
    return layout, folder


def _decode(layout: Layout, folder: Path) -> Arrays:
    def read(names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [read_batch(folder / name, layout.label_key) for name in names]
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if len(y) and (y.min() < 0 or y.max() >= layout.num_classes):
            raise DataError(
                f"{folder}: labels outside 0..{layout.num_classes - 1}; the files are not {layout.title}"
            )
        return torch.from_numpy(x), torch.from_numpy(y)

    return *read(layout.train), *read(layout.test), layout.num_classes


def load(cfg: Mapping[str, Any], cwd: Path) -> Arrays:
    """(train_x, train_y, test_x, test_y, classes), decoded once while the files stay unchanged."""
    layout, folder = locate(cfg, cwd)
    files = [folder / name for name in layout.train + layout.test]
    return read_once(cfg["name"], files, lambda: _decode(layout, folder))


def check(cfg: Mapping[str, Any], cwd: Path) -> None:
    """Before any MLflow run exists: the files are there (or downloaded), every batch reads, options fit."""
    check_options(cfg, len(load(cfg, cwd)[1]))


@register_dataset("cifar10", check=check)
@register_dataset("cifar100", check=check)
def build(cfg: Mapping[str, Any], ctx: Context) -> Data:
    train_x, train_y, test_x, test_y, num_classes = load(cfg, ctx.cwd)
    folder = str(locate(cfg, ctx.cwd)[1])
    return resident_data(
        train_x, train_y, test_x, test_y, num_classes=num_classes, cfg=cfg, ctx=ctx, source=folder
    )
