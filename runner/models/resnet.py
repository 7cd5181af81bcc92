"""ResNet (He, Zhang, Ren, Sun 2015, arXiv 1512.03385) and its plain counterparts.

CIFAR nets (Sec. 4.2): 3×3 conv of 16 filters, then 3 stages of n basic blocks on 32/16/8 maps with
16/32/64 filters, global average pool, FC: 6n+2 weight layers. Shortcuts are option A (identity with
zero-padded channels and stride-2 subsampling), so a ResNet and its plain net have the same parameters.

ImageNet nets (Table 1, at the end of this file): ResNet-18/34 (basic blocks), 50/101/152 (bottlenecks),
plain-18/34, shortcut option A, B (the YAML's choice, as Table 3/4 for 50-152) or C.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from runner.config.schema import choice, integer
from runner.models import ModelArgs, register_model
from runner.models.layers import ActFactory

# The YAML options of this family's builders and what each allows: the pre-flight reads this table from the
# source without importing torch (runner/config/schema.py: model_option_rules); a test holds it equal to the
# builders' keyword-only arguments.
OPTIONS = {
    "shortcut": choice(
        "A", "B", "C"
    ),  # Sec. 3.3 / Table 3: zero-padding identity, projection where shapes change, everywhere
    "width": integer(1, 4096),  # filters of the first stage
    "stride_on": choice("1x1", "3x3"),  # where a bottleneck downsamples
}


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class ShortcutA(nn.Module):
    """Option A: identity; subsample by 2 and zero-pad the extra channels. No parameters."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Options B/C: 1×1 conv + BN."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


