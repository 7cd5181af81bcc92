"""The model zoo against the papers: exact parameter counts, layer counts, map sizes, every model × dataset
shape × activation × initialisation runs forward and backward, dense evaluation (VGG Sec. 3.2)."""

from __future__ import annotations

import pytest
import torch
from conftest import options, yaml_option
from fakes import conv_io
from torch import nn

from runner.models import build_model, model_names, model_options
from runner.models.dense import dense_scores
from runner.models.layers import init_weights, make_act

ACTS = [yaml_option("act", option) for option in options("act")]  # relu, prelu, prelu_shared, lrelu, tanh
INITS = [yaml_option("init", option) for option in options("init")]
RELU, PRELU, PRELU_SHARED = (yaml_option("act", o) for o in ("relu", "prelu", "prelu_shared"))


def build(
    name: str, channels: int = 3, size: int = 224, classes: int = 1000, act: dict = RELU, **opts
) -> nn.Module:
    """conf/model/<name>.yaml with `opts` overriding its options, as `runner model=<name> model.k=v`."""
    return build_model(
        {**yaml_option("model", name), **opts},
        num_classes=classes,
        in_channels=channels,
        image_size=size,
        act=make_act(act),
    )


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(name: str, **kw) -> nn.Module:
    with torch.device("meta"):  # no memory, no init: counting a 330M-parameter net is free
        return build(name, **kw)


def tiny(name: str) -> dict:
    """The same builder at a width small enough for a CPU test."""
    options = model_options(name)
    if "width_mult" in options:
        return {"width_mult": 1 / 32}  # AlexNet, VGG, PReLU nets
    return {"width": 4}  # CIFAR (16) and ImageNet (64) ResNets, plain_deep (16)


# ResNet-1202 is ResNet-20's builder with n=200: its 1202 layers would cost seconds per combination.
SMALL = [n for n in model_names() if n != "resnet1202"]
# The deepest stacks repeat the blocks of a shallower net of their family tested beside them (ResNet-56/110 are
# ResNet-20's, 101/152 ResNet-50's, plain-56/110 plain-20's): make test trains them, the edit loop does not.
DEEP = {"resnet56", "resnet110", "resnet101", "resnet152", "plain56", "plain110"}
SMALL_PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n for n in SMALL]


# Computed from the layer tables (AlexNet Fig. 2, VGG Table 1, ResNet Table 1, PReLU nets Tables 1 and 3);
# the papers print 60M / 133..144M / 11.7..60.2M, or no count at all.
PAPER_COUNTS = [
    ("alexnet", {"groups": 2}, 60_965_224),  # the paper's "60 million": the two-GPU net
    ("alexnet", {"groups": 1}, 62_378_344),
    ("vgg_a", {}, 132_863_336),
    ("vgg_a_lrn", {}, 132_863_336),
    ("vgg_b", {}, 133_047_848),
    ("vgg_c", {}, 133_638_952),
    ("vgg_d", {}, 138_357_544),
    ("vgg_e", {}, 143_667_240),
    ("resnet18", {"shortcut": "B"}, 11_689_512),
    ("resnet18", {"shortcut": "A"}, 11_515_688),
    ("resnet34", {"shortcut": "B"}, 21_797_672),
    ("resnet34", {"shortcut": "A"}, 21_623_848),
    ("resnet34", {"shortcut": "C"}, 22_716_840),
    ("resnet50", {}, 25_557_032),
    ("resnet101", {}, 44_549_160),
    ("resnet152", {}, 60_192_808),
    ("resnet50", {"stride_on": "3x3"}, 25_557_032),  # stride placement moves FLOPs, not parameters
    ("plain18", {}, 11_515_688),
    ("plain34", {}, 21_623_848),
    ("prelu_14", {}, 74_993_896),
    ("prelu_a", {}, 178_017_384),
    ("prelu_b", {}, 183_327_080),
    ("prelu_c", {}, 330_603_368),
    ("prelu_deep22", {}, 183_327_080),  # = model B
    ("prelu_deep30", {}, 79_192_296),  # 16 more 2×2/256 convs (Sec. 2.2), placed in the 256 stage
]


