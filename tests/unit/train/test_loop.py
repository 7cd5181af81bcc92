"""The training loop in-process (runner/train/loop.py) through its public functions: a run interrupted and
resumed ends bit for bit where the uninterrupted run ends, `max_steps` stops mid-epoch at that step,
`evaluate` runs in eval mode and leaves batch-norm statistics alone, the plateau watches the monitored error
and the warm-up the recent training error. The kill/resume tests through the real `runner` are in e2e/.

Every run here is a 1/16-width VGG-A on 128 synthetic 32×32 images: dropout 0.5, random crop and flip, SGD
with momentum, a plateau schedule that drops whenever it stalls; about a tenth of a second an epoch.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import compose
from torch.optim.optimizer import register_optimizer_step_post_hook

from runner.config.identity import config_hash
from runner.train import checkpoint, schedule
from runner.train.loop import Interrupted, JobInfo, Outcome, build_parts, evaluate, train

# 96 training images (32 held out) in batches of 16: 6 steps an epoch. patience 1 with an unreachable
# threshold: every epoch after the first is a stall, so the lr drops at the end of epochs 2 and 3.
DATA = [
    "dataset=synthetic",
    "dataset.train_size=128",
    "dataset.val_split=32",
    "dataset.test_size=32",
    "dataset.in_channels=1",
    "trainer.batch_size=16",
    "trainer.epochs=3",
    "trainer.log_every=100",
    "trainer.progress=false",
    "trainer.accelerator=cpu",
    "optim.lr=0.01",
]
SMALL = ["model=vgg_a", "model.width_mult=0.0625", *DATA, "schedule=plateau", "schedule.patience=1",
         "schedule.threshold=1000"]  # fmt: skip
STEPS_PER_EPOCH = 6
TIMINGS = ("epoch_seconds", "images_per_s")  # the only metrics that may differ between two equal runs


@pytest.fixture(scope="module")
def small() -> dict[str, Any]:
    return compose(SMALL)


def job_in(folder: Path, cfg: dict[str, Any]) -> JobInfo:
    return JobInfo(config_hash(cfg), str(folder / "last.pt"), str(folder))


@pytest.fixture
def optimizer_steps() -> Iterator[list[int]]:
    """The number of optimiser steps taken so far in the test (every optimizer, through torch's global hook)."""
    steps = [0]

    def count(*args: object) -> None:
        steps[0] += 1

    handle = register_optimizer_step_post_hook(count)
    yield steps
    handle.remove()


def run_with_ctrl_c_at(cfg: dict[str, Any], job: JobInfo, stops: tuple[int, ...]) -> tuple[Outcome, int]:
    """Train; a real SIGINT arrives right after each optimiser step numbered in `stops` (counted over the
    whole run), and each interrupted run is resumed as a re-run does. The outcome and the interruptions."""
    taken, interrupted = [0], 0

    def ctrl_c(*args: object) -> None:
        taken[0] += 1
        if taken[0] in stops:
            os.kill(os.getpid(), signal.SIGINT)  # the loop's handler notes it; the loop acts on it itself

    handle = register_optimizer_step_post_hook(ctrl_c)
    try:
        while True:
            try:
                return train(cfg, job), interrupted
            except Interrupted:
                interrupted += 1
                job.resume = True
    finally:
        handle.remove()


def test_a_run_interrupted_twice_and_resumed_ends_where_the_uninterrupted_run_ends(
    tmp_path: Path, small: dict[str, Any]
) -> None:
    """Interrupted mid-epoch 2, just before the plateau's first drop (its best and its count of stalled
    epochs decide that drop), and mid-epoch 3, after it (its factor decides the lr): weights, momentum,
    schedule, running sums, the dropout masks (torch's generator) and the augmented batches must all come
    back for the two runs to agree."""
    reference = train(small, job_in(tmp_path / "a", small))
    resumed, interruptions = run_with_ctrl_c_at(small, job_in(tmp_path / "b", small), stops=(9, 16))
    assert interruptions == 2
    assert reference.steps == resumed.steps == 3 * STEPS_PER_EPOCH and resumed.epochs == 3
    expected = {k: v for k, v in reference.metrics.items() if k not in TIMINGS}
    assert {k: v for k, v in resumed.metrics.items() if k not in TIMINGS} == expected
    a, b = (checkpoint.load(tmp_path / d / "last.pt", config_hash(small)) for d in "ab")
    assert a["schedule"]["drops"] == 2 and a["schedule"]["factor"] == pytest.approx(0.01)  # the case holds
    assert a["schedule"] == b["schedule"]
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    pairs = zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True)
    momenta = [(s["momentum_buffer"], t["momentum_buffer"]) for s, t in pairs]
    assert momenta and all(torch.equal(m, n) for m, n in momenta)
    assert a["train_state"] == {**b["train_state"], "epoch_seconds": a["train_state"]["epoch_seconds"]}


