"""The optimiser a config builds (runner/train/optim.py): SGD with the config's lr, momentum, Nesterov flag and
weight decay, over every parameter once, with the PReLU slopes in a group of their own without decay."""

from __future__ import annotations

import pytest
import torch
from conftest import compose
from torch import nn

from runner.train.optim import build_optimizer

# Values no default of torch's SGD has (lr 1e-3, momentum 0, weight decay 0, nesterov False): each must come
# from the config.
CFG = {"name": "sgd", "lr": 0.5, "momentum": 0.75, "weight_decay": 0.125, "nesterov": True}


def prelu_net() -> nn.Sequential:
    """conv → PReLU → linear: two decayed weights and biases around one slope vector."""
    return nn.Sequential(nn.Conv2d(1, 2, 1), nn.PReLU(2), nn.Flatten(), nn.Linear(2, 3))


def test_sgd_takes_the_lr_given_and_the_configs_momentum_weight_decay_and_nesterov() -> None:
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(model, CFG, lr=0.25)  # the lr argument (lr × devices), not cfg["lr"]
    assert type(optimizer) is torch.optim.SGD
    (group,) = optimizer.param_groups
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (
        0.25,
        0.75,
        0.125,
        True,
    )
    assert group["dampening"] == 0


def test_prelu_slopes_get_a_group_without_weight_decay_and_the_same_lr_and_momentum() -> None:
    """He et al. 2015 ("Delving Deep into Rectifiers"), Sec. 2.1: no weight decay when updating a_i."""
    model = prelu_net()
    decayed, slopes = build_optimizer(model, CFG, lr=0.25).param_groups
    conv, prelu, linear = model[0], model[1], model[3]
    assert [id(p) for p in decayed["params"]] == [
        id(conv.weight),
        id(conv.bias),
        id(linear.weight),
        id(linear.bias),
    ]
    assert [id(p) for p in slopes["params"]] == [id(prelu.weight)]
    assert (decayed["weight_decay"], slopes["weight_decay"]) == (0.125, 0.0)
    for group in (decayed, slopes):
        assert (group["lr"], group["momentum"], group["nesterov"]) == (0.25, 0.75, True)


@pytest.mark.parametrize(
    ("nesterov", "second_step"), [(False, 0.5 * (1 + 0.75)), (True, 0.5 * (1 + 0.75 + 0.75**2))]
)
def test_two_steps_on_a_constant_gradient_move_as_classical_or_nesterov_momentum(
    nesterov: bool, second_step: float
) -> None:
    """Gradient 1, no decay, lr 0.5, momentum 0.75. The momentum buffer after two steps is 1 + 0.75; classical
    momentum steps by lr × buffer, Nesterov's by lr × (gradient + momentum × buffer)."""
    weight = nn.Parameter(torch.zeros(1))
    model = nn.Module()
    model.weight = weight
    optimizer = build_optimizer(model, {**CFG, "weight_decay": 0.0, "nesterov": nesterov}, lr=0.5)
    moves = []
    for _ in range(2):
        before = weight.item()
        weight.grad = torch.ones(1)
        optimizer.step()
        moves.append(before - weight.item())
    first = 0.5 * (1 + 0.75) if nesterov else 0.5
    assert moves == pytest.approx([first, second_step])


def test_weight_decay_shrinks_the_weights_and_leaves_the_slopes() -> None:
    """With zero gradients only weight decay moves a parameter: lr 0.25 × decay 0.125 of each weight."""
    model = prelu_net()
    optimizer = build_optimizer(model, {**CFG, "momentum": 0.0, "nesterov": False}, lr=0.25)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    conv_w, conv_b, slope, lin_w, lin_b = model.parameters()
    assert torch.equal(slope.detach(), before[2])
    for p, old in ((conv_w, before[0]), (conv_b, before[1]), (lin_w, before[3]), (lin_b, before[4])):
        assert torch.allclose(p.detach(), old * (1 - 0.25 * 0.125))


@pytest.mark.parametrize(
    ("option", "momentum", "weight_decay"), [("sgd", 0.9, 1e-4), ("sgd_alexnet", 0.9, 5e-4)]
)
def test_each_optim_option_reaches_the_optimiser_as_its_yaml_gives_it(
    option: str, momentum: float, weight_decay: float
) -> None:
    """conf/optim: ResNet's momentum 0.9 and decay 1e-4 (He et al. 2015, Sec. 3.4); AlexNet's 0.9 and 5e-4
    (Krizhevsky et al. 2012, Sec. 5); classical momentum in both."""
    cfg = compose([f"optim={option}", "optim.nesterov=true"])["optim"]
    assert cfg["name"] == "sgd"
    (group,) = build_optimizer(nn.Linear(2, 2), cfg, cfg["lr"]).param_groups
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (
        cfg["lr"],
        momentum,
        weight_decay,
        True,
    )
    assert compose([f"optim={option}"])["optim"]["nesterov"] is False


def test_an_unknown_optimiser_name_is_refused() -> None:
    with pytest.raises(KeyError, match="adam"):
        build_optimizer(nn.Linear(2, 2), {**CFG, "name": "adam"}, lr=0.1)
