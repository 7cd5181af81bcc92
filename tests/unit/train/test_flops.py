"""Multiply-adds (runner/train/flops.py, torch.utils.flop_counter ÷ 2) against the papers' complexity figures, at
224×224 with 1000 classes, counted on the meta device."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch._dynamo  # noqa: F401  FlopCounterMode's first use imports it (~2 s): paid at collection, not in a test
from conftest import CONF_DIR, yaml_option
from torch import nn

from runner.train import flops
from runner.train.flops import model_multiply_adds, multiply_adds

RELU = yaml_option("act", "relu")


@pytest.mark.parametrize(
    ("name", "paper"),
    [
        ("resnet18", 1.8e9),  # He et al. 2015, Table 1 ("FLOPs" there are multiply-adds)
        ("resnet34", 3.6e9),
        ("resnet50", 3.8e9),
        pytest.param("resnet101", 7.6e9, marks=pytest.mark.slow),  # 1 s each to count: make test only
        pytest.param("resnet152", 11.3e9, marks=pytest.mark.slow),
        ("vgg_e", 19.6e9),  # He et al. 2015, Sec. 4.1: VGG-19
        ("prelu_a", 19.0e9),  # He et al. 2015b (PReLU), Table 3: complexity of models A, B, C
        ("prelu_b", 23.2e9),
        ("prelu_c", 53.0e9),
    ],
)
def test_multiply_adds_at_224_are_within_10_percent_of_the_papers(name: str, paper: float) -> None:
    counted = model_multiply_adds(
        yaml_option("model", name), RELU, in_channels=3, image_size=224, classes=1000
    )
    assert abs(counted - paper) / paper < 0.10, (
        f"{name}: {counted / 1e9:.2f}e9 vs the paper's {paper / 1e9}e9"
    )


def test_what_is_counted_is_conv_and_linear_multiply_adds() -> None:
    """One conv and one linear layer by hand: k·k·C_in·C_out·H·W + in·out, nothing for ReLU, BN or pooling."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    assert multiply_adds(model, 3, 16) == 3 * 3 * 3 * 8 * 16 * 16 + 8 * 10
    assert model.training  # the count leaves the model's mode as it was
    with torch.device("meta"):
        on_meta = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    assert multiply_adds(on_meta, 3, 16) == 3 * 3 * 3 * 8 * 16 * 16 + 8 * 16 * 16 * 10


# table() and main(): the README's Models column. table() over the real conf/model counts 33 models (~30 s), so
# these point runner.config.CONF_DIR at a folder holding only the configs each test needs.


def conf_dir(tmp_path, models: dict[str, str]):
    (tmp_path / "act").mkdir()
    shutil.copy(CONF_DIR / "act" / "relu.yaml", tmp_path / "act" / "relu.yaml")
    (tmp_path / "model").mkdir()
    for file, text in models.items():
        (tmp_path / "model" / file).write_text(text)
    return tmp_path


def test_table_counts_every_model_config_at_both_input_sizes_in_file_name_order(tmp_path, monkeypatch):
    # file names sort the other way round from the model names: rows follow the files; a non-YAML file is no model
    models = {
        "b.yaml": "name: alpha\nwidth: 2\n",
        "a.yaml": "name: omega\nwidth: 1\n",
        "notes.txt": "name: x\n",
    }
    monkeypatch.setattr("runner.config.CONF_DIR", conf_dir(tmp_path, models))
    counts = {
        ("omega", 224, 1000): 3_800_000_000,
        ("omega", 32, 10): 41_000_000,
        ("alpha", 224, 1000): 19_600_000_000,
        ("alpha", 32, 10): 517_000_000,
    }
    calls = []

    def fake_count(model_cfg, act_cfg, *, in_channels, image_size, classes):
        calls.append((model_cfg, act_cfg, in_channels, image_size, classes))
        return counts[model_cfg["name"], image_size, classes]

    monkeypatch.setattr(flops, "model_multiply_adds", fake_count)
    assert flops.table() == [("omega", 3.8, 41.0), ("alpha", 19.6, 517.0)]
    relu = {"name": "relu"}
    assert calls == [
        ({"name": "omega", "width": 1}, relu, 3, 224, 1000),
        ({"name": "omega", "width": 1}, relu, 3, 32, 10),
        ({"name": "alpha", "width": 2}, relu, 3, 224, 1000),
        ({"name": "alpha", "width": 2}, relu, 3, 32, 10),
    ]


