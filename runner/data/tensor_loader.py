"""A loader over uint8 image tensors resident on the training device, with batched augmentation.

Batch i of epoch e is a pure function of (seed, e, i): the shuffle and the augmentation draw from
generators seeded by those numbers, so a run resumed mid-epoch sees exactly the batches it would have.
Ranks share each global batch as runner/data/common.py:Shard says, which is what makes a 2-process run
match a 1-process run step for step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from runner.data.common import (
    NORMALIZE_MODES,
    Shard,
    arrays_digest,
    check_split,
    epoch_order,
    holdout,
    mix_seed,
    normalization,
)
from runner.errors import ConfigError

# aug(x, gen, lo, total): x is this rank's slice [lo, lo + len(x)) of a global batch of `total` images;
# random draws are made for the whole global batch so that every image's augmentation is independent
# of how many ranks share the batch.
Augment = Callable[[torch.Tensor, torch.Generator, int, int], torch.Tensor]


CROP_PAD = 4  # pixels of padding on each side (ResNet Sec. 4.2)


def random_crop(x: torch.Tensor, gen: torch.Generator, lo: int, total: int) -> torch.Tensor:
    """Pad CROP_PAD zeros on each side, then a random crop of the original size (ResNet Sec. 4.2). Run after
    centring (crop_pad: mean) the zeros are the mean; run on the raw uint8 (crop_pad: black) they are black."""
    pad = CROP_PAD
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, total), generator=gen, device=x.device)[:, lo : lo + n]
    oy, ox = offsets[0].view(n, 1, 1), offsets[1].view(n, 1, 1)
    rows = oy + torch.arange(h, device=x.device).view(1, h, 1)
    cols = ox + torch.arange(w, device=x.device).view(1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, gen: torch.Generator, lo: int, total: int) -> torch.Tensor:
    """Horizontal flip of each image with probability ½."""
    flip = torch.rand(total, generator=gen, device=x.device)[lo : lo + len(x)] < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


AUGMENTS: dict[str, Augment] = {"crop": random_crop, "flip": random_flip}
CROP_PADS = ("mean", "black")
# Views per test image. ImageNet's center and ten_crop (224 crops of a 256 image) have no meaning on a
# 32×32 image: asked of a resident set they are an error naming these, never read as the whole image.
TEST_VIEWS = {"whole": 1, "dense": 2}


class TensorLoader:
    def __init__(
        self,
        images: torch.Tensor,  # uint8 (N, C, H, W), on the device
        labels: torch.Tensor,  # int64 (N,), on the device
        *,
        batch_size: int,  # per rank
        mean: torch.Tensor,  # float (1, C, H, W) or (1, C, 1, 1): per-pixel or per-channel
        std: torch.Tensor,
        train: bool,
        augment: Sequence[str] = (),
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        channels_last: bool = False,
        pad_with_mean: bool = False,  # centre before augmenting, so the crop's zero padding is the mean
        flip_view: bool = False,  # test batches (N, 2, C, H, W): each image and its horizontal flip (dense)
    ) -> None:
        self.images, self.labels = images, labels
        self.train, self.seed = train, seed
        self.augment = [AUGMENTS[name] for name in augment] if train else []
        self.mean, self.std = mean.to(images.device), std.to(images.device)
        self.shard = Shard(len(images), batch_size, rank, world_size, train)
        self.pad_with_mean, self.flip_view = pad_with_mean, flip_view
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return self.shard.steps

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shard = self.shard
        if not self.train:
            for i in range(start, shard.steps):
                a, b = shard.span(i)
                x = self._normalize(self.images[a:b])
                if self.flip_view:
                    yield torch.stack([x, x.flip(3)], 1), self.labels[a:b]
                else:
                    yield x.contiguous(memory_format=self.memory_format), self.labels[a:b]
            return
        order = epoch_order(len(self.images), self.seed, epoch).to(self.images.device)
        gen = torch.Generator(device=self.images.device)
        for i in range(start, shard.steps):
            idx = order[slice(*shard.span(i))]
            x = self.images[idx]
            gen.manual_seed(mix_seed(self.seed, epoch, i))
            x = self._normalize(x) if self.pad_with_mean else x
            for aug in self.augment:
                x = aug(x, gen, shard.offset, shard.global_batch)
            x = x if self.pad_with_mean else self._normalize(x)
            yield x.contiguous(memory_format=self.memory_format), self.labels[idx]


def check_test_view(cfg: Mapping[str, Any]) -> None:
    """A test view this data set can do (the pre-flight's dry build asks too, before any run exists)."""
    if cfg["test_view"] not in TEST_VIEWS:
        raise ConfigError(
            f"dataset.test_view={cfg['test_view']!r} is not offered for {cfg['name']} (its images are the "
            f"network's input: no crops to take); allowed: {', '.join(TEST_VIEWS)}"
        )


def check_options(cfg: Mapping[str, Any], n_train: int) -> None:
    """The resident data sets' options and split, before any run exists: one ConfigError line each."""
    for key, allowed in (("normalize", NORMALIZE_MODES), ("crop_pad", CROP_PADS)):
        if cfg[key] not in allowed:
            raise ConfigError(f"dataset.{key}={cfg[key]!r} is not allowed; allowed: {', '.join(allowed)}")
    check_test_view(cfg)
    for name in cfg["augment"]:
        if name not in AUGMENTS:
            raise ConfigError(f"dataset.augment: {name!r} is unknown; allowed: {', '.join(AUGMENTS)}")
    check_split(cfg["val_split"] or 0, min(n_train, cfg["subset"] or n_train), "the training set")


def resident_data(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    num_classes: int,
    cfg: Mapping[str, Any],  # conf/dataset
    ctx: Any,  # runner.data.Context
    source: str | None = None,  # the folder the arrays were read from; None: made in memory (synthetic)
) -> Any:  # runner.data.Data
    """Split off the validation set, compute the normalisation, move to the device, build the loaders.
    The input tensors may be shared (common.read_once): only copies of them are kept or changed here."""
    from runner.data import Data, Provenance

    check_options(cfg, len(train_x))
    digest = arrays_digest((train_x, train_y, test_x, test_y))  # all that was read, before any subset
    if cfg["subset"]:
        train_x, train_y = train_x[: cfg["subset"]], train_y[: cfg["subset"]]
    if cfg["test_subset"]:
        test_x, test_y = test_x[: cfg["test_subset"]], test_y[: cfg["test_subset"]]
    train_idx, val_idx = holdout(len(train_x), cfg["val_split"] or 0, cfg["split_seed"])
    val_x, val_y = train_x[val_idx], train_y[val_idx]
    train_x, train_y = train_x[train_idx], train_y[train_idx]
    if len(train_x) < ctx.batch_size * ctx.world_size:
        raise ConfigError(
            f"trainer.batch_size={ctx.batch_size} × {ctx.world_size} device(s) is larger than the "
            f"training set ({len(train_x)} images)"
        )
    mean, std = normalization(cfg["normalize"], train_x)  # statistics of the training split only

    def loader(x: torch.Tensor, y: torch.Tensor, train: bool) -> TensorLoader:
        return TensorLoader(
            x.to(ctx.device),
            y.to(ctx.device),
            batch_size=ctx.batch_size,
            mean=mean,
            std=std,
            train=train,
            augment=cfg["augment"],
            rank=ctx.rank,
            world_size=ctx.world_size,
            seed=ctx.seed,
            channels_last=ctx.channels_last,
            pad_with_mean=cfg["crop_pad"] == "mean",
            flip_view=TEST_VIEWS[cfg["test_view"]] == 2,
        )

    sizes = {"train": len(train_x), "val": len(val_idx), "test": len(test_x)}
    return Data(
        train=loader(train_x, train_y, True),
        val=loader(val_x, val_y, False) if len(val_idx) else None,
        test=loader(test_x, test_y, False),
        num_classes=num_classes,
        in_channels=train_x.shape[1],
        image_size=train_x.shape[-1],
        train_size=len(train_x),
        provenance=Provenance(source or "in memory", digest, sizes, generated=source is None),
    )
