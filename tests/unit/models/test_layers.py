"""Initialisations and PReLU against the papers: measured weight stds match the formulas (both "Xavier"s,
Kaiming with each activation's slope, grouped convs), the 30-layer plain ReLU net keeps its signal with
Kaiming init and loses it with the PReLU paper's Xavier (He et al. 2015, Sec. 2.2, Fig. 3), PReLU slopes
start at 0.25, one per channel or per layer, with no weight decay."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import options, yaml_option
from test_models import build  # a model built from its YAML
from torch import nn

from runner.models.layers import ACTIVATIONS, INITS, fans, init_std, init_weights, kaiming_a, make_act
from runner.train.optim import build_optimizer

RELU, PRELU, PRELU_SHARED, LRELU, TANH = (
    yaml_option("act", o) for o in ("relu", "prelu", "prelu_shared", "lrelu", "tanh")
)
GAUSSIAN, GLOROT, XAVIER_HE, KAIMING = (
    yaml_option("init", o) for o in ("gaussian", "glorot", "xavier_he", "kaiming")
)
KAIMING_OUT, XAVIER_HE_OUT = {**KAIMING, "mode": "fan_out"}, {**XAVIER_HE, "mode": "fan_out"}


def relative_error(measured: float | torch.Tensor, expected: float) -> float:
    value = measured.item() if isinstance(measured, torch.Tensor) else measured
    return abs(value / expected - 1)


def test_registries_and_yaml_name_the_same_options() -> None:
    assert options("init") == sorted(INITS)
    assert {yaml_option("act", o)["name"] for o in options("act")} == set(ACTIVATIONS)
    assert [kaiming_a(yaml_option("act", o)) for o in options("act")] == [0.01, 0.25, 0.25, 0.0, 0.0]


def test_a_missing_yaml_key_is_an_error_not_a_default() -> None:
    """Library code reads every key: a YAML that lost one fails loudly instead of falling back."""
    layers = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
    for key in ("mode", "distribution", "zero_init_residual"):
        with pytest.raises(KeyError, match=key):
            init_weights(layers, {k: v for k, v in KAIMING.items() if k != key}, RELU)
    with pytest.raises(KeyError, match="std"):
        init_weights(layers, {k: v for k, v in GAUSSIAN.items() if k != "std"}, RELU)
    with pytest.raises(KeyError, match="shared"):
        make_act({"name": "prelu", "init": 0.25})
    with pytest.raises(KeyError, match="slope"):
        init_weights(layers, KAIMING, {"name": "lrelu"})


# A large layer whose fan-in (k²c = 9·128 = 1,152) and fan-out (k²d = 9·512 = 4,608) differ, 590k weights:
# the sample std is within ~0.1% of the true one, so a 1% tolerance tells apart the 3% of a PReLU slope.
N_IN, N_OUT = 9 * 128, 9 * 512
FORMULAS = [  # (scheme, act, std the paper's formula gives)
    (GAUSSIAN, RELU, 0.01),  # AlexNet: N(0, 0.01²)
    (GLOROT, RELU, math.sqrt(2 / (N_IN + N_OUT))),  # Glorot & Bengio, Eqn. 12: Var = 2/(n_in + n_out)
    (XAVIER_HE, RELU, math.sqrt(1 / N_IN)),  # He et al. Sec. 2.2's "Xavier": n·Var = 1, forward
    (XAVIER_HE_OUT, RELU, math.sqrt(1 / N_OUT)),
    (KAIMING, RELU, math.sqrt(2 / N_IN)),  # Eqn. 10: ½·k²c·Var = 1
    (KAIMING_OUT, RELU, math.sqrt(2 / N_OUT)),  # Eqn. 14: ½·k²d·Var = 1
    (KAIMING, PRELU, math.sqrt(2 / (1.0625 * N_IN))),  # Eqn. 15: ½(1+a²)·n·Var = 1, a = 0.25
    (KAIMING_OUT, PRELU, math.sqrt(2 / (1.0625 * N_OUT))),
    (KAIMING, PRELU_SHARED, math.sqrt(2 / (1.0625 * N_IN))),
    (KAIMING, LRELU, math.sqrt(2 / (1.0001 * N_IN))),
    (KAIMING, TANH, math.sqrt(2 / N_IN)),  # a rule for rectifiers: tanh takes a = 0
]


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize(("scheme", "act", "expected"), FORMULAS, ids=lambda v: str(v))
def test_weight_std_matches_the_formula(scheme: dict, act: dict, expected: float, distribution: str) -> None:
    torch.manual_seed(0)
    layer = nn.Conv2d(128, 512, 3)
    init_weights(layer, {**scheme, "distribution": distribution}, act)
    w = layer.weight
    assert relative_error(w.std(), expected) < 0.01
    assert abs(w.mean().item()) < 0.01 * expected
    assert (layer.bias == 0).all()
    if distribution == "uniform":  # U(-b, b) with the same variance: b = √3·std, and the draws fill it
        bound = math.sqrt(3) * expected
        assert bound * 0.99 < w.abs().max().item() <= bound * 1.01
    else:  # a normal has tails beyond √3·std
        assert w.abs().max().item() > 3 * expected


def test_prelu_slope_shrinks_the_kaiming_std_by_sqrt_1_plus_a_squared() -> None:
    """He et al. 2015, Eqn. 15: a = 0.25 divides the std by √(1 + 0.25²) = 1.0308 (3%) against ReLU's."""
    stds = {}
    for name, act in [("relu", RELU), ("prelu", PRELU)]:
        torch.manual_seed(0)  # the same draws, scaled by each formula
        layer = nn.Conv2d(128, 512, 3)
        init_weights(layer, KAIMING, act)
        stds[name] = layer.weight.std().item()
    assert relative_error(stds["relu"] / stds["prelu"], math.sqrt(1 + 0.25**2)) < 1e-4
    assert relative_error(stds["prelu"], math.sqrt(2 / (1.0625 * N_IN))) < 0.01


