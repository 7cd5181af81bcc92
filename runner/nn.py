"""Activations (conf/act) and weight initialisations (conf/init).

Every model builder takes an `act` factory, `act(channels) -> nn.Module`, so the activation choice
reaches every nonlinearity of every model. `init_weights` then applies one of the papers' schemes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

ActFactory = Callable[[int], nn.Module]


class PReLU(nn.PReLU):
    """He et al. 2015, Eqn. 1: f(y) = max(0, y) + a·min(0, y).

    Channel-wise (one slope per channel) or channel-shared (one slope per layer); slopes start at
    `init` (0.25 in the paper). The slopes carry no weight decay: see `no_decay_parameters`.
    """

    def __init__(self, channels: int, shared: bool, init: float) -> None:
        super().__init__(num_parameters=1 if shared else channels, init=init)


def _relu(cfg: Mapping[str, Any]) -> ActFactory:
    return lambda channels: nn.ReLU(inplace=True)


def _prelu(cfg: Mapping[str, Any]) -> ActFactory:
    shared, init = bool(cfg.get("shared", False)), float(cfg.get("init", 0.25))
    return lambda channels: PReLU(channels, shared=shared, init=init)


def _lrelu(cfg: Mapping[str, Any]) -> ActFactory:
    slope = float(cfg.get("slope", 0.01))
    return lambda channels: nn.LeakyReLU(slope, inplace=True)


def _tanh(cfg: Mapping[str, Any]) -> ActFactory:
    return lambda channels: nn.Tanh()


ACTIVATIONS: dict[str, Callable[[Mapping[str, Any]], ActFactory]] = {
    "relu": _relu,
    "prelu": _prelu,
    "lrelu": _lrelu,
    "tanh": _tanh,
}


def make_act(cfg: Mapping[str, Any]) -> ActFactory:
    """The `act(channels)` factory for conf/act/<name>.yaml."""
    return ACTIVATIONS[cfg["name"]](cfg)


def negative_slope(act_cfg: Mapping[str, Any]) -> float:
    """The `a` of the Kaiming formula: PReLU's *initial* slope, leaky ReLU's slope, 0 for ReLU."""
    name = act_cfg["name"]
    if name == "prelu":
        return float(act_cfg.get("init", 0.25))
    if name == "lrelu":
        return float(act_cfg.get("slope", 0.01))
    return 0.0


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(n_in, n_out) = (k²·c, k²·d) for a conv weight (d, c/groups, k, k); (in, out) for a linear one."""
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def init_std(scheme: Mapping[str, Any], weight: torch.Tensor, slope: float) -> float:
    """The standard deviation each scheme's formula gives for this weight tensor."""
    n_in, n_out = fans(weight)
    name = scheme["name"]
    if name == "gaussian":
        return float(scheme.get("std", 0.01))
    if name == "xavier":  # Glorot & Bengio 2010: Var = 2 / (n_in + n_out)
        return math.sqrt(2.0 / (n_in + n_out))
    if name == "kaiming":  # He et al. 2015, Eqn. 10/14: ½(1+a²)·n·Var[w] = 1
        n = n_in if scheme.get("mode", "fan_in") == "fan_in" else n_out
        return math.sqrt(2.0 / ((1.0 + slope**2) * n))
    raise KeyError(name)


INIT_SCHEMES = ("gaussian", "xavier", "kaiming")


@torch.no_grad()
def init_weights(model: nn.Module, scheme: Mapping[str, Any], act_cfg: Mapping[str, Any]) -> None:
    """Initialise every conv/linear weight by the scheme's formula, biases 0, BN weight 1 / bias 0.

    Modules may carry `runner_bias = 1.0` (AlexNet's bias-1 layers, used with `gaussian`) and
    `runner_std = ...` (a layer the paper initialises by hand, e.g. the PReLU nets' fc layers);
    a BatchNorm marked `runner_residual_last` is zeroed when `zero_init_residual` is set.
    """
    slope = negative_slope(act_cfg)
    distribution = scheme.get("distribution", "normal")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            std = getattr(module, "runner_std", None) or init_std(scheme, module.weight, slope)
            if distribution == "uniform":  # same variance: U(-b, b) has Var = b²/3
                bound = math.sqrt(3.0) * std
                module.weight.uniform_(-bound, bound)
            else:
                module.weight.normal_(0.0, std)
            if module.bias is not None:
                bias = getattr(module, "runner_bias", 0.0) if scheme["name"] == "gaussian" else 0.0
                module.bias.fill_(bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.SyncBatchNorm)):
            zero = scheme.get("zero_init_residual", False) and getattr(module, "runner_residual_last", False)
            module.weight.fill_(0.0 if zero else 1.0)
            module.bias.zero_()


def no_decay_parameters(model: nn.Module) -> set[int]:
    """ids of parameters that take no weight decay: the PReLU slopes, as the paper says."""
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.PReLU)}
