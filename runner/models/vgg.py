"""VGG (Simonyan & Zisserman 2014, arXiv 1409.1556), configurations A, A-LRN, B, C, D, E of Table 1.

Five blocks of stride-1 convs (3×3 pad 1; C's 1×1 convs pad 0), each followed by a 2×2/2 max-pool,
then fc 4096 → fc 4096 → fc classes, dropout 0.5 on the first two fc layers, the activation after
every conv and hidden fc layer.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from runner.models import check_width_and_dropout, register
from runner.models.alexnet import lrn
from runner.nn import ActFactory

# Table 1: (kernel, filters) per conv, "M" a max-pool, "LRN" AlexNet's local response normalisation.
A = [(3, 64), "M", (3, 128), "M", (3, 256), (3, 256), "M", (3, 512), (3, 512), "M", (3, 512), (3, 512), "M"]
B = [(3, 64), (3, 64), "M", (3, 128), (3, 128), "M", (3, 256), (3, 256), "M",
     (3, 512), (3, 512), "M", (3, 512), (3, 512), "M"]  # fmt: skip
CONFIGS: dict[str, list] = {
    "vgg_a": A,
    "vgg_a_lrn": [(3, 64), "LRN", *A[1:]],
    "vgg_b": B,
    "vgg_c": B[:8] + [(1, 256), "M", (3, 512), (3, 512), (1, 512), "M", (3, 512), (3, 512), (1, 512), "M"],
    "vgg_d": B[:8] + [(3, 256), "M"] + [(3, 512)] * 3 + ["M"] + [(3, 512)] * 3 + ["M"],
    "vgg_e": B[:8] + [(3, 256), (3, 256), "M"] + [(3, 512)] * 4 + ["M"] + [(3, 512)] * 4 + ["M"],
}


class VGG(nn.Module):
    def __init__(
        self,
        cfg: list,
        *,
        num_classes: int,
        in_channels: int,
        act: ActFactory,
        width_mult: float,
        dropout: float,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            elif item == "LRN":
                layers.append(lrn())
            else:
                kernel, filters = item
                c_out = max(1, round(filters * width_mult))
                layers += [nn.Conv2d(c, c_out, kernel, padding=kernel // 2), act(c_out)]
                c = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(7)  # the identity at 224 (7×7 maps); repeats the 1×1 map at 32
        h = max(1, round(4096 * width_mult))
        self.classifier = nn.Sequential(
            nn.Linear(c * 49, h), act(h), nn.Dropout(dropout),
            nn.Linear(h, h), act(h), nn.Dropout(dropout),
            nn.Linear(h, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def vgg(
    config: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    act: ActFactory,
    width_mult: float = 1.0,
    dropout: float = 0.5,
) -> nn.Module:
    """`width_mult` scales every conv and fc width (1.0 = Table 1). Inputs ≥ 32 pixels run."""
    check_width_and_dropout(width_mult, dropout)
    if image_size < 32:
        raise ValueError(
            f"VGG's five 2×2 pools need inputs of at least 32 pixels, got image_size={image_size}"
        )
    return VGG(
        CONFIGS[config],
        num_classes=num_classes,
        in_channels=in_channels,
        act=act,
        width_mult=width_mult,
        dropout=dropout,
    )


for _name in CONFIGS:
    register(_name, partial(vgg, _name))
