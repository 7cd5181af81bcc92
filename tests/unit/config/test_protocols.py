"""The papers' protocols as the presets compose them (issue 14): what `runner --cfg job +experiment=...`
gives is what the paper did."""

from __future__ import annotations

import pytest
import torch
from conftest import compose

from runner.train.loop import Interval
from runner.train.metrics import TRAIN_METRICS, Sums
from runner.train.schedule import build_schedule


def optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


@pytest.mark.parametrize(("model", "first_lr"), [("resnet20", 0.1), ("resnet56", 0.1), ("resnet110", 0.01)])
def test_resnet_cifar_trains_on_all_50k_and_warms_up_resnet110_only(model: str, first_lr: float) -> None:
    """He et al. 2015, Sec. 4.2: Table 6's nets train on the whole training set; only ResNet-110 starts at
    0.01, until the training error is below 80%, then goes back to 0.1."""
    cfg = compose(["+experiment=resnet_cifar", f"model={model}"])
    assert cfg["dataset"]["val_split"] == 0
    schedule = build_schedule(optimizer(cfg["optim"]["lr"]), cfg["schedule"], 64000, cfg["model"]["name"])
    schedule.iteration(1)
    assert schedule.lr == pytest.approx(first_lr)
    schedule.iteration(50, train_error=85.0)
    assert schedule.lr == pytest.approx(first_lr)
    schedule.iteration(400, train_error=79.0)
    assert schedule.lr == pytest.approx(0.1)


def test_the_warm_up_reads_the_recent_training_error_not_the_epochs_mean() -> None:
    """The loop hands the schedule the error of the iterations since its last host sync: 90% wrong over the
    first interval and 70% over the second is 70% recent, though the epoch's mean is still 80%."""
    sums = Sums(TRAIN_METRICS, torch.device("cpu"))
    interval = Interval(start=0.0)
    first = {"loss": 100.0, "error": 90.0, "images": 100.0}
    assert interval.recent(sums, first) == pytest.approx({"loss": 1.0, "error": 90.0})
    interval.previous = first
    second = {"loss": 180.0, "error": 160.0, "images": 200.0}  # the epoch so far: 160 / 200 = 80 %
    assert interval.recent(sums, second) == pytest.approx({"loss": 0.8, "error": 70.0})


@pytest.mark.parametrize(
    ("preset", "normalize", "extra"),
    [
        (
            "alexnet_ablations",
            "per_channel_mean",
            {"augment": "alexnet", "test_view": "ten_crop", "lighting": 0.1},
        ),
        ("alexnet_relu_tanh", "per_pixel_mean", {"augment": []}),
        ("vgg_depth", "per_channel_mean", {"test_view": "dense", "test_resize": 256, "scale": [256, 256]}),
        ("resnet_cifar", "per_pixel_mean", {"crop_pad": "mean", "augment": ["crop", "flip"], "val_split": 0}),
        ("resnet_shortcuts", "per_channel_mean", {"test_view": "ten_crop", "scale": [256, 480]}),
        ("prelu_vs_relu", "per_channel_mean", {"test_view": "ten_crop"}),
    ],
)
def test_each_preset_composes_to_its_papers_input_scaling_and_views(
    preset: str, normalize: str, extra: dict
) -> None:
    """AlexNet and VGG subtract a mean only (the raw pixel scale stays, as LRN's constants and the fixed
    N(0, 0.01²) init expect); ResNet on CIFAR subtracts the per-pixel mean image; the test views are the
    papers' (AlexNet's 10 views, VGG's dense evaluation at Q = S)."""
    dataset = compose([f"+experiment={preset}"])["dataset"]
    assert dataset["normalize"] == normalize
    assert {k: dataset[k] for k in extra} == extra


def test_init_depth_sweeps_the_prelu_papers_xavier_and_vgg_uses_glorots() -> None:
    """He et al. 2015b, Sec. 2.2 call std = sqrt(1/n) "Xavier" (xavier_he); VGG cites Glorot & Bengio's own."""
    for preset in ("init_depth", "init_depth_small"):
        sweep = compose([f"+experiment={preset}"], hydra=True).hydra.sweeper.params
        assert sweep["init"] == "kaiming,xavier_he", preset
    assert compose(["+experiment=vgg_depth"])["init"]["name"] == "glorot"