def pooled_std(layer: nn.Module, scheme: dict, draws: int) -> float:
    """The std of `draws` independent initialisations of the layer's weight, pooled."""
    samples = []
    for seed in range(draws):
        torch.manual_seed(seed)
        init_weights(layer, scheme, RELU)
        samples.append(layer.weight.detach().flatten().clone())
    return torch.cat(samples).std().item()


def test_the_two_xaviers() -> None:
    """He et al. 2015's "Xavier" (Sec. 2.2, Fig. 3): std √(1/n); Glorot & Bengio 2010: √(2/(n_in + n_out)).
    Equal on a 3×3×64 → 64 conv (n_in = n_out = 576), apart wherever the fans differ."""
    square = nn.Conv2d(64, 64, 3)  # 36,864 weights × 16 draws = 590k samples
    assert relative_error(pooled_std(square, XAVIER_HE, draws=16), math.sqrt(1 / 576)) < 0.02
    assert relative_error(pooled_std(square, GLOROT, draws=16), math.sqrt(2 / (576 + 576))) < 0.02
    wide = nn.Conv2d(64, 256, 3)  # n_out = 2,304: Glorot's std is 37% below the PReLU paper's
    assert relative_error(pooled_std(wide, XAVIER_HE, draws=4), math.sqrt(1 / 576)) < 0.02
    assert relative_error(pooled_std(wide, GLOROT, draws=4), math.sqrt(2 / (576 + 2304))) < 0.02
    first = nn.Conv2d(1, 16, 3)  # plain_deep's first layer on 1-channel input: 8.5× apart in variance
    ratio = (init_std(XAVIER_HE, first, 0.0) / init_std(GLOROT, first, 0.0)) ** 2
    assert ratio == pytest.approx((1 / 9) / (2 / (9 + 144)))


def test_kaiming_fans_of_a_grouped_conv_count_one_group() -> None:
    """AlexNet's conv2: 256 filters of 5×5×48 in two groups (Fig. 2). Each filter sums 48·25 inputs; each
    input channel feeds the 128 filters of its own group, so fan_out is 128·25, not 256·25."""
    with torch.device("meta"):  # the real layer, without building the other 61M parameters
        conv2 = [m for m in build("alexnet", size=224, classes=1000).modules() if isinstance(m, nn.Conv2d)][1]
    conv2 = conv2.to_empty(device="cpu")
    assert (conv2.in_channels, conv2.out_channels, conv2.groups, conv2.kernel_size) == (96, 256, 2, (5, 5))
    assert fans(conv2) == (48 * 25, 128 * 25)
    torch.manual_seed(0)
    init_weights(conv2, KAIMING_OUT, RELU)  # 307,200 weights
    assert relative_error(conv2.weight.std(), math.sqrt(2 / (128 * 25))) < 0.02  # 256·25 would be 29% lower
    init_weights(conv2, KAIMING, RELU)
    assert relative_error(conv2.weight.std(), math.sqrt(2 / (48 * 25))) < 0.02


def test_linear_layer_fans() -> None:
    """For an fc layer n_in, n_out are its input and output features."""
    torch.manual_seed(0)
    layer = nn.Linear(1024, 2048)
    assert fans(layer) == (1024, 2048)
    init_weights(layer, KAIMING_OUT, RELU)
    assert relative_error(layer.weight.std(), math.sqrt(2 / 2048)) < 0.01
    init_weights(layer, GLOROT, RELU)
    assert relative_error(layer.weight.std(), math.sqrt(2 / 3072)) < 0.01
    init_weights(layer, XAVIER_HE, RELU)
    assert relative_error(layer.weight.std(), math.sqrt(1 / 1024)) < 0.01


def test_alexnet_bias_one_layers_only_with_gaussian() -> None:
    """Krizhevsky et al. Sec. 5: bias 1 in conv2, conv4, conv5 and the hidden fc layers, 0 elsewhere."""
    model = build("alexnet", width_mult=1 / 16)
    init_weights(model, GAUSSIAN, RELU)
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
    init_weights(model, KAIMING, RELU)
    assert all((m.bias == 0).all() for m in layers)


