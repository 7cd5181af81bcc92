"""Multiply-adds (runner/train/flops.py, torch.utils.flop_counter ÷ 2) against the papers' complexity figures, at
224×224 with 1000 classes, counted on the meta device."""

from __future__ import annotations

import pytest
import torch
from conftest import CONF_DIR
from omegaconf import OmegaConf
from torch import nn

from runner.train.flops import model_multiply_adds, multiply_adds


def yaml_option(group: str, option: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"))


RELU = yaml_option("act", "relu")


@pytest.mark.parametrize(
    ("name", "paper"),
    [
        ("resnet18", 1.8e9),  # He et al. 2015, Table 1 ("FLOPs" there are multiply-adds)
        ("resnet34", 3.6e9),
        ("resnet50", 3.8e9),
        ("resnet101", 7.6e9),
        ("resnet152", 11.3e9),
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
