"""The networks of "Delving Deep into Rectifiers" (He, Zhang, Ren, Sun 2015, arXiv 1502.01852 v1).

- `prelu_14`: the 14-layer model of Table 1 (model E of He & Sun 2014): 11 conv + 3 fc, SPP {6,3,2,1}.
- `prelu_a/b/c`: the large models of Table 3: 7×7 stem, three stages of 3×3 convs, SPP {7,3,2,1}, 3 fc.
- `prelu_deep22`, `prelu_deep30`: the plain nets of the initialisation study (Sec. 2.2, Figs. 2-3):
  the 22-layer net is model B, the 30-layer one the 14-layer model with 16 more 2×2/256 convs.
- `plain_deep22`, `plain_deep30`: CPU-sized analogues of those two for 32×32 inputs (not in the paper):
  three stages of 3×3 convs (16/32/64 filters) with max-pooling and two fc layers, so that the
  xavier-vs-kaiming depth experiment trains on Fashion-MNIST in minutes.

None of these nets has batch norm; the activation (relu/prelu/...) follows every conv and hidden fc.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from runner.config.schema import BOOL, FRACTION, integer, integers, scale_up_to
from runner.models import ModelArgs, register_model
from runner.models.head import ConvNet, check_width_and_dropout, fc_head, scaled

# The YAML options of this family's builders and what each allows: the pre-flight reads this table from the
# source without importing torch (runner/config/schema.py: model_option_rules); a test holds it equal to the
# builders' keyword-only arguments.
OPTIONS = {
    "width_mult": scale_up_to(16),
    "dropout": FRACTION,
    "paper_fc_std": BOOL,  # Sec. 2.2: the paper's fc stds for its unnormalised input
    "convs": integers(3, 1, 1000, "layer counts"),  # conv layers per stage of plain_deep22/30
    "width": integer(1, 4096),
}


def conv(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    """A stride-1 conv that keeps the map size: pad 1 for 3×3; for the 2×2 convs of the 14-layer model
    (whose padding the paper does not give) one zero row/column on the bottom/right."""
    if kernel == 2:
        return [nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(c_in, c_out, 2)]
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)]


class SPP(nn.Module):
    """Spatial pyramid pooling (He et al. 2014): max-pool the map into n×n bins for each level n and
    concatenate, so the fc input has a fixed size (Σ n² · channels) whatever the input resolution."""

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.levels = levels
        self.pools = nn.ModuleList(nn.AdaptiveMaxPool2d(n) for n in levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.flatten(pool(x), 1) for pool in self.pools], 1)


# stem: (kernel, filters, stride, pad); stages: (kernel, filters, count), a 2×2 max-pool /2 between stages.
TABLE1 = dict(stem=(7, 64, 2, 0), stem_pool=3, spp=(6, 3, 2, 1))  # 14-layer model, Table 1
TABLE3 = dict(stem=(7, 96, 2, 3), stem_pool=2, spp=(7, 3, 2, 1))  # models A/B/C, Table 3
SPECS: dict[str, dict] = {
    "prelu_14": {**TABLE1, "stages": [(2, 128, 4), (2, 256, 6)]},
    "prelu_deep30": {**TABLE1, "stages": [(2, 128, 4), (2, 256, 22)]},  # +16 convs in the 256 stage
    "prelu_a": {**TABLE3, "stages": [(3, 256, 5), (3, 512, 5), (3, 512, 5)]},
    "prelu_b": {**TABLE3, "stages": [(3, 256, 6), (3, 512, 6), (3, 512, 6)]},
    "prelu_deep22": {**TABLE3, "stages": [(3, 256, 6), (3, 512, 6), (3, 512, 6)]},  # = model B (Fig. 2)
    "prelu_c": {**TABLE3, "stages": [(3, 384, 6), (3, 768, 6), (3, 896, 6)]},
}


def spp_features(spec: dict, args: ModelArgs, width_mult: float) -> tuple[nn.Sequential, int]:
    """stem conv → pool → stages of same-size convs (2×2 max-pool /2 between stages), and its channels."""
    kernel, width, stride, pad = spec["stem"]
    c = scaled(width, width_mult)
    layers: list[nn.Module] = [
        nn.Conv2d(args.in_channels, c, kernel, stride=stride, padding=pad),
        args.act(c),
    ]
    layers.append(nn.MaxPool2d(spec["stem_pool"], spec["stem_pool"]))
    for i, (k, width, count) in enumerate(spec["stages"]):
        if i > 0:
            layers.append(nn.MaxPool2d(2, 2))
        for _ in range(count):
            c_out = scaled(width, width_mult)
            layers += [*conv(c, c_out, k), args.act(c_out)]
            c = c_out
    return nn.Sequential(*layers), c


def spp_net(
    spec: str, args: ModelArgs, *, width_mult: float, dropout: float, paper_fc_std: bool
) -> nn.Module:
    """`width_mult` scales every conv and fc width (1.0 = the paper's)."""
    check_width_and_dropout(width_mult, dropout)
    features, c = spp_features(SPECS[spec], args, width_mult)
    levels = SPECS[spec]["spp"]
    classifier = fc_head(
        c * sum(n * n for n in levels), scaled(4096, width_mult), args.num_classes, args.act, dropout
    )
    if paper_fc_std:  # Sec. 2.2: fc1/fc2 std 0.01, fc3 0.001, because the paper's input is not normalised
        classifier[0].runner_std, classifier[3].runner_std, classifier[6].runner_std = 0.01, 0.01, 0.001
    return ConvNet(features, SPP(levels), classifier, fc_map=None)


for _name in SPECS:
    register_model(_name)(partial(spp_net, _name))


@register_model("plain_deep22")  # convs [8, 6, 6] in its YAML: 20 conv + 2 fc
@register_model("plain_deep30")  # convs [10, 9, 9]: 28 conv + 2 fc
def plain_deep(args: ModelArgs, *, convs: list[int], width: int) -> nn.Module:
    """3 stages of 3×3 convs (width, 2·width, 4·width filters) on 32/16/8 maps, max-pool 2×2 after each
    (the last one adaptive to 4×4, so any input ≥ 4×4 runs), then fc(16·width) → fc(classes).
    `convs`: 3×3 convs per stage (depth = sum + 2 fc); `width`: filters of the first stage."""
    if len(convs) != 3 or min(convs) < 1:
        raise ValueError(f"model.convs must be three positive counts (one per stage), got {list(convs)}")
    if width < 1:
        raise ValueError(f"model.width must be ≥ 1, got {width}")
    layers: list[nn.Module] = []
    c = args.in_channels
    for stage, count in enumerate(convs):
        c_out = width * 2**stage
        for _ in range(count):
            layers += [nn.Conv2d(c, c_out, 3, padding=1), args.act(c_out)]
            c = c_out
        layers.append(nn.MaxPool2d(2, 2) if stage < len(convs) - 1 else nn.AdaptiveMaxPool2d(4))
    hidden = 16 * width
    classifier = nn.Sequential(
        nn.Linear(c * 16, hidden), args.act(hidden), nn.Linear(hidden, args.num_classes)
    )
    # The trunk ends on a 4×4 map at every input size: fc1 reads it whole, so no pool is needed.
    return ConvNet(nn.Sequential(*layers), nn.Identity(), classifier, fc_map=4)
