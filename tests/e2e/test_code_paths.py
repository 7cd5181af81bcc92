"""README claims through the code path a run takes (not the formula alone): the evaluation loop averages
the views' softmax, the ImageNet loader adds PCA lighting to training batches only, a plateau schedule ends
training after its last drop (and the run is still tested), a sweep with a diverged job exits non-zero."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest
import torch
from conftest import TINY, finished_tiny_run, metric_history, mlflow_runs, run_in_process
from fakes import IMAGENET, ctx, write_folder

from runner.data import augment as A
from runner.data import build_data
from runner.data.tensor_loader import TensorLoader
from runner.train.loop import evaluate

# --- the evaluation loop on multi-view batches ------------------------------------------------------------------


class FirstPixelsAreLogits(torch.nn.Module):
    """Logits = the first 5 pixels of a 1×10 image: a horizontal flip reads the last 5, reversed."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # evaluate() reads the device from a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :5]


def test_evaluation_loop_averages_the_softmax_of_each_image_and_its_flip() -> None:
    """VGG's dense test (Sec. 3.2): each image and its flip, soft-max averaged. Image 0 is right only
    unflipped, image 1 only flipped: one view alone gives 50 % error, the average gives 0 %."""
    images = torch.zeros(2, 1, 1, 10, dtype=torch.uint8)
    images[0, 0, 0, 0], images[0, 0, 0, 8] = 6, 2  # unflipped: class 0, sure; flipped: class 1, unsure
    images[1, 0, 0, 2], images[1, 0, 0, 9] = 2, 6  # unflipped: class 2, unsure; flipped: class 0, sure
    labels = torch.tensor([0, 0])
    one = torch.zeros(1, 1, 1, 1)
    loader = TensorLoader(images, labels, batch_size=2, mean=one, std=one + 1, train=False, flip_view=True)
    metrics = evaluate(FirstPixelsAreLogits(), loader, contextlib.nullcontext, world_size=1)

    def softmax(logits: list[float]) -> list[float]:
        total = sum(math.exp(v) for v in logits)
        return [math.exp(v) / total for v in logits]

    views = [([6, 0, 0, 0, 0], [0, 2, 0, 0, 0]), ([0, 0, 2, 0, 0], [6, 0, 0, 0, 0])]
    right = [(softmax(a)[0] + softmax(b)[0]) / 2 for a, b in views]  # the averaged probability of class 0
    assert metrics["top1_error"] == 0.0
    assert metrics["loss"] == pytest.approx(-(math.log(right[0]) + math.log(right[1])) / 2, rel=1e-5)


# --- PCA lighting inside the ImageNet loader ----------------------------------------------------------------------


def test_imagenet_loader_adds_pca_lighting_to_training_batches_only(tmp_path: Path) -> None:
    """AlexNet Sec. 4.1: each training image gets one colour shift Σ α_i λ_i v_i over all its pixels."""
    write_folder(tmp_path / "imnet", train=12, val=1)
    cfg = {**IMAGENET, "val_split": 0, "normalize": "per_channel_mean"}  # no division: shifts stay in 0..255
    lit = build_data(cfg, ctx(tmp_path, batch_size=12))
    plain = build_data({**cfg, "lighting": 0.0}, ctx(tmp_path, batch_size=12))
    (a, _), (b, _) = next(lit.train.batches(0)), next(plain.train.batches(0))
    shift = a - b  # (N, 3, H, W): one RGB vector per image, the same at every pixel
    per_image = shift.mean((2, 3))
    assert (shift - per_image[..., None, None]).abs().max() < 1e-3
    alpha = per_image @ A.EIGVEC / A.EIGVAL  # the eigenvectors are orthonormal: V^T shift = α ⊙ λ
    assert alpha.abs().min() > 0 and len(set(alpha[:, 0].tolist())) == 12  # a draw per image
    assert 0.04 < alpha.std().item() < 0.2  # 36 draws of N(0, 0.1)
    for (x, _), (y, _) in zip(lit.test.batches(0), plain.test.batches(0), strict=True):
        assert torch.equal(x, y)


# --- the plateau schedule ends training -------------------------------------------------------------------------


@pytest.mark.slow
def test_training_ends_at_the_plateau_after_the_last_drop_and_tests_that_epoch(
    workdir: Path, empty_store: Path
) -> None:
    """max_drops 1, patience 1, no epoch counts as an improvement after the first: epoch 2 drops the lr,
    epoch 3 is the plateau after the last drop and ends the 6-epoch run; its test set is still evaluated."""
    run = finished_tiny_run(
        workdir,
        empty_store,
        ["schedule=plateau", "schedule.threshold=100", "schedule.patience=1", "schedule.max_drops=1",
         "trainer.epochs=6", "trainer.eval_test_every_epoch=false", "optim.lr=0.01"],
    )  # fmt: skip
    lrs = [m.value for m in metric_history(workdir, run.info.run_id, "lr")]
    assert lrs == pytest.approx([0.01, 0.01, 0.001])  # the lr each epoch trained with
    assert len(metric_history(workdir, run.info.run_id, "val_top1_error")) == 3
    last_epoch = metric_history(workdir, run.info.run_id, "lr")[-1].step
    assert [m.step for m in metric_history(workdir, run.info.run_id, "test_top1_error")] == [last_epoch]
    assert "final_test_top1_error" in run.data.metrics


# --- a sweep with a diverged job ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_with_a_diverged_job_exits_1_after_running_every_job(workdir: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        run_in_process(workdir, ["--multirun", "optim.lr=1e30,0.05", *TINY])
    assert stop.value.code == 1
    status = {r.data.params["optim.lr"]: r.data.tags.get("runner.status") for r in mlflow_runs(workdir)
              if "optim.lr" in r.data.params}  # fmt: skip
    assert status == {"1e+30": "diverged", "0.05": "finished"}
