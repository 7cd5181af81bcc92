"""The learning-rate schedules follow the papers' protocols, iteration by iteration and epoch by epoch."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import yaml_option

from runner.train.schedule import build_schedule


def option(name: str) -> dict:
    """conf/schedule/<name>.yaml as the loop gets it: every default from the YAML."""
    return yaml_option("schedule", name)


RESNET_CIFAR = option("multistep")


def optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def lr_at(schedule, step: int, train_error: float | None = None) -> float:
    schedule.iteration(step, train_error)
    return schedule.lr


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.1), (1, 0.1), (31999, 0.1), (32000, 0.01), (47999, 0.01), (48000, 0.001), (63999, 0.001)],
)
def test_resnet_cifar_multistep_divides_by_ten_at_32k_and_48k(step: int, expected: float) -> None:
    schedule = build_schedule(optimizer(0.1), RESNET_CIFAR, total_steps=64000, model="resnet20")
    assert lr_at(schedule, step) == pytest.approx(expected)


def test_multistep_with_warmup_holds_0_01_until_training_error_below_80_percent() -> None:
    """ResNet-110: lr 0.01 until the training error is < 80% (about 400 iterations), then 0.1."""
    opt = optimizer(0.1)
    schedule = build_schedule(opt, {**RESNET_CIFAR, "warmup_lr": 0.01}, total_steps=64000, model="resnet20")
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)  # already for the very first iteration
    assert lr_at(schedule, 50, train_error=90.0) == pytest.approx(0.01)
    assert lr_at(schedule, 100) == pytest.approx(0.01)  # no error known: keep warming
    assert lr_at(schedule, 399, train_error=80.0) == pytest.approx(0.01)  # not yet below 80
    assert lr_at(schedule, 400, train_error=79.9) == pytest.approx(0.1)
    assert lr_at(schedule, 500, train_error=95.0) == pytest.approx(0.1)  # the warm-up never comes back
    assert lr_at(schedule, 32000) == pytest.approx(0.01)


def test_resnet_cifar_warms_up_resnet110_only() -> None:
    """Sec. 4.2: ResNet-110 starts at 0.01; the other nets start at 0.1."""
    cfg = {**RESNET_CIFAR, "warmup_lr": 0.01, "warmup_models": ["resnet110"]}
    assert build_schedule(optimizer(0.1), cfg, total_steps=64000, model="resnet110").lr == pytest.approx(0.01)
    assert build_schedule(optimizer(0.1), cfg, total_steps=64000, model="resnet20").lr == pytest.approx(0.1)


def test_plateau_defaults_are_the_yaml_values() -> None:
    assert (PLATEAU["factor"], PLATEAU["patience"], PLATEAU["threshold"], PLATEAU["max_drops"]) == (
        0.1,
        2,
        0.01,
        3,
    )


def test_warmup_state_survives_a_checkpoint() -> None:
    cfg = {**RESNET_CIFAR, "warmup_lr": 0.01}
    first = build_schedule(optimizer(0.1), cfg, total_steps=64000, model="resnet20")
    lr_at(first, 400, train_error=70.0)
    second = build_schedule(optimizer(0.1), cfg, total_steps=64000, model="resnet20")
    second.load_state_dict(first.state_dict())
    assert lr_at(second, 401) == pytest.approx(0.1)


PLATEAU = option("plateau")  # factor 0.1, patience 2, threshold 0.01, max_drops 3


def run_plateau(errors: list[float], cfg: dict = PLATEAU) -> list[tuple[float, bool]]:
    """(lr after each epoch's evaluation, stop flag) for a sequence of monitored errors."""
    schedule = build_schedule(optimizer(0.01), cfg, total_steps=1000, model="resnet20")
    out = []
    for error in errors:
        schedule.epoch_end(error)
        out.append((schedule.lr, schedule.stop))
    return out


def test_plateau_drops_after_exactly_patience_stalled_epochs() -> None:
    # improves, improves, stalls (1), stalls (2) → drop, then improves, stalls, stalls → second drop
    lrs = [lr for lr, _ in run_plateau([50, 40, 40, 40.5, 30, 30.005, 31])]
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])


