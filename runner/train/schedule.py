"""Learning-rate schedules (conf/schedule). Each sets the optimizer's lr itself, per iteration or per epoch.

- plateau:   ÷10 when the monitored error stops improving for `patience` epochs; after `max_drops`
             drops, training ends at the next plateau (AlexNet, VGG: 3 drops, then stop).
- multistep: ÷10 at given iterations (ResNet CIFAR: 32k, 48k; stop at 64k via trainer.max_steps),
             with an optional warm-up lr until the recent training error (since the last host sync)
             falls below a bound, for the models named in `warmup_models` (ResNet-110).
- cosine:    half a cosine from lr to `eta_min` over the whole run.
- constant:  lr never changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch.optim import Optimizer


class Schedule:
    """lr = base_lr × factor(); subclasses update `factor` on `iteration()` and `epoch_end()`."""

    def __init__(self, optimizer: Optimizer, cfg: Mapping[str, Any], total_steps: int, model: str) -> None:
        self.optimizer, self.cfg, self.total_steps = optimizer, cfg, total_steps
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.factor, self.stop = 1.0, False
        self.apply()

    def apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * self.factor

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def iteration(self, step: int, train_error: float | None = None) -> None:
        """Called before iteration `step` (0-based); `train_error` is the recent running error when known."""

    def epoch_end(self, monitored_error: float) -> None:
        """Called after each epoch's evaluation with the monitored error (val, or train without a val split)."""

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("optimizer", "cfg", "total_steps")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        vars(self).update(state)
        self.apply()


class Constant(Schedule):
    pass


class Plateau(Schedule):
    def __init__(self, optimizer: Optimizer, cfg: Mapping[str, Any], total_steps: int, model: str) -> None:
        super().__init__(optimizer, cfg, total_steps, model)
        self.best, self.bad_epochs, self.drops = math.inf, 0, 0

    def epoch_end(self, monitored_error: float) -> None:
        # "Improves" means better than the best by more than `threshold` (absolute, in error units).
        if monitored_error < self.best - float(self.cfg["threshold"]):
            self.best, self.bad_epochs = monitored_error, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs < int(self.cfg["patience"]):
            return
        self.bad_epochs = 0
        if self.drops >= int(self.cfg["max_drops"]):
            self.stop = True  # the plateau after the last drop ends training
            return
        self.drops += 1
        self.factor *= float(self.cfg["factor"])
        self.apply()


class MultiStep(Schedule):
    def __init__(self, optimizer: Optimizer, cfg: Mapping[str, Any], total_steps: int, model: str) -> None:
        super().__init__(optimizer, cfg, total_steps, model)
        # He et al. 2015, Sec. 4.2: only ResNet-110 warms up ("0.1 is slightly too large to start converging").
        models = cfg["warmup_models"]
        self.warming = cfg["warmup_lr"] is not None and (models is None or model in models)
        self.iteration(0)  # the warm-up lr applies from the very first iteration

    def iteration(self, step: int, train_error: float | None = None) -> None:
        if self.warming and train_error is not None and train_error < float(self.cfg["warmup_until_error"]):
            self.warming = False
        passed = sum(step >= m for m in self.cfg["milestones"])
        self.factor = float(self.cfg["gamma"]) ** passed
        if self.warming:
            for group in self.optimizer.param_groups:
                group["lr"] = float(self.cfg["warmup_lr"])
        else:
            self.apply()


class Cosine(Schedule):
    def iteration(self, step: int, train_error: float | None = None) -> None:
        floor = float(self.cfg["eta_min"]) / self.base_lrs[0]
        progress = min(step / max(1, self.total_steps), 1.0)
        self.factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        self.apply()


SCHEDULES: dict[str, Callable[[Optimizer, Mapping[str, Any], int, str], Schedule]] = {
    "plateau": Plateau,
    "multistep": MultiStep,
    "cosine": Cosine,
    "constant": Constant,
}


def build_schedule(optimizer: Optimizer, cfg: Mapping[str, Any], total_steps: int, model: str) -> Schedule:
    """The schedule `cfg["name"]` over `total_steps` iterations, for the model named `model`."""
    return SCHEDULES[cfg["name"]](optimizer, cfg, total_steps, model)
