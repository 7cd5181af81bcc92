"""VGG (Simonyan & Zisserman 2014, arXiv 1409.1556), configurations A, A-LRN, B, C, D, E of Table 1.

Five blocks of stride-1 convs (3×3 pad 1; C's 1×1 convs pad 0), each followed by a 2×2/2 max-pool,
then fc 4096 → fc 4096 → fc classes, dropout 0.5 on the first two fc layers, the activation after
every conv and hidden fc layer.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from runner.config.schema import FRACTION, scale_up_to
from runner.models import ModelArgs, register_model
from runner.models.alexnet import local_response_norm
from runner.models.head import ConvNet, check_width_and_dropout, fc_head, scaled
from runner.models.layers import ActFactory

# The YAML options of this family's builders and what each allows: the pre-flight reads this table from the
# source without importing torch (runner/config/schema.py: model_option_rules); a test holds it equal to the
# builders' keyword-only arguments.
OPTIONS = {"width_mult": scale_up_to(16), "dropout": FRACTION}  # Sec. 3.1: dropout 0.5 on fc6, fc7

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


def vgg_features(cfg: list, c: int, act: ActFactory, width_mult: float) -> tuple[nn.Sequential, int]:
    """The conv trunk of one Table 1 column, and its output channels."""
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif item == "LRN":
            layers.append(local_response_norm())
        else:
            kernel, filters = item
            c_out = scaled(filters, width_mult)
            layers += [nn.Conv2d(c, c_out, kernel, padding=kernel // 2), act(c_out)]
            c = c_out
    return nn.Sequential(*layers), c


def vgg(config: str, args: ModelArgs, *, width_mult: float, dropout: float) -> nn.Module:
    """`width_mult` scales every conv and fc width (1.0 = Table 1). Inputs ≥ 32 pixels run."""
    check_width_and_dropout(width_mult, dropout)
    if args.image_size < 32:
        raise ValueError(
            f"VGG's five 2×2 pools need inputs of at least 32 pixels, got image_size={args.image_size}"
        )
    features, c = vgg_features(CONFIGS[config], args.in_channels, args.act, width_mult)
    classifier = fc_head(c * 49, scaled(4096, width_mult), args.num_classes, args.act, dropout)
    # The adaptive pool is the identity at 224 (7×7 maps); it repeats the 1×1 map at 32.
    return ConvNet(features, nn.AdaptiveAvgPool2d(7), classifier, fc_map=7)


for _name in CONFIGS:
    register_model(_name)(partial(vgg, _name))