def make_shortcut(option: str, c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """A: parameter-free everywhere; B: projection only where the shape changes; C: projection everywhere."""
    same_shape = stride == 1 and c_in == c_out
    if option == "C" or (option == "B" and not same_shape):
        return projection(c_in, c_out, stride)
    if same_shape:
        return nn.Identity()
    return ShortcutA(c_in, c_out, stride)


class BasicBlock(nn.Module):
    """Two 3×3 convs, BN after each, activation after the addition (Fig. 2 of the paper).

    With `shortcut=None` the block is the plain net's: the same two layers, no addition.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, act: ActFactory, shortcut: str | None) -> None:
        super().__init__()
        self.conv1, self.bn1, self.act1 = conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out), act(c_out)
        self.conv2, self.bn2, self.act2 = conv3x3(c_out, c_out), nn.BatchNorm2d(c_out), act(c_out)
        self.bn2.runner_residual_last = True
        self.shortcut = make_shortcut(shortcut, c_in, c_out, stride) if shortcut else None
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act2(out)


class ResNet(nn.Module):
    """stem → stages of blocks (stride 2 in the first block of every stage but the first) → global average
    pool → FC. The CIFAR and the ImageNet nets differ only in their stem, widths, counts and block."""

    def __init__(
        self,
        stem: nn.Module,
        c_in: int,
        widths: list[int],
        counts: list[int],
        block: Callable[[int, int, int], nn.Module],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.stem = stem
        blocks = []
        for stage, (width, count) in enumerate(zip(widths, counts, strict=True)):
            for i in range(count):
                blocks.append(block(c_in, width, 2 if stage > 0 and i == 0 else 1))
                c_in = blocks[-1].c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)  # any input size runs: 8×8 maps at 32 (CIFAR), 7×7 at 224
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def check_shortcut_and_width(shortcut: str | None, width: int) -> None:
    """`shortcut` None is the plain net's (no shortcuts); A, B, C are the paper's options (A, B: Sec. 3.3; C: Sec. 4.1)."""
    if shortcut not in (None, "A", "B", "C"):
        raise ValueError(f"model.shortcut must be one of A, B, C, got {shortcut!r}")
    if width < 1:
        raise ValueError(f"model.width must be ≥ 1, got {width}")


def cifar_net(depth: int, args: ModelArgs, shortcut: str | None, width: int) -> nn.Module:
    """`width` is the first stage's filter count (16 in the paper); stages use width, 2·width, 4·width."""
    check_shortcut_and_width(shortcut, width)
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n, act = (depth - 2) // 6, args.act
    stem = nn.Sequential(conv3x3(args.in_channels, width), nn.BatchNorm2d(width), act(width))

    def block(c_in: int, c_out: int, stride: int) -> nn.Module:
        return BasicBlock(c_in, c_out, stride, act, shortcut)

    return ResNet(stem, width, [width, 2 * width, 4 * width], [n] * 3, block, args.num_classes)


def cifar_resnet(depth: int, args: ModelArgs, *, shortcut: str, width: int) -> nn.Module:
    return cifar_net(depth, args, shortcut, width)


def cifar_plain(depth: int, args: ModelArgs, *, width: int) -> nn.Module:
    """The plain counterpart (Fig. 6): the same layers, no shortcuts."""
    return cifar_net(depth, args, None, width)


for _depth in (20, 32, 44, 56, 110, 1202):
    register_model(f"resnet{_depth}")(partial(cifar_resnet, _depth))
for _depth in (20, 32, 44, 56, 110):
    register_model(f"plain{_depth}")(partial(cifar_plain, _depth))


# --- ImageNet nets (Table 1) -------------------------------------------------------------------------
# conv1 7×7/2, 64 → max-pool 3×3/2 → conv2_x..conv5_x on 56/28/14/7 maps (stride 2 at conv3_1, conv4_1,
# conv5_1) with width·(1, 2, 4, 8) filters (×4 out of a bottleneck) → global average pool → FC.


class Bottleneck(nn.Module):
    """1×1 (reduce) → 3×3 → 1×1 (expand ×4), BN after each conv, activation after the addition (Fig. 5).

    The stride-2 sits on the first 1×1, as the paper's released Caffe models (`stride_on="1x1"`), or on
    the 3×3 (`"3x3"`, torchvision's "v1.5"); it changes FLOPs, not parameters.
    """

    expansion = 4

    def __init__(
        self, c_in: int, width: int, stride: int, act: ActFactory, shortcut: str | None, stride_on: str
    ) -> None:
        super().__init__()
        c_out = width * self.expansion
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = nn.Conv2d(c_in, width, 1, stride=s1, bias=False)
        self.bn1, self.act1 = nn.BatchNorm2d(width), act(width)
        self.conv2, self.bn2, self.act2 = conv3x3(width, width, s3), nn.BatchNorm2d(width), act(width)
        self.conv3, self.bn3, self.act3 = (
            nn.Conv2d(width, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
            act(c_out),
        )
        self.bn3.runner_residual_last = True
        self.shortcut = make_shortcut(shortcut, c_in, c_out, stride) if shortcut else None
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.act2(self.bn2(self.conv2(out)))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act3(out)


# depth → (block, blocks per stage), Table 1.
IMAGENET: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def imagenet_net(depth: int, args: ModelArgs, shortcut: str | None, width: int, stride_on: str) -> nn.Module:
    """`width` is conv1's and conv2_x's filter count (64 in the paper); stages use width·(1, 2, 4, 8)."""
    check_shortcut_and_width(shortcut, width)
    if stride_on not in ("1x1", "3x3"):
        raise ValueError(f"model.stride_on must be 1x1 or 3x3, got {stride_on!r}")
    kind, counts = IMAGENET[depth]
    act = args.act
    stem = nn.Sequential(
        nn.Conv2d(args.in_channels, width, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(width),
        act(width),
        nn.MaxPool2d(3, stride=2, padding=1),
    )

    def block(c_in: int, w: int, stride: int) -> nn.Module:
        if kind == "basic":
            return BasicBlock(c_in, w, stride, act, shortcut)
        return Bottleneck(c_in, w, stride, act, shortcut, stride_on)

    return ResNet(stem, width, [width * 2**i for i in range(4)], list(counts), block, args.num_classes)


def resnet_basic(depth: int, args: ModelArgs, *, shortcut: str, width: int) -> nn.Module:
    """ResNet-18/34: basic blocks, whose stride-2 sits on the first 3×3 (no 1×1 to put it on)."""
    return imagenet_net(depth, args, shortcut, width, "3x3")


def resnet_bottleneck(depth: int, args: ModelArgs, *, shortcut: str, width: int, stride_on: str) -> nn.Module:
    """ResNet-50/101/152: bottleneck blocks, the stride-2 on the first 1×1 or on the 3×3."""
    return imagenet_net(depth, args, shortcut, width, stride_on)


def imagenet_plain(depth: int, args: ModelArgs, *, width: int) -> nn.Module:
    """Plain-18/34 (Table 2): the same layers, no shortcuts."""
    return imagenet_net(depth, args, None, width, "3x3")


for _depth in (18, 34):
    register_model(f"resnet{_depth}")(partial(resnet_basic, _depth))
    register_model(f"plain{_depth}")(partial(imagenet_plain, _depth))
for _depth in (50, 101, 152):
    register_model(f"resnet{_depth}")(partial(resnet_bottleneck, _depth))
