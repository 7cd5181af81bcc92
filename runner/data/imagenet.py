"""ImageNet (ILSVRC-2012) as an ImageFolder tree: `<root>/train/<class>/*.JPEG` and `<root>/val/<class>/*.JPEG`.

Too large to live on the device: DataLoader workers decode JPEGs with PIL and make one augmented view per image
(runner/data/augment.py); batches are pinned and copied with non_blocking; lighting and normalisation run
batched on the device. Like the resident loader, batch i of epoch e is a pure function of (seed, e, i) and
each rank takes its slice of every global batch (DistributedSampler-style sharding, `set_epoch` per epoch).
The validation split is held out of train/ (`val_split`, by `split_seed`); the test set is val/.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from runner.data import Context, Data, register
from runner.data.augment import IMAGENET_MEAN, IMAGENET_STD, TEST_VIEWS, TRAIN_VIEWS, Transform, lighting
from runner.data.tensor_loader import _mix
from runner.errors import ConfigError, DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
HOW_TO_GET = (
    "download ILSVRC-2012 from https://image-net.org (registration required), unpack it as train/ and val/ "
    "with one folder per class, and set dataset.root to the folder holding them"
)


def scan(folder: Path, classes: list[str] | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted folder names, or the given train/ classes) and (path, label) for every image."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} not found; {HOW_TO_GET}")
    found = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    classes = found if classes is None else classes
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for name in found:
        if name not in index:
            raise DataError(
                f"{folder / name}: class folder not present in train/; val/ must use train/'s classes"
            )
        files = sorted(e.path for e in os.scandir(folder / name) if e.is_file())
        samples += [(path, index[name]) for path in files if os.path.splitext(path)[1].lower() in EXTENSIONS]
    if not samples:
        raise DataError(f"{folder}: no images (*.jpg, *.png, ...) in class folders; {HOW_TO_GET}")
    return classes, samples


class ImageFolder(Dataset):
    """Indexed by (epoch, i): the view of image i drawn from a generator seeded by (seed, epoch, i)."""

    def __init__(self, samples: list[tuple[str, int]], view: Transform, seed: int) -> None:
        self.samples, self.view, self.seed = samples, view, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        path, label = self.samples[i]
        try:
            with Image.open(path) as f:
                img = f.convert("RGB")
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot decode image ({e}); delete or replace it") from None
        return self.view(img, random.Random(_mix(self.seed, epoch, i))), label


class ShardedBatches:
    """Batch sampler. Training: epoch-seeded permutation cut into global batches (last partial one dropped),
    rank r taking the r-th slice of each. Evaluation: a contiguous chunk per rank, in order."""

    def __init__(self, n: int, batch_size: int, rank: int, world_size: int, seed: int, train: bool) -> None:
        self.n, self.batch_size, self.rank, self.world_size, self.seed, self.train = (
            n,
            batch_size,
            rank,
            world_size,
            seed,
            train,
        )
        self.epoch, self.start = 0, 0
        if train:
            self.steps = n // (batch_size * world_size)
        else:
            self.shard = (n * rank // world_size, n * (rank + 1) // world_size)
            self.steps = -(-(self.shard[1] - self.shard[0]) // batch_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if not self.train:
            lo, hi = self.shard
            for i in range(self.start, self.steps):
                yield [
                    (0, j) for j in range(lo + i * self.batch_size, min(hi, lo + (i + 1) * self.batch_size))
                ]
            return
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, self.epoch)))
        global_batch = self.batch_size * self.world_size
        for i in range(self.start, self.steps):
            lo = i * global_batch + self.rank * self.batch_size
            yield [(self.epoch, j) for j in order[lo : lo + self.batch_size].tolist()]


class FolderLoader:
    """`batches(epoch, start)` over an ImageFolder: workers decode, the device does lighting + normalisation."""

    def __init__(
        self,
        dataset: ImageFolder,
        sampler: ShardedBatches,
        *,
        device: torch.device,
        workers: int,
        lighting_std: float,
        channels_last: bool,
    ) -> None:
        self.sampler, self.device = sampler, device
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",  # page-locked batches: the copy below overlaps compute
            persistent_workers=workers > 0 and sampler.train,  # evaluation workers exit between passes
            prefetch_factor=4 if workers > 0 else None,
        )
        self.lighting = lighting(lighting_std) if lighting_std and sampler.train else None
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return self.sampler.steps

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch, start)
        s = self.sampler
        gen = torch.Generator(device=self.device)
        for i, (x, y) in enumerate(self.loader, start):
            x = x.to(self.device, non_blocking=True).float()
            y = y.to(self.device, non_blocking=True)
            if self.lighting is not None:
                gen.manual_seed(_mix(s.seed, epoch, i, 1))
                x = self.lighting(x, gen, s.rank * s.batch_size, s.batch_size * s.world_size)
            x = (x - self.mean) / self.std
            if x.dim() == 4:  # (N, 10, C, H, W) ten-crop batches stay as they are
                x = x.contiguous(memory_format=self.memory_format)
            yield x, y


def check(cfg: Mapping[str, Any], cwd: Path) -> None:
    """Before any MLflow run exists: options are known and both folders hold images."""
    if cfg.get("download"):
        raise ConfigError(f"dataset.download=true is not possible for ImageNet; {HOW_TO_GET}")
    if cfg["augment"] not in TRAIN_VIEWS:
        raise ConfigError(f"dataset.augment={cfg['augment']!r} is unknown; allowed: {', '.join(TRAIN_VIEWS)}")
    if cfg["test_view"] not in TEST_VIEWS:
        raise ConfigError(
            f"dataset.test_view={cfg['test_view']!r} is unknown; allowed: {', '.join(TEST_VIEWS)}"
        )
    if cfg.get("normalize", "per_channel") != "per_channel":
        raise ConfigError(
            "dataset.normalize=per_pixel is not offered for ImageNet: the mean image of random crops is flat, "
            "so the per-channel mean (the default) subtracts the same; allowed: per_channel"
        )
    root = (cwd / cfg["root"]).resolve()
    classes, _ = scan(root / "train")
    scan(root / "val", classes)


def _pick(n: int, k: int | None, seed: int) -> list[int]:
    """k indices of n spread over all classes (a seeded random subset, in file order); all if k is None."""
    if not k or k >= n:
        return list(range(n))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist())


def build(cfg: Mapping[str, Any], ctx: Context) -> Data:
    check(cfg, ctx.cwd)
    root = (ctx.cwd / cfg["root"]).resolve()
    classes, train = scan(root / "train")
    _, test = scan(root / "val", classes)
    val_split = int(cfg.get("val_split") or 0)
    if val_split >= len(train):
        raise ConfigError(
            f"dataset.val_split={val_split} must be smaller than {root / 'train'} ({len(train)} images)"
        )
    split_seed = int(cfg.get("split_seed", 0))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(split_seed)).tolist()
    val = [train[i] for i in sorted(order[:val_split])]
    train = [train[i] for i in sorted(order[val_split:])]
    train = [train[i] for i in _pick(len(train), cfg.get("subset"), split_seed)]
    test = [test[i] for i in _pick(len(test), cfg.get("test_subset"), split_seed)]
    if len(train) < ctx.batch_size * ctx.world_size:
        raise ConfigError(
            f"trainer.batch_size={ctx.batch_size} × {ctx.world_size} device(s) is larger than the "
            f"training set ({len(train)} images)"
        )
    workers = cfg.get("workers")
    if workers is None:  # leave one core per process for the training loop itself
        workers = max(0, (os.cpu_count() or 1) // ctx.world_size - 1)
    train_view, test_view = TRAIN_VIEWS[cfg["augment"]](cfg), TEST_VIEWS[cfg["test_view"]](cfg)

    def loader(samples: list[tuple[str, int]], is_train: bool) -> FolderLoader:
        dataset = ImageFolder(samples, train_view if is_train else test_view, ctx.seed)
        sampler = ShardedBatches(len(samples), ctx.batch_size, ctx.rank, ctx.world_size, ctx.seed, is_train)
        return FolderLoader(
            dataset,
            sampler,
            device=ctx.device,
            workers=workers,
            lighting_std=float(cfg.get("lighting") or 0.0),
            channels_last=ctx.channels_last,
        )

    return Data(
        train=loader(train, True),
        val=loader(val, False) if val else None,
        test=loader(test, False),
        num_classes=len(classes),
        in_channels=3,
        image_size=cfg["crop"],
        train_size=len(train),
    )


register("imagenet", build, check)
