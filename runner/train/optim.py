"""Optimisers (conf/optim): a registry by `optim.name`.

All four papers train with SGD and momentum; weight decay applies to every parameter but the PReLU slopes
(He et al. 2015, "Delving Deep into Rectifiers", Sec. 2.1: "we do not use weight decay (l2 regularization)
when updating a_i").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from runner.models.layers import no_decay_parameters

OptimizerBuilder = Callable[[list[dict[str, Any]], Mapping[str, Any], float], torch.optim.Optimizer]


def _sgd(groups: list[dict[str, Any]], cfg: Mapping[str, Any], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"])


OPTIMIZERS: dict[str, OptimizerBuilder] = {"sgd": _sgd}


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any], lr: float) -> torch.optim.Optimizer:
    """The optimiser `cfg["name"]` over two parameter groups: decayed weights, and the PReLU slopes (none)."""
    exempt = no_decay_parameters(model)
    decay = [p for p in model.parameters() if id(p) not in exempt]
    slopes = [p for p in model.parameters() if id(p) in exempt]
    groups = [{"params": decay, "weight_decay": cfg["weight_decay"]}]
    if slopes:
        groups.append({"params": slopes, "weight_decay": 0.0})
    return OPTIMIZERS[cfg["name"]](groups, cfg, lr)