@pytest.mark.parametrize(("name", "opts", "expected"), PAPER_COUNTS, ids=lambda v: str(v))
def test_parameter_count_at_paper_resolution(name: str, opts: dict, expected: int) -> None:
    assert count(on_meta(name, **opts)) == expected


@pytest.mark.parametrize(
    ("name", "printed"),
    [("vgg_a", "133"), ("vgg_b", "133"), ("vgg_c", "134"), ("vgg_d", "138"), ("vgg_e", "144"), ("resnet18", "11.7"),
     ("resnet34", "21.8"), ("resnet50", "25.6"), ("resnet101", "44.5"), ("resnet152", "60.2"), ("resnet20", "0.27"),
     ("resnet32", "0.46"), ("resnet44", "0.66"), ("resnet56", "0.85"), ("resnet110", "1.7"),
     pytest.param("resnet1202", "19.4", marks=pytest.mark.slow)],  # 1202 layers: 2 s to build, make test only
)  # fmt: skip
def test_parameter_count_rounds_to_the_printed_millions(name: str, printed: str) -> None:
    """VGG Table 2, CIFAR ResNet Table 6 and the usual ImageNet ResNet sizes, to the digits printed.
    AlexNet's "60 million" is 1.6% below the 60,965,224 tested exactly above."""
    cifar = name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202")
    model = on_meta(name, size=32 if cifar else 224, classes=10 if cifar else 1000)
    decimals = len(printed.partition(".")[2])
    assert round(count(model) / 1e6, decimals) == float(printed)


@pytest.mark.parametrize(
    ("name", "cw_extra"),
    [("prelu_14", 10_304), ("prelu_a", 14_688), ("prelu_b", 15_968), ("prelu_c", 20_576)],
)
def test_prelu_adds_one_slope_per_channel_or_per_layer(name: str, cw_extra: int) -> None:
    base = count(on_meta(name))
    assert count(on_meta(name, act=PRELU)) - base == cw_extra
    shared = count(on_meta(name, act=PRELU_SHARED)) - base
    weight_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in on_meta(name).modules())
    assert shared == weight_layers - 1  # every conv and hidden fc: 13 on the 14-layer model (He et al. 2015)
    if name == "prelu_14":
        assert shared == 13


WEIGHT_LAYERS = {
    "alexnet": 8, "vgg_a": 11, "vgg_a_lrn": 11, "vgg_b": 13, "vgg_c": 16, "vgg_d": 16, "vgg_e": 19,
    "resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152, "plain18": 18, "plain34": 34,
    "prelu_14": 14, "prelu_a": 19, "prelu_b": 22, "prelu_c": 22, "prelu_deep22": 22, "prelu_deep30": 30,
    "plain_deep22": 22, "plain_deep30": 30, "resnet20": 20, "resnet110": 110, "plain56": 56,
}  # fmt: skip


@pytest.mark.parametrize(("name", "layers"), WEIGHT_LAYERS.items())
def test_depth_is_the_papers(name: str, layers: int) -> None:
    opts = {"shortcut": "A"} if name.startswith("resnet") else {}  # A: no projection convs to count
    model = on_meta(name, **opts)
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == layers


def feature_sizes(model: nn.Module, x: torch.Tensor) -> list[int]:
    """Spatial size after every conv and pool of a Sequential feature stack."""
    sizes = []
    for layer in model:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            sizes.append(x.shape[-1])
    return sizes


@torch.no_grad()
def test_paper_resolution_maps() -> None:
    x = torch.zeros(1, 3, 224, 224)
    assert feature_sizes(build("alexnet", width_mult=1 / 32).features, x) == [55, 27, 27, 13, 13, 13, 13, 6]
    assert feature_sizes(build("vgg_a", width_mult=1 / 32).features, x)[-1] == 7  # 25,088 = 7·7·512 into fc6
    assert (
        feature_sizes(build("prelu_14", width_mult=1 / 32).features, x)
        == [109, 36] + [36] * 4 + [18] + [18] * 6
    )
    assert sorted(set(feature_sizes(build("prelu_a", width_mult=1 / 32).features, x))) == [14, 28, 56, 112]
    resnet = build("resnet50", width=4)
    assert resnet.blocks(resnet.stem(x)).shape[-1] == 7


