"""Metrics by name (runner/train/metrics.py) on logits built so that every metric has its own answer: top-1 and
top-5 error differ, the loss is known in closed form, and the running sums come back by name."""

from __future__ import annotations

import math

import pytest
import torch

from runner.train.metrics import EVAL_METRICS, TRAIN_METRICS, Sums, headline, wrong_at

# 4 images, 7 classes. The label's rank among the scores: 1st, 3rd, 5th, 6th (the scores are 6, 5, ..., 0).
SCORES = torch.arange(6.0, -1.0, -1.0)  # class c scores 6 - c
LOGITS = SCORES.repeat(4, 1)
LABELS = torch.tensor([0, 2, 4, 5])


def test_top1_and_top5_count_the_images_whose_label_is_outside_the_k_best() -> None:
    assert wrong_at(1)(LOGITS, LABELS).item() == 3  # only the first is ranked 1st
    assert wrong_at(5)(LOGITS, LABELS).item() == 1  # the label ranked 6th
    assert wrong_at(3)(LOGITS, LABELS).item() == 2
    assert wrong_at(5)(LOGITS[:, :3], torch.tensor([0, 1, 2, 2])).item() == 0  # k over the classes: all


def test_eval_sums_report_each_rate_under_its_name_in_percent() -> None:
    sums = Sums(EVAL_METRICS, torch.device("cpu"))
    sums.add(LOGITS, LABELS)
    sums.add(LOGITS[:2], LABELS[:2])  # 6 images: 4 wrong at top-1, 1 wrong at top-5
    values, extra = sums.read(world_size=1, extra=[2.0])
    assert values["images"] == 6 and extra == [2.0]
    rates = sums.rates(values)
    log_z = math.log(sum(math.exp(s) for s in SCORES.tolist()))
    label_scores = [6.0, 4.0, 2.0, 1.0, 6.0, 4.0]
    loss = sum(log_z - s for s in label_scores) / 6
    assert rates == pytest.approx({"loss": loss, "top1_error": 100 * 4 / 6, "top5_error": 100 * 1 / 6})


def test_train_sums_are_the_loss_and_the_top1_error() -> None:
    sums = Sums(TRAIN_METRICS, torch.device("cpu"))
    sums.add(LOGITS, LABELS)
    assert sums.rates(sums.read(1)[0])["error"] == 75.0
    sums.zero()
    assert sums.read(1)[0] == {"loss": 0.0, "error": 0.0, "images": 0.0}
    assert sums.rates(sums.read(1)[0]) == {"loss": 0.0, "error": 0.0}  # no image: no division by zero


def test_running_sums_come_back_by_name_and_other_names_are_refused() -> None:
    sums = Sums(EVAL_METRICS, torch.device("cpu"))
    sums.add(LOGITS, LABELS)
    saved = sums.state_dict()
    again = Sums(EVAL_METRICS, torch.device("cpu"))
    again.load_state_dict(dict(reversed(saved.items())))  # by name, whatever the order
    assert again.state_dict() == saved
    with pytest.raises(KeyError, match="running sums of"):
        again.load_state_dict({"loss": 1.0, "top1_error": 2.0, "error": 2.0, "images": 3.0})


def test_headline_keeps_the_losses_and_errors_of_every_split() -> None:
    values = {"train_loss": 1, "train_error": 2, "val_top5_error": 3, "final_test_top1_error": 4, "lr": 5,
              "epoch_seconds": 6, "test_images": 7}  # fmt: skip
    assert headline(values) == {
        "train_loss": 1,
        "train_error": 2,
        "val_top5_error": 3,
        "final_test_top1_error": 4,
    }