def test_prelu_paper_fc_std() -> None:
    """He et al. 2015 Sec. 2.2: fc1/fc2 std 0.01 and fc3 0.001 when the input is not normalised."""
    torch.manual_seed(0)
    model = build("prelu_14", width_mult=1 / 8, classes=1000, paper_fc_std=True)
    init_weights(model, KAIMING_OUT, RELU)
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [round(m.weight.std().item(), 4) for m in fcs] == [0.01, 0.01, 0.001]


def test_batch_norm_and_zero_init_residual() -> None:
    for name, last in [("resnet18", "bn2"), ("resnet50", "bn3"), ("resnet20", "bn2")]:
        model = build(name, width=4)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            nn.init.constant_(bn.weight, 5.0), nn.init.constant_(bn.bias, 5.0)
        init_weights(model, KAIMING, RELU)
        assert all((bn.weight == 1).all() and (bn.bias == 0).all() for bn in bns)
        init_weights(model, {**KAIMING, "zero_init_residual": True}, RELU)
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


@pytest.mark.slow  # 5 s: in `make test`, not in the edit loop
def test_thirty_layer_relu_net_kaiming_keeps_the_signal_xavier_loses_it() -> None:
    """He et al. 2015, Sec. 2.2: their "Xavier" std is 1/√2 of Kaiming's per layer, so the variance halves at
    every ReLU layer (Fig. 3: the 30-layer net stalls); Kaiming's ½·n·Var[w] = 1 keeps it. 30 weight layers."""
    kaiming, xavier = geometric_mean_over_seeds(KAIMING), geometric_mean_over_seeds(XAVIER_HE)
    per_layer = {
        k: (v[0] ** (1 / 30), v[1] ** (1 / 30)) for k, v in [("kaiming", kaiming), ("xavier", xavier)]
    }
    print(
        f"\n30-layer plain ReLU net, 1×{SIZE}×{SIZE}, batch 16, geometric mean of 8 draws — output/input mean square, input/output gradient energy:"
        f"\n  kaiming fan_in:   forward {kaiming[0]:.3g} backward {kaiming[1]:.3g}"
        f"  (per layer ×{per_layer['kaiming'][0]:.3f}, ×{per_layer['kaiming'][1]:.3f})"
        f"\n  xavier_he fan_in: forward {xavier[0]:.3g} backward {xavier[1]:.3g}"
        f"  (per layer ×{per_layer['xavier'][0]:.3f}, ×{per_layer['xavier'][1]:.3f})"
    )
    # The bar, forward: within a factor 2 of the input's (measured 1.42). Backward the gradient energy
    # at the input is 2.03× the logits' (max-pools pass energy back unchanged but the maps grow ×4 per stage).
    assert 0.5 < kaiming[0] < 2
    assert 0.5 < kaiming[1] < 2.5
    for ratio in xavier:  # collapsed by ~9 orders of magnitude: about ½ per layer
        assert ratio < 1e-6
    assert 0.9 < per_layer["kaiming"][0] < 1.1 and 0.9 < per_layer["kaiming"][1] < 1.1
    assert 0.4 < per_layer["xavier"][0] < 0.6 and 0.4 < per_layer["xavier"][1] < 0.6


def prelus(model: nn.Module) -> list[nn.PReLU]:
    return [m for m in model.modules() if isinstance(m, nn.PReLU)]


def test_prelu_channel_wise_and_shared_slopes() -> None:
    model = build("prelu_14", act=PRELU, width_mult=1 / 8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)][:2]
    widths = [m.out_channels for m in convs] + [m.out_features for m in fcs]
    assert [
        p.weight.numel() for p in prelus(model)
    ] == widths  # one slope per channel, every conv and hidden fc
    assert all((p.weight == 0.25).all() for p in prelus(model))  # a_init = 0.25
    shared = build("prelu_14", act=PRELU_SHARED, width_mult=1 / 8)
    assert [p.weight.numel() for p in prelus(shared)] == [1] * 13  # "13 extra parameters"
    init_weights(model, KAIMING, PRELU)
    assert all((p.weight == 0.25).all() for p in prelus(model))  # the init scheme leaves the slopes alone


def test_prelu_slopes_carry_no_weight_decay() -> None:
    model = build("prelu_a", act=PRELU, width_mult=1 / 16)
    optimizer = build_optimizer(
        model, {"name": "sgd", "weight_decay": 5e-4, "momentum": 0.9, "nesterov": False}, lr=0.01
    )
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


def test_activation_options_reach_the_modules_they_make() -> None:
    """The YAML's defaults equal torch's (slope 0.01, init 0.25): other values must still get through."""
    leaky = make_act({"name": "lrelu", "slope": 0.2})(8)
    assert isinstance(leaky, nn.LeakyReLU) and leaky.negative_slope == 0.2 and leaky.inplace is True
    prelu = make_act({"name": "prelu", "shared": False, "init": 0.1})(8)
    assert torch.equal(prelu.weight.detach(), torch.full((8,), 0.1))
    relu = make_act({"name": "relu"})(8)
    assert isinstance(relu, nn.ReLU) and relu.inplace is True  # in place: no second activation-sized buffer
