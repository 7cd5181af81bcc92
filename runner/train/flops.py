"""Multiply-adds of a model, counted by PyTorch's own `torch.utils.flop_counter.FlopCounterMode`.

What is counted: the convolutions and matrix products (conv and linear layers) of one forward pass of one
image, as multiply-adds. FlopCounterMode counts FLOPs = 2 × multiply-adds for these ops, so the number
reported here is its total ÷ 2. Batch norm, activations, pooling and the softmax are not counted. This is
the convention of the ResNet paper's "FLOPs" (He et al. 2015, Table 1: ResNet-50 3.8 × 10⁹ multiply-adds;
Sec. 4.1: VGG-19 19.6 × 10⁹) and of torchvision's model metadata; other tables count 2 × as many.

The model is built and run on the meta device: no memory, no weights, no arithmetic, so counting VGG-19 at
224×224 takes milliseconds.

    python -m runner.train.flops            # every model at 224×224 (3 channels, 1000 classes) and at 32×32
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def multiply_adds(model: nn.Module, in_channels: int, image_size: int) -> int:
    """Multiply-adds of conv and linear layers for one image of in_channels × image_size × image_size.
    The model's device is used as is: a model built on the meta device costs nothing to count."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # dropout and batch norm do not change the count; eval mode leaves BN statistics alone
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_channels, image_size, image_size, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2  # FlopCounterMode counts a multiply-add as 2 FLOPs


def model_multiply_adds(
    model_cfg: Mapping[str, Any],
    act_cfg: Mapping[str, Any],
    *,
    in_channels: int,
    image_size: int,
    classes: int,
) -> int:
    """Multiply-adds of the model a config builds (conf/model, conf/act), built on the meta device."""
    from runner.models import build_model
    from runner.models.layers import make_act

    with torch.device("meta"):
        model = build_model(
            model_cfg,
            num_classes=classes,
            in_channels=in_channels,
            image_size=image_size,
            act=make_act(act_cfg),
        )
    return multiply_adds(model, in_channels, image_size)


def run_multiply_adds(cfg: Mapping[str, Any]) -> int:
    """Multiply-adds per image of a run: its model at its data set's training input size."""
    from runner.data import dataset_shape

    shape = dataset_shape(cfg["dataset"])
    return model_multiply_adds(
        cfg["model"], cfg["act"], in_channels=shape.channels, image_size=shape.size, classes=shape.classes
    )


def describe(count: int, in_channels: int, image_size: int) -> str:
    """The line model_summary.txt carries."""
    return (
        f"multiply-adds: {count:,} ({count / 1e9:.3g} × 10⁹) per {in_channels}×{image_size}×{image_size} "
        "image, conv and linear layers (torch.utils.flop_counter FLOPs ÷ 2)"
    )


def table() -> list[tuple[str, float, float]]:
    """(model, multiply-adds ×10⁹ at 3×224×224 with 1000 classes, ×10⁶ at 3×32×32 with 10 classes) for every
    model in conf/model with its YAML options: the README's Models table column comes from this."""
    from runner.config import CONF_DIR, parse_yaml

    relu = parse_yaml((CONF_DIR / "act" / "relu.yaml").read_text())
    rows = []
    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        model_cfg = parse_yaml(path.read_text())
        large = model_multiply_adds(model_cfg, relu, in_channels=3, image_size=224, classes=1000)
        small = model_multiply_adds(model_cfg, relu, in_channels=3, image_size=32, classes=10)
        rows.append((model_cfg["name"], large / 1e9, small / 1e6))
    return rows


def main() -> None:
    print("multiply-adds per image, conv and linear layers (torch.utils.flop_counter FLOPs ÷ 2), ReLU")
    print("| model | ×10⁹ at 3×224×224, 1000 classes | ×10⁶ at 3×32×32, 10 classes |")
    print("|---|---|---|")
    for name, large, small in table():
        print(f"| `{name}` | {large:.2f} | {small:.1f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