def test_alexnet_options() -> None:
    model = on_meta("alexnet")
    lrns = [m for m in model.modules() if isinstance(m, nn.LocalResponseNorm)]
    assert [(m.size, m.alpha, m.beta, m.k) for m in lrns] == [
        (5, 5e-4, 0.75, 2.0)
    ] * 2  # α=1e-4 on the raw sum
    assert {(m.kernel_size, m.stride) for m in model.modules() if isinstance(m, nn.MaxPool2d)} == {(3, 2)}
    assert [m.groups for m in model.modules() if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]
    plain = on_meta("alexnet", lrn=False, overlap_pool=False, dropout=0.0)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in plain.modules())
    assert {(m.kernel_size, m.stride) for m in plain.modules() if isinstance(m, nn.MaxPool2d)} == {(2, 2)}
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in on_meta("vgg_a_lrn").modules()) == 1
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in on_meta("vgg_a").modules()) == 0


def test_vgg_c_has_its_three_1x1_convs() -> None:
    kernels = [m.kernel_size[0] for m in on_meta("vgg_c").modules() if isinstance(m, nn.Conv2d)]
    assert kernels == [3] * 6 + [1] + [3, 3, 1] * 2


def test_plain_deep30_is_the_init_depth_shape() -> None:
    model = build("plain_deep30", channels=1, size=32, classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [16] * 10 + [32] * 9 + [64] * 9
    assert {m.kernel_size for m in convs} == {(3, 3)}
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 2
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    sizes = feature_sizes(model.features, torch.zeros(1, 1, 32, 32))
    assert sizes == [32] * 10 + [16] * 10 + [8] * 10  # convs on 32/16/8 maps, a 2×2 pool after stages 1, 2
    assert model.features(torch.zeros(1, 1, 32, 32)).shape == (1, 64, 4, 4)  # 1,024 features into fc1


SHAPES = [(1, 32), (3, 32), (3, 224)]  # Fashion-MNIST padded, CIFAR, ImageNet


@pytest.mark.parametrize("name", SMALL_PARAMS)
@torch.no_grad()
def test_output_shape_on_every_dataset_shape(name: str) -> None:
    for channels, size in SHAPES:
        model = build(name, channels=channels, size=size, classes=7, **tiny(name)).eval()
        assert model(torch.randn(2 if size == 32 else 1, channels, size, size)).shape == (
            2 if size == 32 else 1,
            7,
        )


def pairwise_inits(model_index: int) -> list[dict]:
    """The init each act gets on the model at `model_index` of SMALL: rotating with both indices, every pair
    (model, act), (model, init) and (act, init) is trained (a 4th of the whole cross: 10 s, not 28 s)."""
    return [INITS[(act_index + model_index) % len(INITS)] for act_index in range(len(ACTS))]


def test_the_pairs_cover_every_model_act_and_init_pairing() -> None:
    assert DEEP < set(SMALL)  # each name left to make test is a model the tests know
    models = range(len(SMALL))
    pairs = [(m, a["name"], i["name"]) for m in models for a, i in zip(ACTS, pairwise_inits(m), strict=True)]
    assert {(m, i) for m, _, i in pairs} == {(m, i["name"]) for m in models for i in INITS}
    assert {(a, i) for _, a, i in pairs} == {(a["name"], i["name"]) for a in ACTS for i in INITS}


@pytest.mark.parametrize("name", SMALL_PARAMS)
def test_forward_backward_every_act_and_init(name: str) -> None:
    """Every model with every act and with every init, and every act with every init (pairwise_inits), trains
    one step on a 1×32×32 batch of 2 at a tiny width."""
    torch.manual_seed(0)
    x, y = torch.randn(2, 1, 32, 32), torch.tensor([0, 3])
    for act, scheme in zip(ACTS, pairwise_inits(SMALL.index(name)), strict=True):
        model = build(name, channels=1, size=32, classes=5, act=act, **tiny(name))
        if act["name"] == "tanh":  # the choice reaches every nonlinearity: no ReLU left anywhere
            assert not any(isinstance(m, (nn.ReLU, nn.PReLU, nn.LeakyReLU)) for m in model.modules())
        init_weights(model, scheme, act)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "opts", "key"),
    [("alexnet", {"groups": 3}, "model.groups"), ("resnet50", {"shortcut": "D"}, "model.shortcut"),
     ("resnet50", {"stride_on": "2x2"}, "model.stride_on"), ("vgg_b", {"width_mult": 0}, "model.width_mult"),
     ("prelu_a", {"dropout": 1.5}, "model.dropout"), ("plain_deep30", {"convs": [3, 3]}, "model.convs")],
)  # fmt: skip
def test_bad_option_names_the_key(name: str, opts: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        on_meta(name, **opts)


def test_vgg_refuses_inputs_its_pools_cannot_take() -> None:
    with pytest.raises(ValueError, match="image_size"):
        on_meta("vgg_a", size=16)


@pytest.mark.parametrize("name", model_names())
def test_yaml_and_builder_name_the_same_options(name: str) -> None:
    """Every default lives once, in conf/model/<name>.yaml: the YAML sets every option the builder takes
    (the builders have no defaults), and no option the builder ignores."""
    assert options("model") == model_names()
    assert set(yaml_option("model", name)) - {"name"} == model_options(name)


# --- dense evaluation (Simonyan & Zisserman 2014, Sec. 3.2) -------------------------------------------------


def initialised(name: str, size: int = 224, **opts) -> nn.Module:
    """Kaiming-initialised, eval mode (dropout off), float64: a 1e-5 bound then checks the fc-as-conv layout,
    not float32 summation order (which differs by ~4e-6 on scores of ~3 between conv and matmul)."""
    torch.manual_seed(0)
    model = build(name, size=size, classes=10, **opts)
    init_weights(model, yaml_option("init", "kaiming"), RELU)
    return model.eval().double()


@torch.no_grad()
def test_dense_vgg_equals_the_forward_pass_at_224() -> None:
    """At 224 the trunk ends on 7×7 maps: fc6 as a 7×7 conv gives a 1×1 score map, equal to the fc head."""
    model = initialised("vgg_a", width_mult=1 / 16)
    x = torch.randn(3, 3, 224, 224, dtype=torch.float64)
    expected = model(x)
    assert expected.abs().mean() > 0.1  # real scores, not a dead net
    torch.testing.assert_close(dense_scores(model, x), expected, rtol=0, atol=1e-5)


@torch.no_grad()
def test_dense_vgg_on_a_larger_image_averages_the_class_score_map() -> None:
    """256×320: 8×10 maps, so the 7×7 fc6 window fits at 2×4 positions; the dense score is the mean of the fc
    head applied to each window, which the ordinary pass (one adaptive pool to 7×7) does not compute."""
    model = initialised("vgg_a", width_mult=1 / 16)
    x = torch.randn(2, 3, 256, 320, dtype=torch.float64)
    maps = model.features(x)
    assert maps.shape[-2:] == (8, 10)
    windows = [
        model.classifier(torch.flatten(maps[:, :, i : i + 7, j : j + 7], 1))
        for i in range(2)
        for j in range(4)
    ]
    dense = dense_scores(model, x)
    assert dense.shape == (2, 10)
    torch.testing.assert_close(dense, torch.stack(windows).mean(0), rtol=0, atol=1e-5)
    assert (dense - model(x)).abs().max() > 1e-2  # the adaptive-pool forward is another computation
    params = sum(p.numel() for p in model.parameters())
    assert params == sum(p.numel() for p in initialised("vgg_a", width_mult=1 / 16).parameters())  # no copies


@torch.no_grad()
def test_dense_alexnet_and_small_inputs_and_resnets() -> None:
    """AlexNet's grouped trunk at 224 (6×6 maps); a VGG at 32×32, whose 1×1 map the adaptive pool brings to
    7×7 as in the ordinary pass; a ResNet, dense already through its global average pool."""
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    alexnet = initialised("alexnet", width_mult=1 / 16)
    torch.testing.assert_close(dense_scores(alexnet, x), alexnet(x), rtol=0, atol=1e-5)
    assert dense_scores(alexnet, torch.randn(1, 3, 256, 288, dtype=torch.float64)).shape == (1, 10)
    small = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    vgg = initialised("vgg_b", size=32, width_mult=1 / 16)
    torch.testing.assert_close(dense_scores(vgg, small), vgg(small), rtol=0, atol=1e-5)
    resnet = initialised("resnet20", size=32, width=4)
    torch.testing.assert_close(dense_scores(resnet, small), resnet(small), rtol=0, atol=0)


def test_dense_refuses_the_spp_head() -> None:
    message = (
        "dense evaluation needs an fc head over a fixed-size map (AlexNet, VGG, plain_deep) or a global average "
        "pool (ResNets); this ConvNet has neither (the PReLU nets' SPP head)"
    )
    with pytest.raises(ValueError) as refused:
        dense_scores(
            initialised("prelu_14", width_mult=1 / 32), torch.randn(1, 3, 64, 64, dtype=torch.float64)
        )
    assert str(refused.value) == message


@torch.no_grad()
def test_dense_looks_through_the_ddp_wrapper(tmp_path) -> None:
    """Evaluation gets the DDP-wrapped net on every rank: dense scores come from the net inside it."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        vgg = initialised("vgg_b", size=32, width_mult=1 / 16)
        wrapped = nn.parallel.DistributedDataParallel(vgg)
        small = torch.randn(2, 3, 32, 32, dtype=torch.float64)
        torch.testing.assert_close(dense_scores(wrapped, small), dense_scores(vgg, small), rtol=0, atol=0)
    finally:
        dist.destroy_process_group()


def tiny_convnet(channels: int = 1, side: int = 2) -> torch.nn.Module:
    """conv 3×3 → an fc head over a side×side map, random biases (init_weights would zero them)."""
    from runner.models.head import ConvNet

    torch.manual_seed(0)
    features = torch.nn.Sequential(torch.nn.Conv2d(1, channels, 3, padding=1), torch.nn.ReLU())
    classifier = torch.nn.Sequential(
        torch.nn.Linear(channels * side * side, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    )
    for layer in (*features, *classifier):
        if hasattr(layer, "bias"):
            torch.nn.init.uniform_(layer.bias, 0.5, 1.0)
    return ConvNet(features, torch.nn.AdaptiveAvgPool2d(side), classifier, fc_map=side).eval()


@pytest.mark.parametrize("shape", [(2, 2), (1, 3), (3, 1), (1, 1)])
def test_dense_scores_of_a_map_no_larger_than_the_fc_window_are_the_forward_pass(shape) -> None:
    """A map smaller than the 2×2 window in either direction is pooled to it, as the forward pass does;
    one exactly 2×2 is the fc layer's own input: either way dense = model(x), biases included."""
    model = tiny_convnet()
    x = torch.randn(4, 1, *shape)
    torch.testing.assert_close(dense_scores(model, x), model(x), rtol=0, atol=1e-6)


def test_dense_scores_of_a_larger_map_average_every_window_position() -> None:
    """A 3×4 map and a 2×2 fc window: 2×3 positions, one class score each, averaged (one channel: the channel
    count is smaller than the window, so no dimension but the map's may decide the pooling)."""
    model = tiny_convnet(channels=1, side=2)
    x = torch.randn(2, 1, 3, 4)
    maps = model.features(x)
    windows = [
        model.classifier(maps[:, :, i : i + 2, j : j + 2].flatten(1)) for i in range(2) for j in range(3)
    ]
    torch.testing.assert_close(dense_scores(model, x), torch.stack(windows).mean(0), rtol=0, atol=1e-6)


def test_predict_averages_the_softmax_of_each_images_views_dense_or_not() -> None:
    """A plain batch gives the net's scores; a multi-view batch (N, views, C, H, W) the log of each image's
    view-averaged softmax, the views in their order; dense=True takes the fc head as convolutions."""
    from runner.models.dense import predict

    model = tiny_convnet(channels=1, side=2)
    x = torch.randn(3, 2, 1, 3, 4)  # 3 images, 2 views each, 3×4: the dense map has 2×3 window positions
    torch.testing.assert_close(predict(model, x[:, 0]), model(x[:, 0]), rtol=0, atol=0)
    torch.testing.assert_close(
        predict(model, x[:, 0], dense=True), dense_scores(model, x[:, 0]), rtol=0, atol=0
    )
    for dense, scores in ((False, model), (True, lambda v: dense_scores(model, v))):
        probs = torch.stack([scores(x[:, k]).softmax(1) for k in range(2)]).mean(0)
        torch.testing.assert_close(predict(model, x, dense=dense), probs.log(), rtol=0, atol=1e-6)
    assert (predict(model, x, dense=True) - predict(model, x)).abs().max() > 1e-3


def conv_maps(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, int]]:
    """(input, output) spatial size of every conv of `model` on `x`, by its module name."""
    return {name: (size_in[-1], size_out[-1]) for name, size_in, size_out in conv_io(model, x)}