def vgg_a_multiply_adds(image_size: int, classes: int, in_channels: int = 3) -> int:
    """VGG configuration A by hand (Simonyan & Zisserman 2014, Table 1): 3×3 convs (pad 1), 2×2 pools, then
    fc 25,088 → 4096 → 4096 → classes (the 7×7 adaptive pool keeps fc6 at 25,088 inputs at any size)."""
    convs = [(in_channels, 64, 1), (64, 128, 2), (128, 256, 4), (256, 256, 4), (256, 512, 8), (512, 512, 8)]
    convs += [(512, 512, 16), (512, 512, 16)]  # (in, out, downsampling before the layer)
    conv = sum(9 * c_in * c_out * (image_size // down) ** 2 for c_in, c_out, down in convs)
    return conv + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * classes


def test_table_row_of_vgg_a_is_its_hand_counted_multiply_adds(tmp_path, monkeypatch):
    text = (CONF_DIR / "model" / "vgg_a.yaml").read_text()
    monkeypatch.setattr("runner.config.CONF_DIR", conf_dir(tmp_path, {"vgg_a.yaml": text}))
    large, small = vgg_a_multiply_adds(224, 1000), vgg_a_multiply_adds(32, 10)
    assert (large, small) == (7_609_090_048, 272_343_040)
    assert flops.table() == [("vgg_a", 7.609090048, 272.34304)]


def test_main_prints_the_markdown_table_of_the_readme(monkeypatch, capsys):
    # ResNet-50 and VGG-19 as table() counts them (He et al. 2015: 3.8 and 19.6 × 10⁹)
    rows = [("resnet50", 3.857973248, 78.712832), ("vgg_e", 19.632062464, 517.709824)]
    monkeypatch.setattr(flops, "table", lambda: rows)
    flops.main()
    assert capsys.readouterr().out == (
        "multiply-adds per image, conv and linear layers (torch.utils.flop_counter FLOPs ÷ 2), ReLU\n"
        "| model | ×10⁹ at 3×224×224, 1000 classes | ×10⁶ at 3×32×32, 10 classes |\n"
        "|---|---|---|\n"
        "| `resnet50` | 3.86 | 78.7 |\n"
        "| `vgg_e` | 19.63 | 517.7 |\n"
    )


@pytest.mark.parametrize(("in_channels", "image_size", "classes"), [(1, 32, 7), (3, 64, 1000)])
def test_a_configs_model_is_counted_exactly_at_the_channels_size_and_classes_given(
    in_channels: int, image_size: int, classes: int
) -> None:
    """Exact, where the 10 % tests above would let a wrong class count (4096 × classes) or input through."""
    counted = model_multiply_adds(
        yaml_option("model", "vgg_a"), RELU, in_channels=in_channels, image_size=image_size, classes=classes
    )
    assert counted == vgg_a_multiply_adds(image_size, classes, in_channels)


def test_a_run_is_counted_at_its_data_sets_channels_size_and_classes() -> None:
    from conftest import compose

    cfg = compose(["model=vgg_a", "dataset=synthetic", "dataset.in_channels=1", "dataset.num_classes=7",
                   "dataset.image_size=64"])  # fmt: skip
    assert flops.run_multiply_adds(cfg) == vgg_a_multiply_adds(64, 7, in_channels=1)


def test_the_summary_line_gives_the_count_in_full_and_in_billions_and_the_input() -> None:
    assert flops.describe(7_609_090_048, 3, 224) == (
        "multiply-adds: 7,609,090,048 (7.61 × 10⁹) per 3×224×224 image, conv and linear layers "
        "(torch.utils.flop_counter FLOPs ÷ 2)"
    )
    assert flops.describe(272_343_040, 1, 32).startswith(
        "multiply-adds: 272,343,040 (0.272 × 10⁹) per 1×32×32 image"
    )
    # 1.375 is exact in binary: rounded half to even, it shows as 1.38 (a count divided by anything but 1e9
    # lands just off the half-way point and rounds the other way).
    assert flops.describe(1_375_000_000, 3, 32).startswith("multiply-adds: 1,375,000,000 (1.38 × 10⁹) per ")
