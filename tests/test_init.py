"""Initialisations and PReLU against the papers: measured weight stds match the formulas, the 30-layer plain
ReLU net keeps its signal with Kaiming init and loses it with Xavier (He et al. 2015, Sec. 2.2, Fig. 3),
PReLU slopes start at 0.25, one per channel or per layer, with no weight decay."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from runner.models import build_model
from runner.nn import init_weights, make_act
from runner.train import build_optimizer

RELU, PRELU, LRELU = {"name": "relu"}, {"name": "prelu", "init": 0.25}, {"name": "lrelu", "slope": 0.01}


def build(
    name: str, act: dict = RELU, channels: int = 3, size: int = 32, classes: int = 10, **opts
) -> nn.Module:
    return build_model(
        {"name": name, **opts}, num_classes=classes, in_channels=channels, image_size=size, act=make_act(act)
    )


# A large layer whose fan-in (k²c = 9·128 = 1,152) and fan-out (k²d = 9·512 = 4,608) differ, 590k weights.
N_IN, N_OUT = 9 * 128, 9 * 512
FORMULAS = [  # (scheme, act, std the paper's formula gives)
    ({"name": "gaussian", "std": 0.01}, RELU, 0.01),  # AlexNet: N(0, 0.01²)
    ({"name": "xavier"}, RELU, math.sqrt(2 / (N_IN + N_OUT))),  # Glorot & Bengio: Var = 2/(n_in + n_out)
    ({"name": "kaiming", "mode": "fan_in"}, RELU, math.sqrt(2 / N_IN)),  # Eqn. 10: ½·k²c·Var = 1
    ({"name": "kaiming", "mode": "fan_out"}, RELU, math.sqrt(2 / N_OUT)),  # Eqn. 14: ½·k²d·Var = 1
    (
        {"name": "kaiming", "mode": "fan_in"},
        PRELU,
        math.sqrt(2 / (1.0625 * N_IN)),
    ),  # ½(1+a²)·n·Var = 1, a = 0.25
    ({"name": "kaiming", "mode": "fan_out"}, PRELU, math.sqrt(2 / (1.0625 * N_OUT))),
    ({"name": "kaiming", "mode": "fan_in"}, LRELU, math.sqrt(2 / (1.0001 * N_IN))),
]


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize(("scheme", "act", "expected"), FORMULAS, ids=lambda v: str(v))
def test_weight_std_matches_the_formula(scheme: dict, act: dict, expected: float, distribution: str) -> None:
    torch.manual_seed(0)
    layer = nn.Conv2d(128, 512, 3)
    init_weights(layer, {**scheme, "distribution": distribution}, act)
    w = layer.weight
    assert abs(w.std().item() / expected - 1) < 0.05
    assert abs(w.mean().item()) < 0.05 * expected
    assert (layer.bias == 0).all()
    if distribution == "uniform":  # U(-b, b) with the same variance: b = √3·std, and the draws fill it
        bound = math.sqrt(3) * expected
        assert bound * 0.99 < w.abs().max().item() <= bound * 1.05
    else:  # a normal has tails beyond √3·std
        assert w.abs().max().item() > 3 * expected


def test_linear_layer_fans() -> None:
    """For an fc layer n_in, n_out are its input and output features."""
    torch.manual_seed(0)
    layer = nn.Linear(1024, 2048)
    init_weights(layer, {"name": "kaiming", "mode": "fan_out"}, RELU)
    assert abs(layer.weight.std().item() / math.sqrt(2 / 2048) - 1) < 0.05
    init_weights(layer, {"name": "xavier"}, RELU)
    assert abs(layer.weight.std().item() / math.sqrt(2 / 3072) - 1) < 0.05


def test_alexnet_bias_one_layers_only_with_gaussian() -> None:
    """Krizhevsky et al. Sec. 5: bias 1 in conv2, conv4, conv5 and the hidden fc layers, 0 elsewhere."""
    model = build("alexnet", width_mult=1 / 16)
    init_weights(model, {"name": "gaussian", "std": 0.01}, RELU)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [m.bias.unique().tolist() for m in layers] == [
        [0.0],
        [1.0],
        [0.0],
        [1.0],
        [1.0],
        [1.0],
        [1.0],
        [0.0],
    ]
    assert all(abs(m.weight.std().item() / 0.01 - 1) < 0.1 for m in layers[1:])
    init_weights(model, {"name": "kaiming"}, RELU)
    assert all((m.bias == 0).all() for m in layers)


def test_prelu_paper_fc_std() -> None:
    """He et al. 2015 Sec. 2.2: fc1/fc2 std 0.01 and fc3 0.001 when the input is not normalised."""
    torch.manual_seed(0)
    model = build("prelu_14", width_mult=1 / 8, classes=1000, paper_fc_std=True)
    init_weights(model, {"name": "kaiming", "mode": "fan_out"}, RELU)
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [round(m.weight.std().item(), 4) for m in fcs] == [0.01, 0.01, 0.001]


def test_batch_norm_and_zero_init_residual() -> None:
    for name, last in [("resnet18", "bn2"), ("resnet50", "bn3"), ("resnet20", "bn2")]:
        model = build(name, width=4)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            nn.init.constant_(bn.weight, 5.0), nn.init.constant_(bn.bias, 5.0)
        init_weights(model, {"name": "kaiming"}, RELU)
        assert all((bn.weight == 1).all() and (bn.bias == 0).all() for bn in bns)
        init_weights(model, {"name": "kaiming", "zero_init_residual": True}, RELU)
        blocks = list(model.blocks)
        assert all((getattr(b, last).weight == 0).all() and (b.bn1.weight == 1).all() for b in blocks)


SIZE = 64  # at 32×32 the last stage's 8×8 maps are a quarter zero-padded border: ×0.42 instead of ×1


def signal_and_gradient(scheme: dict, seed: int = 0) -> tuple[float, float]:
    """Push a unit-variance batch through the 30-layer plain ReLU net (plain_deep30, 1×64×64) and a
    unit-variance gradient back: (mean square of the logits / of the input,
    gradient energy per sample at the input / at the logits)."""
    torch.manual_seed(seed)
    model = build("plain_deep30", channels=1, size=SIZE)
    init_weights(model, scheme, RELU)
    x = torch.randn(16, 1, SIZE, SIZE, requires_grad=True)
    out = model(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    forward = out.pow(2).mean().item() / x.pow(2).mean().item()
    # Energy (sum of squares) is what a max-pool passes back unchanged; per element it would shrink ×4 per pool.
    backward = x.grad.pow(2).sum().item() / grad_out.pow(2).sum().item()
    return forward, backward


def geometric_mean_over_seeds(scheme: dict, seeds: int = 8) -> tuple[float, float]:
    """A 16-wide net's gain varies by ×3 from one draw to the next; the paper's claim is about its expectation."""
    logs = torch.tensor([signal_and_gradient(scheme, seed) for seed in range(seeds)]).log()
    forward, backward = logs.mean(0).exp().tolist()
    return forward, backward


def test_thirty_layer_relu_net_kaiming_keeps_the_signal_xavier_loses_it() -> None:
    """He et al. 2015, Sec. 2.2: Xavier's std is 1/√2 of theirs per layer, so the variance halves at every
    ReLU layer (Fig. 3: the 30-layer net stalls); Kaiming's ½·n·Var[w] = 1 keeps it. 30 weight layers."""
    kaiming, xavier = (
        geometric_mean_over_seeds({"name": "kaiming", "mode": "fan_in"}),
        geometric_mean_over_seeds({"name": "xavier"}),
    )
    per_layer = {
        k: (v[0] ** (1 / 30), v[1] ** (1 / 30)) for k, v in [("kaiming", kaiming), ("xavier", xavier)]
    }
    print(
        f"\n30-layer plain ReLU net, 1×{SIZE}×{SIZE}, batch 16, geometric mean of 8 draws — output/input mean square, input/output gradient energy:"
        f"\n  kaiming fan_in: forward {kaiming[0]:.3g} backward {kaiming[1]:.3g}"
        f"  (per layer ×{per_layer['kaiming'][0]:.3f}, ×{per_layer['kaiming'][1]:.3f})"
        f"\n  xavier:         forward {xavier[0]:.3g} backward {xavier[1]:.3g}"
        f"  (per layer ×{per_layer['xavier'][0]:.3f}, ×{per_layer['xavier'][1]:.3f})"
    )
    # The bar, forward: within a factor 2 of the input's (measured 1.42). Backward the gradient energy
    # at the input is 2.03× the logits' (max-pools pass energy back unchanged but the maps grow ×4 per stage).
    assert 0.5 < kaiming[0] < 2
    assert 0.5 < kaiming[1] < 2.5
    for ratio in xavier:  # collapsed by ~10 orders of magnitude: about ½ per layer
        assert ratio < 1e-6
    assert 0.9 < per_layer["kaiming"][0] < 1.1 and 0.9 < per_layer["kaiming"][1] < 1.1
    assert 0.4 < per_layer["xavier"][0] < 0.6 and 0.4 < per_layer["xavier"][1] < 0.6