@pytest.mark.parametrize(
    "schedule_of",
    [
        ["schedule=cosine"],  # a new lr every step
        ["schedule=multistep", "schedule.milestones=[9]"],  # ÷10 from the step after the interruption
        ["schedule=multistep", "schedule.warmup_lr=0.001", "schedule.warmup_models=null",
         "schedule.warmup_until_error=1"],  # warming up all along, at a tenth of optim.lr
    ],
)  # fmt: skip
def test_a_run_interrupted_mid_schedule_resumes_at_the_lr_of_its_next_step(
    tmp_path: Path, schedule_of: list[str]
) -> None:
    """A checkpoint written at a signal precedes the schedule's call for the next step; resumed, that step
    must still train at the lr the uninterrupted run gives it."""
    cfg = compose([*SMALL[:2], *DATA, "trainer.epochs=2", *schedule_of])
    reference = train(cfg, job_in(tmp_path / "a", cfg))
    resumed, interruptions = run_with_ctrl_c_at(cfg, job_in(tmp_path / "b", cfg), stops=(9,))
    assert interruptions == 1 and resumed.metrics["lr"] == reference.metrics["lr"]
    a, b = (checkpoint.load(tmp_path / d / "last.pt", config_hash(cfg))["model"] for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_steps_ends_the_run_mid_epoch_at_exactly_that_step(
    tmp_path: Path, small: dict[str, Any], optimizer_steps: list[int]
) -> None:
    cfg = compose([*SMALL, f"trainer.max_steps={STEPS_PER_EPOCH + 2}", "trainer.epochs=1"])
    outcome = train(cfg, job_in(tmp_path, cfg))
    assert optimizer_steps[0] == outcome.steps == STEPS_PER_EPOCH + 2
    assert outcome.epochs == 2 and outcome.metrics["epoch"] == 2
    assert "test_top1_error" in outcome.metrics  # the partial epoch is the last: the test set is evaluated
    saved = checkpoint.load(tmp_path / "last.pt", config_hash(cfg))
    assert saved["train_state"]["global_step"] == STEPS_PER_EPOCH + 2 and saved["train_state"]["epoch"] == 2


def test_evaluate_runs_in_eval_mode_and_leaves_batch_norm_statistics_alone(tmp_path: Path) -> None:
    cfg = compose(["model=resnet20", "model.width=4", *DATA])
    parts = build_parts(cfg, job_in(tmp_path, cfg))
    model = parts.model
    for x, _ in parts.data.train.batches(0):  # move the running statistics off their initial values
        model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = evaluate(model, parts.data.test, parts.autocast, world_size=1)
    assert model.training  # back to training mode for the next step
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    def loss(training: bool) -> float:
        model.train(training)
        with torch.no_grad():
            pairs = [(model(x), y) for x, y in parts.data.test.batches(0)]
        model.train(True)
        logits, labels = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        return torch.nn.functional.cross_entropy(logits, labels).item()

    assert got["loss"] == pytest.approx(loss(training=False), rel=1e-5)
    assert got["loss"] != pytest.approx(loss(training=True), rel=1e-3)  # batch statistics would show


class Recorded:
    """Schedules that note what the loop hands them: the monitored error of each epoch, the recent training
    error of each host sync."""

    monitored: list[float]
    recent: list[float]

    @classmethod
    def wrap(cls, base: type[schedule.Schedule]) -> type[schedule.Schedule]:
        cls.monitored, cls.recent = [], []

        class Recording(base):  # type: ignore[misc, valid-type]
            def epoch_end(self, monitored_error: float) -> None:
                cls.monitored.append(monitored_error)
                super().epoch_end(monitored_error)

            def iteration(self, step: int, train_error: float | None = None) -> None:
                if train_error is not None:
                    cls.recent.append(train_error)
                super().iteration(step, train_error)

        return Recording


@pytest.mark.parametrize(("val_split", "watched"), [(32, "val_top1_error"), (0, "train_error")])
def test_the_plateau_watches_the_validation_error_else_the_training_error_and_best_is_the_lowest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, val_split: int, watched: str
) -> None:
    monkeypatch.setitem(schedule.SCHEDULES, "plateau", Recorded.wrap(schedule.Plateau))
    cfg = compose([*SMALL, f"dataset.val_split={val_split}", "dataset.train_size=96"])
    outcome = train(cfg, job_in(tmp_path, cfg))
    assert len(Recorded.monitored) == 3 and Recorded.monitored[-1] == outcome.metrics[watched]
    others = {k: v for k, v in outcome.metrics.items() if k.endswith(("error", "loss")) and k != watched}
    assert outcome.metrics[watched] not in others.values()  # the case tells the watched error apart
    best = checkpoint.load(tmp_path / "last.pt", config_hash(cfg))["train_state"]["best"]
    assert best == min(Recorded.monitored) != Recorded.monitored[-1]


def test_the_warm_up_reads_the_training_error_since_the_last_host_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a host sync after every step, the recent error is each batch's error (in %, 1/16 steps of 6.25),
    and over the epoch they average to the epoch's training error."""
    monkeypatch.setitem(schedule.SCHEDULES, "multistep", Recorded.wrap(schedule.MultiStep))
    cfg = compose([*SMALL[:2], *DATA, "schedule=multistep", "schedule.warmup_lr=0.001", "schedule.warmup_models=null",
                   "schedule.warmup_until_error=1", "trainer.log_every=1", "trainer.epochs=1"])  # fmt: skip
    outcome = train(cfg, job_in(tmp_path, cfg))
    assert len(Recorded.recent) == STEPS_PER_EPOCH
    assert all(e / 6.25 == round(e / 6.25) for e in Recorded.recent)
    assert sum(Recorded.recent) / STEPS_PER_EPOCH == pytest.approx(outcome.metrics["train_error"])
    assert len(set(Recorded.recent)) > 1
