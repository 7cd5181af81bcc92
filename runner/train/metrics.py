"""Metrics by name: one list each for training and evaluation, used by the loop, the DDP all-reduce, the
checkpoint, the console, MLflow, the report and the curves.

A metric is summed over the images of a batch on the device; it is read (and all-reduced over the ranks)
only at the loop's host syncs, and reported as sum / images, or as 100 × sum / images for an error rate in
percent (the papers' tables give top-1/top-5 error in %). To add a metric, add one `Metric` to a list:
the checkpoint stores sums by name, the MLflow keys are `<prefix><name>` (train_error, val_top5_error, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

# (logits (N, K) as float, labels (N,)) → the metric summed over the N images, a 0-d tensor on the device
BatchSum = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
IMAGES = "images"  # the count every rate is divided by, kept beside the sums


@dataclass(frozen=True)
class Metric:
    name: str
    batch_sum: BatchSum
    percent: bool  # an error rate: reported as 100 × sum / images


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="sum")


def wrong_at(k: int) -> BatchSum:
    """Images whose label is not among the k highest scores (top-k error, as AlexNet's and VGG's tables)."""

    def wrong(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        top = logits.topk(min(k, logits.shape[1]), dim=1).indices
        return (~(top == labels[:, None]).any(1)).sum().float()

    return wrong


TRAIN_METRICS = (Metric("loss", cross_entropy_sum, False), Metric("error", wrong_at(1), True))
EVAL_METRICS = (
    Metric("loss", cross_entropy_sum, False),
    Metric("top1_error", wrong_at(1), True),
    Metric("top5_error", wrong_at(5), True),
)


def headline(values: Mapping[str, float]) -> dict[str, float]:
    """The losses and errors among `values` (also their `final_` forms), in their order: every metric of
    both lists under its prefix (read at call time, so a metric added to a list shows up here too)."""
    shown = {f"train_{m.name}" for m in TRAIN_METRICS} | {
        f"{prefix}{m.name}" for prefix in ("val_", "test_") for m in EVAL_METRICS
    }
    return {k: v for k, v in values.items() if k.removeprefix("final_") in shown}


class Sums:
    """Running sums of named metrics and the image count, in one device tensor: adding a batch costs no host
    sync, and reading costs one all-reduce (over the ranks) and one copy to the host."""

    def __init__(self, metrics: Sequence[Metric], device: torch.device) -> None:
        self.metrics = tuple(metrics)
        self.names = [m.name for m in self.metrics] + [IMAGES]
        self.total = torch.zeros(len(self.names), device=device)

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.detach().float()
        count = torch.full((), float(len(labels)), device=self.total.device)
        self.total += torch.stack([m.batch_sum(logits, labels) for m in self.metrics] + [count])

    def read(self, world_size: int, extra: Sequence[float] = ()) -> tuple[dict[str, float], list[float]]:
        """The sums by name over all ranks, and `extra` values summed over the ranks in the same collective
        (the loop sends its signal flag along)."""
        values = self.total
        if extra:
            values = torch.cat([values, torch.tensor(list(extra), device=values.device)])
        if world_size > 1:
            values = values.clone()
            dist.all_reduce(values)
        host = values.tolist()
        return dict(zip(self.names, host, strict=False)), host[len(self.names) :]

    def rates(self, sums: Mapping[str, float]) -> dict[str, float]:
        """sum / images per metric, ×100 for the error rates; 0 images read as 1 (an empty shard)."""
        images = max(sums[IMAGES], 1.0)
        return {m.name: (100.0 if m.percent else 1.0) * sums[m.name] / images for m in self.metrics}

    def zero(self) -> None:
        self.total.zero_()

    def state_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.total.tolist(), strict=True))

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Sums saved by name; a checkpoint with other names is refused, never read by position."""
        if sorted(state) != sorted(self.names):
            raise KeyError(f"running sums of {sorted(state)}, this runner sums {sorted(self.names)}")
        self.total = torch.tensor([float(state[n]) for n in self.names], device=self.total.device)
