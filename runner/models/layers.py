"""Activations (conf/act) and weight initialisations (conf/init), each a registry keyed by `name`.

Every model builder takes an `act` factory, `act(channels) -> nn.Module`, so the activation choice
reaches every nonlinearity of every model. `init_weights` then applies one of the papers' schemes.
Library code reads every key of the YAML directly: conf/act/*.yaml and conf/init/*.yaml hold the defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

ActFactory = Callable[[int], nn.Module]
Cfg = Mapping[str, Any]


class PReLU(nn.PReLU):
    """He et al. 2015, Eqn. 1: f(y) = max(0, y) + a·min(0, y).

    Channel-wise (one slope per channel) or channel-shared (one slope per layer); slopes start at
    `init` (0.25 in the paper). The slopes carry no weight decay: see `no_decay_parameters`.
    """

    def __init__(self, channels: int, shared: bool, init: float) -> None:
        super().__init__(num_parameters=1 if shared else channels, init=init)


@dataclass(frozen=True)
class Activation:
    """One conf/act option: how to build it, and the `a` Kaiming's formula takes for it (He et al. 2015,
    Eqn. 15: ½(1+a²)·n·Var[w] = 1, where a is the slope of the negative part at initialisation)."""

    make: Callable[[Cfg], ActFactory]
    kaiming_a: Callable[[Cfg], float]


def _relu(cfg: Cfg) -> ActFactory:
    return lambda channels: nn.ReLU(inplace=True)


def _prelu(cfg: Cfg) -> ActFactory:
    shared, init = bool(cfg["shared"]), float(cfg["init"])
    return lambda channels: PReLU(channels, shared=shared, init=init)


def _lrelu(cfg: Cfg) -> ActFactory:
    slope = float(cfg["slope"])
    return lambda channels: nn.LeakyReLU(slope, inplace=True)


def _tanh(cfg: Cfg) -> ActFactory:
    return lambda channels: nn.Tanh()


def _zero_slope(cfg: Cfg) -> float:
    return 0.0


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(_relu, kaiming_a=_zero_slope),  # a = 0: the rectifier of Eqn. 10
    "prelu": Activation(_prelu, kaiming_a=lambda cfg: float(cfg["init"])),  # the *initial* slope, Sec. 2.2
    "lrelu": Activation(_lrelu, kaiming_a=lambda cfg: float(cfg["slope"])),
    # The paper derives its rule for rectifiers only; tanh takes the ReLU form (a = 0), as torch's
    # kaiming_normal_ does by default.
    "tanh": Activation(_tanh, kaiming_a=_zero_slope),
}


def make_act(cfg: Cfg) -> ActFactory:
    """The `act(channels)` factory for conf/act/<option>.yaml."""
    return ACTIVATIONS[cfg["name"]].make(cfg)


def kaiming_a(cfg_act: Cfg) -> float:
    """The `a` of Kaiming's formula for conf/act/<option>.yaml."""
    return ACTIVATIONS[cfg_act["name"]].kaiming_a(cfg_act)


def fans(layer: nn.Conv2d | nn.Linear) -> tuple[int, int]:
    """(n_in, n_out) of He et al. 2015, Sec. 2.2: n = k²·c inputs summed by one output (Eqn. 10) and
    n̂ = k²·d outputs fed by one input (Eqn. 14). A grouped conv, weight (d, c/groups, k, k), sums
    c/groups channels per filter and feeds each input channel to d/groups filters; an fc layer has k = 1."""
    weight = layer.weight
    receptive = math.prod(weight.shape[2:])
    groups = layer.groups if isinstance(layer, nn.Conv2d) else 1
    return weight.shape[1] * receptive, weight.shape[0] // groups * receptive


def _fan(cfg: Cfg, n_in: int, n_out: int) -> int:
    return {"fan_in": n_in, "fan_out": n_out}[cfg["mode"]]


def _gaussian(cfg: Cfg, n_in: int, n_out: int, a: float) -> float:
    """Krizhevsky et al. 2012, Sec. 5: a fixed std (0.01)."""
    return float(cfg["std"])


def _glorot(cfg: Cfg, n_in: int, n_out: int, a: float) -> float:
    """Glorot & Bengio 2010, Eqn. 12: Var[w] = 2 / (n_in + n_out) (Eqn. 16 is its uniform form)."""
    return math.sqrt(2.0 / (n_in + n_out))


def _xavier_he(cfg: Cfg, n_in: int, n_out: int, a: float) -> float:
    """The "Xavier" of He et al. 2015, Sec. 2.2 (the linear case): n·Var[w] = 1, std √(1/n)."""
    return math.sqrt(1.0 / _fan(cfg, n_in, n_out))


def _kaiming(cfg: Cfg, n_in: int, n_out: int, a: float) -> float:
    """He et al. 2015, Eqns. 10/14 with Eqn. 15's slope: ½(1+a²)·n·Var[w] = 1."""
    return math.sqrt(2.0 / ((1.0 + a**2) * _fan(cfg, n_in, n_out)))


# conf/init/<option>.yaml → the std its formula gives for a layer with these fans (and Kaiming's a).
INITS: dict[str, Callable[[Cfg, int, int, float], float]] = {
    "gaussian": _gaussian,
    "glorot": _glorot,
    "xavier_he": _xavier_he,
    "kaiming": _kaiming,
}


def init_std(cfg_init: Cfg, layer: nn.Conv2d | nn.Linear, a: float) -> float:
    """The standard deviation the scheme's formula gives for this layer's weight."""
    return INITS[cfg_init["name"]](cfg_init, *fans(layer), a)


@torch.no_grad()
def init_weights(model: nn.Module, cfg_init: Cfg, cfg_act: Cfg) -> None:
    """Initialise every conv/linear weight by the scheme's formula, biases 0, BN weight 1 / bias 0.

    Modules may carry `runner_bias = 1.0` (AlexNet's bias-1 layers, used with `gaussian`) and
    `runner_std = ...` (a layer the paper initialises by hand, e.g. the PReLU nets' fc layers);
    a BatchNorm marked `runner_residual_last` is zeroed when `zero_init_residual` is set.
    """
    a = kaiming_a(cfg_act)
    uniform = {"normal": False, "uniform": True}[cfg_init["distribution"]]
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            std = getattr(module, "runner_std", None) or init_std(cfg_init, module, a)
            if uniform:  # same variance: U(-b, b) has Var = b²/3
                bound = math.sqrt(3.0) * std
                module.weight.uniform_(-bound, bound)
            else:
                module.weight.normal_(0.0, std)
            if module.bias is not None:
                bias = getattr(module, "runner_bias", 0.0) if cfg_init["name"] == "gaussian" else 0.0
                module.bias.fill_(bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.SyncBatchNorm)):
            zero = cfg_init["zero_init_residual"] and getattr(module, "runner_residual_last", False)
            module.weight.fill_(0.0 if zero else 1.0)
            module.bias.zero_()


def no_decay_parameters(model: nn.Module) -> set[int]:
    """ids of parameters that take no weight decay: the PReLU slopes, as the paper says."""
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.PReLU)}
