"""Metrics by name (runner/train/metrics.py) on logits built so that every metric has its own answer: top-1 and
top-5 error differ, the loss is known in closed form, and the running sums come back by name."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist

from runner.train.metrics import EVAL_METRICS, TRAIN_METRICS, Sums, headline, wrong_at

# 4 images, 7 classes. The label's rank among the scores: 1st, 3rd, 5th, 6th (the scores are 6, 5, ..., 0).
SCORES = torch.arange(6.0, -1.0, -1.0)  # class c scores 6 - c
LOGITS = SCORES.repeat(4, 1)
LABELS = torch.tensor([0, 2, 4, 5])
LOG_Z = math.log(sum(math.exp(s) for s in SCORES.tolist()))  # an image's loss is LOG_Z - its label's score


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
    label_scores = [6.0, 4.0, 2.0, 1.0, 6.0, 4.0]
    loss = sum(LOG_Z - s for s in label_scores) / 6
    assert rates == pytest.approx({"loss": loss, "top1_error": 100 * 4 / 6, "top5_error": 100 * 1 / 6})


def test_train_sums_are_the_loss_and_the_top1_error() -> None:
    sums = Sums(TRAIN_METRICS, torch.device("cpu"))
    sums.add(LOGITS, LABELS)
    assert sums.rates(sums.read(1)[0])["error"] == 75.0
    sums.zero()
    assert sums.read(1)[0] == {"loss": 0.0, "error": 0.0, "images": 0.0}
    assert sums.rates(sums.read(1)[0]) == {"loss": 0.0, "error": 0.0}  # no image: no division by zero
    sums.add(LOGITS[1:2], LABELS[1:2])  # one image, its label ranked 3rd: all wrong, its own loss
    assert sums.rates(sums.read(1)[0]) == pytest.approx({"loss": LOG_Z - 4.0, "error": 100.0})


def test_running_sums_come_back_by_name_and_other_names_are_refused() -> None:
    sums = Sums(EVAL_METRICS, torch.device("cpu"))
    sums.add(LOGITS, LABELS)
    saved = sums.state_dict()
    again = Sums(EVAL_METRICS, torch.device("cpu"))
    again.load_state_dict(dict(reversed(saved.items())))  # by name, whatever the order
    assert again.state_dict() == saved
    with pytest.raises(KeyError) as refused:
        again.load_state_dict({"loss": 1.0, "top1_error": 2.0, "error": 2.0, "images": 3.0})
    assert refused.value.args[0] == (
        "running sums of ['error', 'images', 'loss', 'top1_error'], "
        "this runner sums ['images', 'loss', 'top1_error', 'top5_error']"
    )
    assert again.state_dict() == saved  # the refused state left the sums as they were


def test_headline_keeps_the_losses_and_errors_of_every_split() -> None:
    values = {"train_loss": 1, "train_error": 2, "val_top5_error": 3, "final_test_top1_error": 4, "lr": 5,
              "epoch_seconds": 6, "test_images": 7}  # fmt: skip
    assert headline(values) == {
        "train_loss": 1,
        "train_error": 2,
        "val_top5_error": 3,
        "final_test_top1_error": 4,
    }


def test_a_resumed_sum_adds_on_from_the_saved_values() -> None:
    sums = Sums(TRAIN_METRICS, torch.device("cpu"))
    sums.load_state_dict({"images": 10.0, "error": 5.0, "loss": 2.5})
    assert sums.state_dict() == {"loss": 2.5, "error": 5.0, "images": 10.0}
    sums.add(LOGITS, LABELS)  # 4 more images, 3 wrong
    values, extra = sums.read(world_size=1)
    assert extra == [] and values["images"] == 14.0 and values["error"] == 8.0
    assert sums.rates(values)["error"] == pytest.approx(100 * 8 / 14)


def test_several_ranks_read_the_sums_over_all_of_them_and_keep_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second rank with the same sums, faked: the all-reduce doubles what it is given. The read returns
    the sums of both ranks (the extra values too); this rank's running sums stay its own, or the next read
    would count the other rank's again. One rank does not all-reduce at all."""
    reduced = []

    def two_equal_ranks(tensor: torch.Tensor) -> None:
        reduced.append(tensor)
        tensor.mul_(2)

    monkeypatch.setattr(dist, "all_reduce", two_equal_ranks)
    sums = Sums(TRAIN_METRICS, torch.device("cpu"))
    sums.add(LOGITS, LABELS)
    alone = sums.read(world_size=1, extra=[1.0])
    assert reduced == [] and alone[0]["images"] == 4.0 and alone[1] == [1.0]
    values, extra = sums.read(world_size=2, extra=[1.0])
    assert len(reduced) == 1 and extra == [2.0]
    assert values["images"] == 8.0 and values["error"] == 6.0
    assert sums.state_dict()["images"] == 4.0 and sums.state_dict()["error"] == 3.0


def test_the_sums_stay_on_the_device_they_were_made_for() -> None:
    """On the meta device (no memory, no values): a tensor made on the default device instead would be on the
    CPU, as on a GPU run it would be, where adding it to the device's sums fails."""
    meta = torch.device("meta")
    sums = Sums(EVAL_METRICS, meta)
    assert sums.total.device == meta and sums.total.shape == (4,)
    sums.add(LOGITS.to(meta), LABELS.to(meta))
    assert sums.total.device == meta
    sums.load_state_dict({"loss": 1.0, "top1_error": 2.0, "top5_error": 3.0, "images": 4.0})
    assert sums.total.device == meta and sums.total.shape == (4,)
