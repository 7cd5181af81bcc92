"""The nets' building blocks checked on modules and tensors: the fc head's layer order, widths and dropout, the
width multiplier's rounding and floor, the option checks' boundaries and messages, the CIFAR ResNet stem and
exact sizes, the PReLU nets' 2×2 convs keeping square maps, dense evaluation on maps one window wide."""

from __future__ import annotations

import pytest
import torch
from fakes import conv_io
from test_models import PRELU, RELU, build, count, on_meta, tiny_convnet
from torch import nn

from runner.models import MODELS, register_model
from runner.models.dense import dense_scores
from runner.models.head import check_width_and_dropout, fc_head, scaled
from runner.models.layers import PReLU, make_act
from runner.models.prelu_nets import conv


def test_fc_head_is_fc_act_dropout_twice_then_the_class_layer() -> None:
    """AlexNet Sec. 4.2 / VGG Sec. 3.1: dropout after the first two fc layers; the activation after every
    hidden fc (one PReLU slope per unit here), none after the last."""
    head = fc_head(12, 8, 3, make_act(PRELU), 0.3)
    assert [type(m) for m in head] == [nn.Linear, PReLU, nn.Dropout] * 2 + [nn.Linear]
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 8), (8, 8), (8, 3)]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert [m.weight.numel() for m in head if isinstance(m, PReLU)] == [8, 8]
    assert head(torch.zeros(5, 12)).shape == (5, 3)


@pytest.mark.parametrize(
    ("channels", "width_mult", "expected"),
    [(4096, 1.0, 4096), (64, 0.5, 32), (64, 2.0, 128), (96, 1 / 3, 32), (100, 0.125, 12), (3, 0.1, 1),
     (64, 1 / 128, 1)],
)  # fmt: skip
def test_a_scaled_width_is_the_rounded_product_never_below_one(
    channels: int, width_mult: float, expected: int
) -> None:
    """round(12.5) = 12 (Python rounds halves to even); 0.3 and 0.5 channels become one channel."""
    assert scaled(channels, width_mult) == expected


@pytest.mark.parametrize(
    ("width_mult", "dropout", "message"),
    [(0, 0.5, "model.width_mult must be > 0, got 0"), (-0.5, 0.5, "model.width_mult must be > 0, got -0.5"),
     (1.0, 1.0, "model.dropout must be in [0, 1), got 1.0"), (1.0, -0.1, "model.dropout must be in [0, 1), got -0.1")],
)  # fmt: skip
def test_width_mult_and_dropout_out_of_range_are_refused_in_one_line(
    width_mult: float, dropout: float, message: str
) -> None:
    with pytest.raises(ValueError) as refused:
        check_width_and_dropout(width_mult, dropout)
    assert str(refused.value) == message


@pytest.mark.parametrize(("width_mult", "dropout"), [(1e-3, 0.0), (1.0, 0.999), (16.0, 0.5)])
def test_width_mult_and_dropout_in_range_pass(width_mult: float, dropout: float) -> None:
    check_width_and_dropout(width_mult, dropout)  # no error: dropout 0 is "off", any positive width runs


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet50", "plain18", "plain_deep30"])
def test_a_width_below_one_filter_is_refused_naming_the_key(name: str) -> None:
    with pytest.raises(ValueError) as refused:
        on_meta(name, width=0)
    assert str(refused.value) == "model.width must be ≥ 1, got 0"


def test_the_cifar_stem_is_a_3x3_conv_of_16_filters_then_batch_norm_then_the_activation() -> None:
    """He et al. 2015, Sec. 4.2: "The first layer is 3×3 convolutions", BN right after each conv (Sec. 3.4)."""
    stem = build("resnet20", channels=1, size=32, classes=10).stem
    assert [type(m) for m in stem] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    conv1, bn = stem[0], stem[1]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding) == (
        1, 16, (3, 3), (1, 1), (1, 1),
    )  # fmt: skip
    assert conv1.bias is None and bn.num_features == 16


