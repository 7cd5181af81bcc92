"""What every data family shares: the md5-checked download, the validation split, the rank sharding, the
seeds of the shuffles, a read cache (files decoded once per job), and the input normalisation."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from runner.errors import ConfigError, DataError

T = TypeVar("T")

# --- seeds ----------------------------------------------------------------------------------------------------


def mix_seed(*numbers: int) -> int:
    """A generator seed from several small integers (SplitMix-style, stays below 2**63)."""
    h = 0x9E3779B97F4A7C15
    for v in numbers:
        h = ((h ^ (v + 0x632BE59BD9B4E019)) * 0xBF58476D1CE4E5B9) % (1 << 64)
    return h >> 1


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's permutation of the training images: a function of (seed, epoch) only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))


# --- download ---------------------------------------------------------------------------------------------------


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, target: Path, md5: str, how_to_get: str) -> None:
    """Download `url` to `target` through `target.part`, renamed only once its md5 matches: a file at `target`
    is always whole, and a failed or corrupt download leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        urllib.request.urlretrieve(url, part)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise DataError(f"cannot download {url} ({e}); {how_to_get}") from None
    if file_md5(part) != md5:
        part.unlink()
        raise DataError(f"{target}: download corrupt (md5 mismatch with {md5}); run again")
    part.rename(target)


# --- read once ------------------------------------------------------------------------------------------------

CACHE_ENTRIES = 2  # one data set's decoded arrays, and one more for a sweep that alternates two
_CACHE: OrderedDict[tuple, Any] = OrderedDict()


def read_once(kind: str, paths: Sequence[Path], read: Callable[[], T]) -> T:
    """`read()` the first time these files are asked for, the same result while none of them changed.

    The key is each file's resolved path, size and mtime, so the job's check and build decode the files once
    (and a sweep in one process once per data set), while a file replaced in between is read again. The
    result is shared: callers must copy (index, `.float()`) rather than write into it."""
    key = (kind, *((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = read()
    _CACHE[key] = value
    while len(_CACHE) > CACHE_ENTRIES:
        _CACHE.popitem(last=False)
    return value


# --- digests (the run's MLflow dataset input) -------------------------------------------------------------------

DIGEST_CHARS = 12  # MLflow shows the digest in its Datasets column: short, and 48 bits tell copies apart


def arrays_digest(arrays: Sequence[torch.Tensor]) -> str:
    """sha256 of the arrays as read (shape, dtype and bytes of each): the same content gives the same digest
    wherever the files lie, a changed byte another one. ~0.05 s for Fashion-MNIST's 60k images."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{tuple(array.shape)} {array.dtype};".encode())
        digest.update(array.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()[:DIGEST_CHARS]


def files_digest(root: Path, paths: Sequence[str | Path]) -> str:
    """sha256 of a file list: each path relative to `root`, its size and mtime. For folders too large to read
    twice (ImageNet's 1.3M JPEGs): a file added, removed, replaced or touched changes it."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{os.path.relpath(path, root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:DIGEST_CHARS]


def common_folder(paths: Sequence[Path]) -> str:
    """The folder holding all of `paths` (the dataset input's source)."""
    return os.path.commonpath([str(Path(p).resolve().parent) for p in paths])


# --- validation split ------------------------------------------------------------------------------------------


def check_split(val_split: int, n: int, where: str) -> None:
    """val_split must leave training images; checked before any run exists and again when building."""
    if val_split >= n:
        raise ConfigError(f"dataset.val_split={val_split} must be smaller than {where} ({n} images)")


def holdout(n: int, val_split: int, split_seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices of range(n), each in order; val is a random `val_split` of them drawn from
    `split_seed` only, so runs with different training seeds hold out the same images."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed)).tolist()
    return sorted(order[val_split:]), sorted(order[:val_split])


# --- rank sharding ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """Which images one rank reads in a pass over `n` images.

    Training: each step's global batch (batch_size × world_size) is one contiguous block of the epoch's
    permutation and rank r takes the r-th slice of it, so the ranks' union is the single-process batch of
    the same global size; the last partial global batch is dropped, so every step is full on every rank.
    Evaluation: each rank takes a contiguous chunk of the images, in order; metrics are summed over ranks."""

    n: int
    batch_size: int  # per rank
    rank: int
    world_size: int
    train: bool

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def offset(self) -> int:
        """This rank's first image inside the global batch (random draws are made for the global batch)."""
        return self.rank * self.batch_size

    @property
    def chunk(self) -> tuple[int, int]:
        return self.n * self.rank // self.world_size, self.n * (self.rank + 1) // self.world_size

    @property
    def steps(self) -> int:
        if self.train:
            return self.n // self.global_batch
        lo, hi = self.chunk
        return -(-(hi - lo) // self.batch_size)

    def span(self, i: int) -> tuple[int, int]:
        """Step i's [a, b): positions in the epoch's permutation (training) or image indices (evaluation)."""
        if self.train:
            a = i * self.global_batch + self.offset
            return a, a + self.batch_size
        lo, hi = self.chunk
        return lo + i * self.batch_size, min(hi, lo + (i + 1) * self.batch_size)


# --- normalisation --------------------------------------------------------------------------------------------

# The loader feeds (x - mean) / std, x on the 0..255 scale:
#   per_channel       mean and std per channel                      (the modern default)
#   per_channel_mean  mean per channel only: the pixel scale stays  (VGG Sec. 2.1: "subtracting the mean RGB value")
#   per_pixel         the mean image, then ÷ the overall std
#   per_pixel_mean    the mean image only: the pixel scale stays    (AlexNet Sec. 2; ResNet Sec. 4.2, CIFAR)
NORMALIZE_MODES = ("per_channel", "per_channel_mean", "per_pixel", "per_pixel_mean")


def normalization(mode: str, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of uint8 training images (N, C, H, W) for `mode`, shaped to broadcast over a batch.

    float32 over a float copy, as runner has always computed them: a float64 sum moves the inputs by ~6e-8,
    and that alone flips 2 of 3 seeds of the 30-layer init_depth_small run (a net on the edge of stability),
    so the statistics stay bit-identical across versions and earlier results stay comparable."""
    if mode not in NORMALIZE_MODES:
        raise ConfigError(f"dataset.normalize={mode!r} is unknown; allowed: {', '.join(NORMALIZE_MODES)}")
    pixels = images.float()
    c = images.shape[1]
    if mode.startswith("per_channel"):
        mean, scale = pixels.mean((0, 2, 3), keepdim=True), pixels.std((0, 2, 3), keepdim=True)
    else:
        mean, scale = pixels.mean(0, keepdim=True), pixels.std().expand(1, c, 1, 1)
    return mean, torch.ones(1, c, 1, 1) if mode.endswith("_mean") else scale
