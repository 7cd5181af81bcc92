"""A loader over uint8 image tensors resident on the training device, with batched augmentation.

Batch i of epoch e is a pure function of (seed, e, i): the shuffle and the augmentation draw from
generators seeded by those numbers, so a run resumed mid-epoch sees exactly the batches it would have.
With several ranks, each step's global batch is one contiguous block of the epoch's permutation and
rank r takes the r-th slice of it: the union over ranks equals the single-process batch of the same
global size, which is what makes a 2-process run match a 1-process run step for step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

# aug(x, gen, lo, total): x is this rank's slice [lo, lo + len(x)) of a global batch of `total` images;
# random draws are made for the whole global batch so that every image's augmentation is independent
# of how many ranks share the batch.
Augment = Callable[[torch.Tensor, torch.Generator, int, int], torch.Tensor]


def random_crop(pad: int) -> Augment:
    """Zero-pad `pad` pixels on each side, then a random crop of the original size (ResNet Sec. 4.2)."""

    def crop(x: torch.Tensor, gen: torch.Generator, lo: int, total: int) -> torch.Tensor:
        n, _, h, w = x.shape
        padded = F.pad(x, (pad, pad, pad, pad))
        offsets = torch.randint(0, 2 * pad + 1, (2, total), generator=gen, device=x.device)[:, lo : lo + n]
        oy, ox = offsets[0].view(n, 1, 1), offsets[1].view(n, 1, 1)
        rows = oy + torch.arange(h, device=x.device).view(1, h, 1)
        cols = ox + torch.arange(w, device=x.device).view(1, 1, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

    return crop


def random_flip(x: torch.Tensor, gen: torch.Generator, lo: int, total: int) -> torch.Tensor:
    """Horizontal flip of each image with probability ½."""
    flip = torch.rand(total, generator=gen, device=x.device)[lo : lo + len(x)] < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


AUGMENTS: dict[str, Augment] = {"crop": random_crop(4), "flip": random_flip}


def _mix(*numbers: int) -> int:
    """A generator seed from several small integers (SplitMix-style, stays below 2**63)."""
    h = 0x9E3779B97F4A7C15
    for v in numbers:
        h = ((h ^ (v + 0x632BE59BD9B4E019)) * 0xBF58476D1CE4E5B9) % (1 << 64)
    return h >> 1


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
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.train = batch_size, train
        self.augment = [AUGMENTS[name] for name in augment] if train else []
        self.mean, self.std = mean.to(images.device), std.to(images.device)
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if train:  # drop the last partial global batch so every step is a full batch on every rank
            self.steps = len(images) // (batch_size * world_size)
        else:  # evaluation: each rank takes a disjoint contiguous chunk; metrics are summed over ranks
            n = len(images)
            lo, hi = n * rank // world_size, n * (rank + 1) // world_size
            self.shard = (lo, hi)
            self.steps = -(-(hi - lo) // batch_size)

    def __len__(self) -> int:
        return self.steps

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.train:
            lo, hi = self.shard
            for i in range(start, self.steps):
                a, b = lo + i * self.batch_size, min(hi, lo + (i + 1) * self.batch_size)
                yield self._finish(self.images[a:b]), self.labels[a:b]
            return
        shuffle = torch.Generator().manual_seed(_mix(self.seed, epoch))
        order = torch.randperm(len(self.images), generator=shuffle).to(self.images.device)
        gen = torch.Generator(device=self.images.device)
        global_batch = self.batch_size * self.world_size
        for i in range(start, self.steps):
            lo = self.rank * self.batch_size
            idx = order[i * global_batch + lo : i * global_batch + lo + self.batch_size]
            x = self.images[idx]
            gen.manual_seed(_mix(self.seed, epoch, i))
            for aug in self.augment:
                x = aug(x, gen, lo, global_batch)
            yield self._finish(x), self.labels[idx]


def check_split(cfg, n_train: int) -> None:
    """val_split must leave training images (after `subset`); the data checks call this before any run exists."""
    from runner.errors import ConfigError

    n = min(n_train, cfg.get("subset") or n_train)
    val_split = int(cfg.get("val_split") or 0)
    if val_split >= n:
        raise ConfigError(f"dataset.val_split={val_split} must be smaller than the training set ({n} images)")


def resident_data(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    num_classes: int,
    cfg,  # conf/dataset
    ctx,  # runner.data.Context
):
    """Split off the validation set, compute the normalisation, move to the device, build the loaders."""
    from runner.data import Data
    from runner.errors import ConfigError

    if cfg.get("subset"):
        train_x, train_y = train_x[: cfg["subset"]], train_y[: cfg["subset"]]
    if cfg.get("test_subset"):
        test_x, test_y = test_x[: cfg["test_subset"]], test_y[: cfg["test_subset"]]
    check_split(cfg, len(train_x))
    val_split = int(cfg.get("val_split") or 0)
    # The held-out split depends on split_seed only, so runs with different training seeds share it.
    order = torch.randperm(
        len(train_x), generator=torch.Generator().manual_seed(int(cfg.get("split_seed", 0)))
    )
    val_idx, train_idx = order[:val_split].sort().values, order[val_split:].sort().values
    val_x, val_y = train_x[val_idx], train_y[val_idx]
    train_x, train_y = train_x[train_idx], train_y[train_idx]
    if len(train_x) < ctx.batch_size * ctx.world_size:
        raise ConfigError(
            f"trainer.batch_size={ctx.batch_size} × {ctx.world_size} device(s) is larger than the "
            f"training set ({len(train_x)} images)"
        )

    pixels = train_x.float()
    if cfg.get("normalize", "per_channel") == "per_pixel":  # ResNet/AlexNet: subtract the mean image
        mean, std = pixels.mean(0, keepdim=True), pixels.std().expand(1, train_x.shape[1], 1, 1)
    else:
        mean = pixels.mean((0, 2, 3), keepdim=True)
        std = pixels.std((0, 2, 3), keepdim=True)
    del pixels

    def loader(x: torch.Tensor, y: torch.Tensor, train: bool) -> TensorLoader:
        return TensorLoader(
            x.to(ctx.device),
            y.to(ctx.device),
            batch_size=ctx.batch_size,
            mean=mean,
            std=std,
            train=train,
            augment=cfg.get("augment") or (),
            rank=ctx.rank,
            world_size=ctx.world_size,
            seed=ctx.seed,
            channels_last=ctx.channels_last,
        )

    return Data(
        train=loader(train_x, train_y, True),
        val=loader(val_x, val_y, False) if val_split else None,
        test=loader(test_x, test_y, False),
        num_classes=num_classes,
        in_channels=train_x.shape[1],
        image_size=train_x.shape[-1],
        train_size=len(train_x),
    )
