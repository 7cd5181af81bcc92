"""CONTRIBUTING.md, done as a newcomer would: a toy model, data set and metric, each added in the one or two
places the guide names (a registry and a YAML option), then trained through the real CLI (`runner.cli.main`,
in-process, so that what this test registers is what the runner sees)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR, mlflow_runs, run_in_process
from torch import nn

MODEL_YAML = "name: toy_mlp\nhidden: 16   # the one option of the toy model\n"
DATA_YAML = """name: toy_blobs
about:
  display: toy blobs
  kind: resident
  classes: 3
  channels: 1
  image_size: 8
  train_images: 288
  full_data_args: ""
val_split: 32
split_seed: 0
subset: null
test_subset: null
augment: []
crop_pad: black
normalize: per_channel
test_view: whole
"""


@pytest.fixture
def contribution(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register the toy parts and write their YAML options; take all of it away afterwards."""
    from runner.config import datasets
    from runner.config import schema as config
    from runner.data import DATASETS, register_dataset
    from runner.data.tensor_loader import resident_data
    from runner.models import MODELS, register_model
    from runner.train import metrics

    @register_model("toy_mlp")
    def toy_mlp(args, *, hidden: int) -> nn.Module:
        pixels = args.in_channels * args.image_size**2
        return nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, hidden), args.act(hidden), nn.Linear(hidden, args.num_classes)
        )

    @register_dataset("toy_blobs")
    def toy_blobs(cfg, ctx):
        """Three classes of 8×8 grey images: dark, mid and bright, with noise. Learnable in a few steps."""
        gen = torch.Generator().manual_seed(0)

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.randint(0, 3, (n,), generator=gen)
            x = (y.view(-1, 1, 1, 1) * 100 + torch.randint(0, 40, (n, 1, 8, 8), generator=gen)).to(
                torch.uint8
            )
            return x, y

        return resident_data(*draw(288), *draw(96), num_classes=3, cfg=cfg, ctx=ctx)

    top2 = metrics.Metric("top2_error", metrics.wrong_at(2), percent=True)
    monkeypatch.setattr(metrics, "EVAL_METRICS", (*metrics.EVAL_METRICS, top2))
    files = [Path(CONF_DIR) / "model" / "toy_mlp.yaml", Path(CONF_DIR) / "dataset" / "toy_blobs.yaml"]
    files[0].write_text(MODEL_YAML)
    files[1].write_text(DATA_YAML)
    config.declared_names.cache_clear()
    datasets.about.cache_clear()
    try:
        yield
    finally:
        for path in files:
            path.unlink(missing_ok=True)
        MODELS.pop("toy_mlp", None)
        DATASETS.pop("toy_blobs", None)
        config.declared_names.cache_clear()
        datasets.about.cache_clear()


def test_a_toy_model_dataset_and_metric_train_through_the_cli(contribution: None, tmp_path: Path) -> None:
    argv = ["model=toy_mlp", "dataset=toy_blobs", "trainer.epochs=3", "trainer.batch_size=32"]
    run_in_process(tmp_path, [*argv, "trainer.progress=false", "optim.lr=0.05"])
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.params["model"] == "toy_mlp"
    assert run.data.params["model.hidden"] == "16" and run.data.params["dataset.name"] == "toy_blobs"
    # The new metric went through the loop, the all-reduce, MLflow and the summary, named like the others.
    assert {"val_top2_error", "test_top2_error", "final_test_top2_error"} <= set(run.data.metrics)
    assert run.data.metrics["test_top2_error"] <= run.data.metrics["test_top1_error"] < 100 * 2 / 3