def test_a_cifar_resnet_halves_the_map_in_the_first_conv_of_each_later_stage() -> None:
    """He et al. 2015, Sec. 4.2: 32, 16, 8 maps; the stride-2 on the first 3×3 of blocks 4 and 7 (resnet20)."""
    maps = conv_maps(build("resnet20", channels=1, size=32, classes=10, width=4), torch.zeros(1, 1, 32, 32))
    per_block = [(maps[f"blocks.{b}.conv1"], maps[f"blocks.{b}.conv2"]) for b in range(9)]
    assert per_block == (
        [((32, 32), (32, 32))] * 3
        + [((32, 16), (16, 16))] + [((16, 16), (16, 16))] * 2
        + [((16, 8), (8, 8))] + [((8, 8), (8, 8))] * 2
    )  # fmt: skip


@pytest.mark.parametrize(
    ("stride_on", "conv1", "conv2"), [("1x1", (16, 8), (8, 8)), ("3x3", (16, 16), (16, 8))]
)
def test_a_bottleneck_puts_its_stride_on_the_layer_stride_on_names(
    stride_on: str, conv1: tuple[int, int], conv2: tuple[int, int]
) -> None:
    """conv3_1 of ResNet-50 at 64 pixels (16 → 8): the 1×1 that reduces or the 3×3; the projection shortcut
    subsamples as the block does."""
    model = build("resnet50", size=64, classes=10, width=2, stride_on=stride_on)
    maps = conv_maps(model, torch.zeros(1, 3, 64, 64))
    first = "blocks.3"  # conv2_x has 3 blocks
    assert (maps[f"{first}.conv1"], maps[f"{first}.conv2"], maps[f"{first}.conv3"]) == (conv1, conv2, (8, 8))
    assert maps[f"{first}.shortcut.0"] == (16, 8) and "blocks.1.shortcut.0" not in maps  # option B


def test_the_parameter_free_shortcut_takes_every_other_pixel_from_the_first_and_zero_pads_new_channels() -> (
    None
):
    """Option A (He et al. 2015, Sec. 3.3): identity, subsampled by 2 where the map halves, the extra channels
    zeros after the input's own."""
    model = build("resnet20", channels=1, size=32, classes=10, width=4)
    x = torch.arange(4 * 6 * 6, dtype=torch.float32).view(1, 4, 6, 6)
    out = model.blocks[3].shortcut(x)
    assert out.shape == (1, 8, 3, 3)
    assert torch.equal(out[:, :4], x[:, :, 0::2, 0::2])  # rows and columns 0, 2, 4
    assert out[0, 1, 1, 2].item() == x[0, 1, 2, 4].item()
    assert torch.equal(out[:, 4:], torch.zeros(1, 4, 3, 3))
    assert torch.equal(model.blocks[1].shortcut(x), x)  # same shape: the identity
