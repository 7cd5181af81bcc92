"""ImageNet (ILSVRC-2012) as an ImageFolder tree: `<root>/train/<class>/*.JPEG` and `<root>/val/<class>/*.JPEG`.

Too large to live on the device: DataLoader workers decode JPEGs with PIL and make one augmented view per image
(runner/data/augment.py); batches are pinned and copied with non_blocking; lighting and normalisation run
batched on the device. Like the resident loader, batch i of epoch e is a pure function of (seed, e, i) and
each rank takes its slice of every global batch (DistributedSampler-style sharding, `set_epoch` per epoch).
The validation split is held out of train/ (`val_split`, by `split_seed`); the test set is val/. The validation
and test sets use `test_view`; with `dense` their batches hold one image each (whole images differ in size).
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

from runner.data import Context, Data, Provenance, Shape, register_dataset
from runner.data.augment import IMAGENET_MEAN, IMAGENET_STD, TEST_VIEWS, TRAIN_VIEWS, Transform, lighting
from runner.data.common import Shard, check_split, epoch_order, files_digest, holdout, mix_seed
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
        return self.view(img, random.Random(mix_seed(self.seed, epoch, i))), label


class ShardedBatches:
    """Batch sampler of (epoch, index) keys: this rank's share of each batch (common.Shard), in the epoch's
    permutation for training, in order for evaluation."""

    def __init__(self, n: int, batch_size: int, rank: int, world_size: int, seed: int, train: bool) -> None:
        self.shard = Shard(n, batch_size, rank, world_size, train)
        self.seed, self.train = seed, train
        self.epoch, self.start = 0, 0

    @property
    def steps(self) -> int:
        return self.shard.steps

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if not self.train:
            for i in range(self.start, self.steps):
                yield [(0, j) for j in range(*self.shard.span(i))]
            return
        order = epoch_order(self.shard.n, self.seed, self.epoch)
        for i in range(self.start, self.steps):
            yield [(self.epoch, j) for j in order[slice(*self.shard.span(i))].tolist()]


# ImageNet's inputs are (x - mean) / std with the published training-set RGB statistics (augment.py). The
# per-pixel forms are not offered: see conf/dataset/imagenet.yaml (normalize) for why.
NORMALIZE = {
    "per_channel": (IMAGENET_MEAN, IMAGENET_STD),
    "per_channel_mean": (IMAGENET_MEAN, (1.0, 1.0, 1.0)),
}


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
        normalize: str,
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
        mean, std = NORMALIZE[normalize]
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return self.sampler.steps

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch, start)
        shard = self.sampler.shard
        gen = torch.Generator(device=self.device)
        for i, (x, y) in enumerate(self.loader, start):
            x = x.to(self.device, non_blocking=True).float()
            y = y.to(self.device, non_blocking=True)
            if self.lighting is not None:
                gen.manual_seed(mix_seed(self.sampler.seed, epoch, i, 1))
                x = self.lighting(x, gen, shard.offset, shard.global_batch)
            x = (x - self.mean) / self.std  # (1, 3, 1, 1) broadcasts over (N, views, 3, H, W) too
            if x.dim() == 4:  # multi-view batches (N, views, C, H, W) stay as they are
                x = x.contiguous(memory_format=self.memory_format)
            yield x, y


def _check_options(cfg: Mapping[str, Any]) -> None:
    if cfg["download"]:
        raise ConfigError(f"dataset.download=true is not possible for ImageNet; {HOW_TO_GET}")
    for key, allowed in (("augment", TRAIN_VIEWS), ("test_view", TEST_VIEWS), ("normalize", NORMALIZE)):
        if cfg[key] not in allowed:
            raise ConfigError(
                f"dataset.{key}={cfg[key]!r} is not offered for ImageNet; allowed: {', '.join(allowed)}"
            )


def _scan_both(cfg: Mapping[str, Any], cwd: Path) -> tuple[Path, list, list]:
    """(root, train samples, val/ samples); train/ must hold dataset.num_classes class folders."""
    root = (cwd / cfg["root"]).resolve()
    classes, train = scan(root / "train")
    if len(classes) != cfg["num_classes"]:
        raise DataError(
            f"{root / 'train'} has {len(classes)} class folders, dataset.num_classes={cfg['num_classes']}; "
            f"set dataset.num_classes={len(classes)}"
        )
    _, test = scan(root / "val", classes)
    return root, train, test


def check(cfg: Mapping[str, Any], cwd: Path) -> None:
    """Before any MLflow run exists: options are known, both folders hold images, the split fits."""
    _check_options(cfg)
    root, train, _ = _scan_both(cfg, cwd)
    check_split(cfg["val_split"] or 0, len(train), str(root / "train"))


def _pick(n: int, k: int | None, seed: int) -> list[int]:
    """k indices of n spread over all classes (a seeded random subset, in file order); all if k is None."""
    if not k or k >= n:
        return list(range(n))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist())


def shape(cfg: Mapping[str, Any]) -> Shape:
    """The training crop and dataset.num_classes (1000 for ILSVRC-2012; build checks train/ agrees)."""
    return Shape(3, cfg["crop"], cfg["num_classes"])


@register_dataset("imagenet", shape=shape, check=check)
def build(cfg: Mapping[str, Any], ctx: Context) -> Data:
    check(cfg, ctx.cwd)
    root, samples, every_test = _scan_both(cfg, ctx.cwd)
    train_idx, val_idx = holdout(len(samples), cfg["val_split"] or 0, cfg["split_seed"])
    val = [samples[i] for i in val_idx]
    train = [samples[i] for i in train_idx]
    train = [train[i] for i in _pick(len(train), cfg["subset"], cfg["split_seed"])]
    test = [every_test[i] for i in _pick(len(every_test), cfg["test_subset"], cfg["split_seed"])]
    if len(train) < ctx.batch_size * ctx.world_size:
        raise ConfigError(
            f"trainer.batch_size={ctx.batch_size} × {ctx.world_size} device(s) is larger than the "
            f"training set ({len(train)} images)"
        )
    workers = cfg["workers"]
    if workers is None:  # leave one core per process for the training loop itself
        workers = max(0, (os.cpu_count() or 1) // ctx.world_size - 1)
    train_view, test_view = TRAIN_VIEWS[cfg["augment"]](cfg), TEST_VIEWS[cfg["test_view"]](cfg)
    eval_batch = 1 if cfg["test_view"] == "dense" else ctx.batch_size  # whole images differ in size

    def loader(samples: list[tuple[str, int]], is_train: bool) -> FolderLoader:
        dataset = ImageFolder(samples, train_view if is_train else test_view, ctx.seed)
        batch = ctx.batch_size if is_train else eval_batch
        sampler = ShardedBatches(len(samples), batch, ctx.rank, ctx.world_size, ctx.seed, is_train)
        return FolderLoader(
            dataset,
            sampler,
            device=ctx.device,
            workers=workers,
            lighting_std=float(cfg["lighting"] or 0.0),
            normalize=cfg["normalize"],
            channels_last=ctx.channels_last,
        )

    return Data(
        train=loader(train, True),
        val=loader(val, False) if val else None,
        test=loader(test, False),
        num_classes=cfg["num_classes"],
        in_channels=3,
        image_size=cfg["crop"],
        train_size=len(train),
        provenance=provenance(
            root, samples + every_test, {"train": len(train), "val": len(val), "test": len(test)}
        )
        if ctx.rank == 0  # only rank 0 logs it: the other ranks skip 1.3M stat calls
        else None,
    )


def provenance(root: Path, samples: list[tuple[str, int]], sizes: dict[str, int]) -> Provenance:
    """The folder, and a digest of every image of train/ and val/ (path, size, mtime), not of every byte."""
    return Provenance(str(root), files_digest(root, [path for path, _ in samples]), sizes)
