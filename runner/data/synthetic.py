"""Synthetic data: random uint8 images and labels of any shape and class count, resident on the device.

For throughput benchmarks (no disk, no decode: the compute-bound rate) and for tests. Nothing to learn:
labels are independent of the pixels, so the error stays at chance.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from runner.data import Context, Data, Shape, register_dataset
from runner.data.tensor_loader import check_options, resident_data
from runner.errors import ConfigError

SIZES = ("image_size", "in_channels", "num_classes", "train_size", "test_size")


def check(cfg: Mapping[str, Any], cwd: Path) -> None:
    for key in SIZES:
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ConfigError(f"dataset.{key}={cfg[key]!r} is not allowed; expected an integer ≥ 1")
    check_options(cfg, cfg["train_size"])


def shape(cfg: Mapping[str, Any]) -> Shape:
    return Shape(cfg["in_channels"], cfg["image_size"], cfg["num_classes"])


@register_dataset("synthetic", shape=shape, check=check)
def build(cfg: Mapping[str, Any], ctx: Context) -> Data:
    check(cfg, ctx.cwd)
    gen = torch.Generator().manual_seed(cfg["data_seed"])
    size = (cfg["in_channels"], cfg["image_size"], cfg["image_size"])

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randint(0, 256, (n, *size), generator=gen, dtype=torch.uint8)
        return x, torch.randint(0, cfg["num_classes"], (n,), generator=gen)

    return resident_data(
        *draw(cfg["train_size"]), *draw(cfg["test_size"]), num_classes=cfg["num_classes"], cfg=cfg, ctx=ctx
    )
