"""Fashion-MNIST (Xiao et al. 2017, MIT licence): 60k train / 10k test, 28×28 grey, 10 classes.

Read from gzipped (or plain) IDX files, looked for in `<root>/FashionMNIST/raw/` (torchvision's layout)
and then in /usr/share/datasets/fashion-mnist/ (Debian's `dataset-fashion-mnist` package).
Images are zero-padded to 32×32 so that the CIFAR networks run on them unchanged. The files are decoded
once per job (common.read_once): the check reads them, the build reuses them.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from runner.data import Context, Data, register_dataset
from runner.data.common import common_folder, fetch, read_once
from runner.data.tensor_loader import check_options, resident_data
from runner.errors import DataError

FILES = {  # name → md5 of the gz as served by the dataset's authors (checked after a download)
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
HOW_TO_GET = "apt-get install dataset-fashion-mnist (or dataset.download=true on a machine that is online)"
Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format): magic 0x0000 08 <ndim>, big-endian sizes, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DataError(f"{path}: not an IDX uint8 file (wrong magic number {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:  # cut inside its sizes: the slices below would read them as zeros
        raise DataError(
            f"{path}: truncated: header announces {ndim} sizes, found {len(raw) - 4} of their bytes"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"{path}: truncated: header says {shape}, found {len(body)} bytes of data")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def find_file(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for candidate in (d / f"{name}.gz", d / name):
            if candidate.is_file():
                return candidate
    return None


def download(raw_dir: Path) -> None:
    for name, md5 in FILES.items():
        target = raw_dir / f"{name}.gz"
        if not target.exists():
            fetch(URL + f"{name}.gz", target, md5, HOW_TO_GET)


def _decode(paths: dict[str, Path]) -> Arrays:
    arrays = {name: read_idx(path) for name, path in paths.items()}

    def images(a: np.ndarray) -> torch.Tensor:  # (N, 28, 28) → (N, 1, 32, 32), zero border of 2
        return F.pad(torch.from_numpy(a.copy()).unsqueeze(1), (2, 2, 2, 2))

    train_x, test_x = images(arrays["train-images-idx3-ubyte"]), images(arrays["t10k-images-idx3-ubyte"])
    train_y = torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    test_y = torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(
            f"Fashion-MNIST image and label counts differ in {paths['train-images-idx3-ubyte'].parent}"
        )
    return train_x, train_y, test_x, test_y


def load(cfg: Mapping[str, Any], cwd: Path) -> Arrays:
    """(train_x, train_y, test_x, test_y), decoded once while the files stay unchanged."""
    paths = locate(cfg, cwd)
    return read_once("fashion_mnist", list(paths.values()), lambda: _decode(paths))


def locate(cfg: Mapping[str, Any], cwd: Path) -> dict[str, Path]:
    """The four files by name (downloaded first if asked and missing); DataError saying where it looked."""
    root = cfg["root"]
    if root and not (cwd / root).is_dir() and not cfg["download"]:  # a typo must not fall back silently
        raise DataError(
            f"dataset.root={root} does not exist; allowed: an existing directory, or null for ./data"
        )
    raw_dir = (cwd / (root or "data")).resolve() / "FashionMNIST" / "raw"
    dirs = [raw_dir, SYSTEM_DIR]
    if cfg["download"] and find_file(next(iter(FILES)), dirs) is None:
        download(raw_dir)
    paths = {}
    for name in FILES:
        path = find_file(name, dirs)
        if path is None:
            looked = " and ".join(str(d) for d in dirs)
            raise DataError(f"Fashion-MNIST file {name}.gz not found in {looked}; {HOW_TO_GET}")
        paths[name] = path
    return paths


def check(cfg: Mapping[str, Any], cwd: Path) -> None:
    """Before any MLflow run exists: the four files are there (or downloaded) and read; options fit."""
    check_options(cfg, len(load(cfg, cwd)[1]))


@register_dataset("fashion_mnist", check=check)
def build(cfg: Mapping[str, Any], ctx: Context) -> Data:
    source = common_folder(list(locate(cfg, ctx.cwd).values()))
    return resident_data(*load(cfg, ctx.cwd), num_classes=10, cfg=cfg, ctx=ctx, source=source)