def test_plateau_improvement_must_beat_the_threshold() -> None:
    cfg = {**PLATEAU, "patience": 1, "threshold": 0.5}
    lrs = [lr for lr, _ in run_plateau([40, 39.6], cfg)]  # 0.4 better: not an improvement
    assert lrs == pytest.approx([0.01, 0.001])


def test_plateau_stops_at_the_plateau_after_the_last_drop() -> None:
    """AlexNet/VGG: three ÷10 drops, then training ends at the next plateau."""
    cfg = {**PLATEAU, "patience": 1}
    steps = run_plateau([50, 50, 50, 50, 49, 49], cfg)
    assert [lr for lr, _ in steps] == pytest.approx([0.01, 1e-3, 1e-4, 1e-5, 1e-5, 1e-5])
    assert [stop for _, stop in steps] == [False, False, False, False, False, True]


def test_cosine_goes_from_lr_to_eta_min() -> None:
    schedule = build_schedule(
        optimizer(0.1), {**option("cosine"), "eta_min": 0.001}, total_steps=1000, model="resnet20"
    )
    assert lr_at(schedule, 0) == pytest.approx(0.1)
    assert lr_at(schedule, 500) == pytest.approx(0.001 + (0.1 - 0.001) / 2)
    assert lr_at(schedule, 1000) == pytest.approx(0.001)
    assert lr_at(schedule, 250) == pytest.approx(0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_constant_never_changes() -> None:
    schedule = build_schedule(optimizer(0.05), option("constant"), total_steps=10, model="resnet20")
    for step in range(10):
        assert lr_at(schedule, step, 10.0) == 0.05
    schedule.epoch_end(90.0)
    assert schedule.lr == 0.05 and not schedule.stop


def test_schedules_scale_every_param_group() -> None:
    """PReLU slopes sit in their own group (no weight decay); the schedule moves their lr too."""
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]], "weight_decay": 0.0}], lr=0.1)
    schedule = build_schedule(opt, RESNET_CIFAR, total_steps=64000, model="resnet20")
    schedule.iteration(48000)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.001, 0.001])


def test_plateau_counts_patience_afresh_after_a_drop() -> None:
    """Patience 2: after a drop the net gets two more stalled epochs before the next one."""
    lrs = [lr for lr, _ in run_plateau([50, 50, 50, 50, 50, 50, 50])]
    assert lrs == pytest.approx([0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5])


def test_plateau_improvement_by_exactly_the_threshold_is_a_stall() -> None:
    """An improvement means better than the best by *more* than the threshold (exact binary fractions here)."""
    cfg = {**PLATEAU, "patience": 1, "threshold": 0.25}
    assert [lr for lr, _ in run_plateau([10.0, 9.75], cfg)] == pytest.approx([0.01, 0.001])
    assert [lr for lr, _ in run_plateau([10.0, 9.5], cfg)] == pytest.approx([0.01, 0.01])


def test_multistep_starts_at_the_base_lr_even_with_a_milestone_at_iteration_1() -> None:
    schedule = build_schedule(optimizer(0.1), {**RESNET_CIFAR, "milestones": [1]}, total_steps=10, model="x")
    assert schedule.lr == pytest.approx(0.1)
    assert lr_at(schedule, 1) == pytest.approx(0.01)


def test_cosine_ends_at_eta_min_and_stays_there() -> None:
    """A one-step run is at eta_min after its step; steps past the end (a run extended) stay at the floor."""
    cfg = {**option("cosine"), "eta_min": 0.001}
    assert lr_at(build_schedule(optimizer(0.1), cfg, total_steps=1, model="x"), 1) == pytest.approx(0.001)
    schedule = build_schedule(optimizer(0.1), cfg, total_steps=100, model="x")
    assert lr_at(schedule, 150) == pytest.approx(0.001)


def test_schedule_state_holds_its_own_counters_only() -> None:
    """The checkpoint keeps the schedule's state, not the optimizer or config it was built with."""
    schedule = build_schedule(optimizer(0.01), PLATEAU, total_steps=1000, model="x")
    assert set(schedule.state_dict()) == {"base_lrs", "factor", "stop", "best", "bad_epochs", "drops"}
