"""Synthetic data: random uint8 images and labels of any shape and class count, resident on the device.

For throughput benchmarks (no disk, no decode: the compute-bound rate) and for tests. Nothing to learn:
labels are independent of the pixels, so the error stays at chance.
"""

from __future__ import annotations

from pathlib import Path

import torch

from runner.data import Context, Data, register
from runner.data.tensor_loader import check_split, resident_data
from runner.errors import ConfigError

SIZES = ("image_size", "in_channels", "num_classes", "train_size", "test_size")


def check(cfg, cwd: Path) -> None:
    for key in SIZES:
        if not isinstance(cfg.get(key), int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ConfigError(f"dataset.{key}={cfg.get(key)!r} is not allowed; expected an integer ≥ 1")
    check_split(cfg, cfg["train_size"])


def build(cfg, ctx: Context) -> Data:
    check(cfg, ctx.cwd)
    gen = torch.Generator().manual_seed(int(cfg.get("data_seed", 0)))
    shape = (cfg["in_channels"], cfg["image_size"], cfg["image_size"])

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
        return x, torch.randint(0, cfg["num_classes"], (n,), generator=gen)

    return resident_data(
        *draw(cfg["train_size"]), *draw(cfg["test_size"]), num_classes=cfg["num_classes"], cfg=cfg, ctx=ctx
    )


register("synthetic", build, check)
