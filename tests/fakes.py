"""Tiny data sets in their real on-disk formats (CIFAR pickles, IDX files, an ImageNet folder tree), written
by the tests that read them; the loader context the data tests build; and the map sizes a model's convs see."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from runner.data import Context, cifar, dataset_config

SMALL = {"crop": 24, "test_resize": 32, "scale": [28, 40], "augment": "scale_jitter", "test_view": "ten_crop"}


def ctx(cwd: Path, batch_size: int = 8, rank: int = 0, world_size: int = 1, seed: int = 0) -> Context:
    return Context(torch.device("cpu"), rank, world_size, batch_size, seed, False, cwd)


# --- generators of the real formats ----------------------------------------------------------------------


def write_cifar(
    root: Path, per_batch: int = 20, test: int = 30, kind: str = "cifar10"
) -> dict[str, np.ndarray]:
    """torchvision's layout: pickled dicts with b'data' (N, 3072) uint8 and b'labels' / b'fine_labels'."""
    layout = cifar.LAYOUTS[kind]
    folder = root / layout.folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in layout.train + layout.test:
        n = test if name in layout.test else per_batch * (5 // len(layout.train))
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, layout.num_classes, n)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, layout.label_key: labels, b"batch_label": b"x"}, f)
        written[name] = (data, np.array(labels))
    return written


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion(root: Path, n_train: int = 12, n_test: int = 6) -> Path:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(1, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return raw


def write_folder(
    root: Path, classes=("cat", "dog", "eel"), train: int = 6, val: int = 2, size=(48, 40)
) -> None:
    """A tiny ImageFolder of JPEGs: <root>/{train,val}/<class>/*.jpg, each class a different colour."""
    for split, n in (("train", train), ("val", val)):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = np.full((size[1], size[0], 3), 60 * c + 10 * i, dtype=np.uint8)
                pixels[:, : size[0] // 3] = 255  # asymmetric, so a flip is visible
                Image.fromarray(pixels).save(root / split / name / f"{i}.jpg", quality=95)


# --- CIFAR -----------------------------------------------------------------------------------------------


IMAGENET = dataset_config("imagenet", root="imnet", val_split=3, lighting=0.1, normalize="per_channel", workers=0,
                          num_classes=3, **SMALL)  # fmt: skip


def conv_io(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(module name, input (H, W), output (H, W)) of every Conv2d of `model` on `x`, in the order they run."""
    names = {m: n for n, m in model.named_modules()}
    seen: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def note(conv: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen.append((names[conv], tuple(inputs[0].shape[-2:]), tuple(output.shape[-2:])))

    hooks = [m.register_forward_hook(note) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen
