"""AlexNet (Krizhevsky, Sutskever, Hinton 2012), the 5-conv + 3-fc net of Fig. 2.

conv1 96×11×11/4 → act → LRN → max-pool 3/2 → conv2 256×5×5 (pad 2, 2 groups) → act → LRN → pool
→ conv3 384×3×3 → conv4 384×3×3 (2 groups) → conv5 256×3×3 (2 groups) → pool → fc 4096 → fc 4096 → fc classes.
`groups=2` is the paper's two-GPU split (60,965,224 parameters, the paper's "60 million"); `groups=1` is
the single-tower net (62,378,344).
"""

from __future__ import annotations

from torch import nn

from runner.config.schema import BOOL, FRACTION, choice, scale_up_to
from runner.models import ModelArgs, register_model
from runner.models.head import ConvNet, check_width_and_dropout, fc_head

# The YAML options of this family's builders and what each allows: the pre-flight reads this table from the
# source without importing torch (runner/config/schema.py: model_option_rules); a test holds it equal to the
# builders' keyword-only arguments.
OPTIONS = {
    "groups": choice(1, 2),  # Sec. 3.2: the two-GPU split
    "lrn": BOOL,  # Sec. 3.3
    "overlap_pool": BOOL,  # Sec. 3.4
    "dropout": FRACTION,  # Sec. 4.2
    "width_mult": scale_up_to(16),
}


def local_response_norm() -> nn.LocalResponseNorm:
    """Sec. 3.3: k=2, n=5, α=1e-4, β=0.75 on the raw sum; PyTorch divides α by n, hence 5e-4."""
    return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)


def bias_one(layer: nn.Module) -> nn.Module:
    """Sec. 5: conv2, conv4, conv5 and the hidden fc layers start with bias 1 (init=gaussian)."""
    layer.runner_bias = 1.0
    return layer


@register_model("alexnet")
def alexnet(
    args: ModelArgs, *, groups: int, lrn: bool, overlap_pool: bool, dropout: float, width_mult: float
) -> nn.Module:
    """conv1 keeps the paper's stride 4 on inputs ≥ 64 pixels; below that it uses stride 1 so the three
    pools still have a map to pool (32 → 32 → 15 → 7 → 3)."""
    if groups not in (1, 2):
        raise ValueError(f"model.groups must be 1 or 2, got {groups}")
    check_width_and_dropout(width_mult, dropout)
    # Widths stay multiples of `groups`: a grouped conv splits its input and output channels in two.
    c1, c2, c3, c4, c5, h = (
        groups * max(1, round(c * width_mult / groups)) for c in (96, 256, 384, 384, 256, 4096)
    )
    stride, act = (4 if args.image_size >= 64 else 1), args.act

    def pool() -> nn.Module:
        return nn.MaxPool2d(3, 2) if overlap_pool else nn.MaxPool2d(2, 2)

    def norm() -> nn.Module:
        return local_response_norm() if lrn else nn.Identity()

    features = nn.Sequential(
        nn.Conv2d(args.in_channels, c1, 11, stride=stride, padding=2), act(c1), norm(), pool(),
        bias_one(nn.Conv2d(c1, c2, 5, padding=2, groups=groups)), act(c2), norm(), pool(),
        nn.Conv2d(c2, c3, 3, padding=1), act(c3),
        bias_one(nn.Conv2d(c3, c4, 3, padding=1, groups=groups)), act(c4),
        bias_one(nn.Conv2d(c4, c5, 3, padding=1, groups=groups)), act(c5), pool(),
    )  # fmt: skip
    classifier = fc_head(c5 * 36, h, args.num_classes, act, dropout)
    bias_one(classifier[0])  # fc6
    bias_one(classifier[3])  # fc7
    # The adaptive pool is the identity at 224 (6×6 maps); it repeats/averages the map elsewhere.
    return ConvNet(features, nn.AdaptiveAvgPool2d(6), classifier, fc_map=6)
