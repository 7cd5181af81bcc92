"""What AlexNet, VGG and the PReLU nets share: a conv trunk, a pool, then fully-connected layers."""

from __future__ import annotations

import torch
from torch import nn

from runner.models.layers import ActFactory


def scaled(channels: int, width_mult: float) -> int:
    """A layer width under `model.width_mult` (1.0 = the paper's), never below one channel."""
    return max(1, round(channels * width_mult))


def check_width_and_dropout(width_mult: float, dropout: float) -> None:
    """The two options AlexNet, VGG and the PReLU nets share, checked alike (one-line errors)."""
    if width_mult <= 0:
        raise ValueError(f"model.width_mult must be > 0, got {width_mult}")
    if not 0 <= dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")


def fc_head(n_in: int, hidden: int, num_classes: int, act: ActFactory, dropout: float) -> nn.Sequential:
    """fc → act → dropout → fc → act → dropout → fc: the three fc layers of AlexNet (Sec. 4.2: dropout on
    the first two), VGG (Sec. 2.1, 3.1) and the PReLU nets (Sec. 3). No activation after the last one."""
    return nn.Sequential(
        nn.Linear(n_in, hidden), act(hidden), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), act(hidden), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )  # fmt: skip


class ConvNet(nn.Module):
    """features → pool → flatten → classifier.

    `fc_map` is the side of the map the first fc layer reads (it has channels·fc_map² inputs) where `pool`
    is the identity at the paper's resolution (an adaptive average pool, kept so smaller inputs run): dense
    evaluation (runner.models.dense) applies that fc layer as an fc_map×fc_map convolution. None where
    the pool is not a plain reshape of the map (the PReLU nets' SPP).
    """

    def __init__(
        self, features: nn.Sequential, pool: nn.Module, classifier: nn.Sequential, fc_map: int | None
    ) -> None:
        super().__init__()
        self.features, self.pool, self.classifier = features, pool, classifier
        self.fc_map = fc_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