@pytest.mark.parametrize(
    ("name", "expected"),
    [("resnet20", 269_722), ("resnet32", 464_154), ("resnet56", 853_018), ("resnet110", 1_727_962),
     ("plain20", 269_722), ("plain56", 853_018)],
)  # fmt: skip
def test_cifar_parameter_counts_exactly(name: str, expected: int) -> None:
    """Table 6 prints 0.27M, 0.46M, 0.85M, 1.7M; exact counts from the layer list (3-channel input, 10 classes,
    option A: a plain net has the same parameters as its ResNet)."""
    assert count(on_meta(name, size=32, classes=10)) == expected


def conv_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """((H, W) in, (H, W) out) of every conv of `model` on `x`, in order."""
    return [(size_in, size_out) for _, size_in, size_out in conv_io(model, x)]


def test_the_14_layer_models_2x2_convs_keep_square_maps() -> None:
    """Table 1: conv1 7×7/2 (224 → 109), a 3×3/3 pool (→ 36), four 2×2 convs on 36×36, a 2×2 pool, six on 18×18;
    each 2×2 conv pads one zero row below and one column right, so the map keeps its size in both directions."""
    model = build("prelu_14", width_mult=1 / 32)
    shapes = conv_shapes(model, torch.zeros(1, 3, 224, 224))
    assert shapes == [((224, 224), (109, 109))] + [((37, 37), (36, 36))] * 4 + [((19, 19), (18, 18))] * 6
    pad, _ = conv(4, 4, 2)
    assert pad.padding == (0, 1, 0, 1)  # (left, right, top, bottom)


def test_a_3x3_conv_of_the_large_models_pads_one_on_every_side() -> None:
    layers = conv(4, 8, 3)
    assert len(layers) == 1 and layers[0].padding == (1, 1) and layers[0].kernel_size == (3, 3)
    assert layers[0](torch.zeros(1, 4, 5, 7)).shape == (1, 8, 5, 7)


@pytest.mark.parametrize(("shape", "positions"), [((3, 2), [(0, 0), (1, 0)]), ((2, 3), [(0, 0), (0, 1)])])
def test_dense_scores_of_a_map_one_window_wide_slide_along_the_other_side(
    shape: tuple[int, int], positions: list[tuple[int, int]]
) -> None:
    """A map exactly as wide (or as tall) as the 2×2 fc window but longer the other way is not pooled: the window
    slides along the longer side and the class scores of its positions are averaged."""
    model = tiny_convnet(channels=1, side=2)
    x = torch.randn(2, 1, *shape)
    maps = model.features(x)
    windows = [model.classifier(maps[:, :, i : i + 2, j : j + 2].flatten(1)) for i, j in positions]
    torch.testing.assert_close(dense_scores(model, x), torch.stack(windows).mean(0), rtol=0, atol=1e-6)


def test_a_model_name_registered_twice_is_refused() -> None:
    before = MODELS["vgg_a"]
    try:
        with pytest.raises(ValueError) as refused:
            register_model("vgg_a")(lambda args: nn.Identity())
        assert str(refused.value) == "model 'vgg_a' registered twice"
    finally:
        MODELS["vgg_a"] = before
    assert MODELS["vgg_a"] is before


def test_an_imagenet_basic_resnet_halves_the_map_in_the_stem_pool_and_first_3x3_of_later_stages() -> None:
    """Table 1: conv1 7×7/2 (224 → 112), 3×3/2 max-pool (→ 56), conv2_x on 56, the stride 2 of conv3_1,
    conv4_1, conv5_1 on their first 3×3 (28, 14, 7); the projection shortcut (option B) subsamples alike."""
    model = build("resnet18", width=4, act=RELU)
    shapes = conv_shapes(model, torch.zeros(1, 3, 224, 224))
    sides = [(i[0], o[0]) for i, o in shapes]
    stage = [(56, 56)] * 4
    assert sides == (
        [(224, 112)] + stage
        + [(56, 28), (28, 28), (56, 28), (28, 28), (28, 28)]
        + [(28, 14), (14, 14), (28, 14), (14, 14), (14, 14)]
        + [(14, 7), (7, 7), (14, 7), (7, 7), (7, 7)]
    )  # fmt: skip