def prelus(model: nn.Module) -> list[nn.PReLU]:
    return [m for m in model.modules() if isinstance(m, nn.PReLU)]


def test_prelu_channel_wise_and_shared_slopes() -> None:
    model = build("prelu_14", PRELU, width_mult=1 / 8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)][:2]
    widths = [m.out_channels for m in convs] + [m.out_features for m in fcs]
    assert [
        p.weight.numel() for p in prelus(model)
    ] == widths  # one slope per channel, every conv and hidden fc
    assert all((p.weight == 0.25).all() for p in prelus(model))  # a_init = 0.25
    shared = build("prelu_14", {"name": "prelu", "shared": True, "init": 0.25}, width_mult=1 / 8)
    assert [p.weight.numel() for p in prelus(shared)] == [1] * 13  # "13 extra parameters"
    init_weights(model, {"name": "kaiming"}, PRELU)
    assert all((p.weight == 0.25).all() for p in prelus(model))  # the init scheme leaves the slopes alone


def test_prelu_slopes_carry_no_weight_decay() -> None:
    model = build("prelu_a", PRELU, width_mult=1 / 16)
    optimizer = build_optimizer(model, {"weight_decay": 5e-4, "momentum": 0.9}, lr=0.01)
    slopes = {id(p.weight) for p in prelus(model)}
    groups = {g["weight_decay"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    assert groups[0.0] == slopes
    assert groups[5e-4] == {id(p) for p in model.parameters()} - slopes
    # With zero gradients only weight decay moves a parameter: the slopes stay, the weights shrink.
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    before = conv.weight.detach().clone()
    optimizer.step()
    assert all((p.weight == 0.25).all() for p in prelus(model))
    assert torch.allclose(conv.weight, before * (1 - 0.01 * 5e-4))
