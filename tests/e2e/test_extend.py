"""CONTRIBUTING.md, done as a newcomer would: a toy model (with its OPTIONS table), a toy data set (with its
facts), each written as a new family file and a YAML option exactly where the guide says, and a metric; then
trained through the real CLI (`runner.cli.main`, in-process, so that the metric added here is what the runner
sees). A key that no OPTIONS table declares is refused."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CONF_DIR, mlflow_runs, run_in_process

# It writes into the source tree (conf/, runner/) that every other test reads: never beside them under xdist.
pytestmark = pytest.mark.serial

MODEL_YAML = "name: toy_mlp\nhidden: 16   # the one option of the toy model\n"
MODEL_PY = """from torch import nn

from runner.config.schema import integer
from runner.models import ModelArgs, register_model

OPTIONS = {"hidden": integer(1, 4096)}  # width of the hidden layer


@register_model("toy_mlp")
def toy_mlp(args: ModelArgs, *, hidden: int) -> nn.Module:
    pixels = args.in_channels * args.image_size**2
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), args.act(hidden), nn.Linear(hidden, args.num_classes))
"""
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
PRESET_YAML = """# @package _global_
# A toy paper's claim, run by tests/e2e/test_extend.py.
defaults:
  - override /model: toy_mlp
  - override /dataset: toy_blobs
trainer:
  epochs: 3
  batch_size: 32
  progress: false
optim:
  lr: 0.05
tracking:
  experiment: toy_paper
hydra:
  sweeper:
    params:
      model.hidden: 2,32
      seed: 0,1
expected:
  paper: Toy et al. 2026, Table 1 (toy blobs test error, %)
  paper_group: Toy (Toy et al. 2026)
  page_order: 99
  dataset: toy_blobs
  scale: full
  protocol: {}
  key: [model.hidden]
  metrics: [test_top1_error]
  curves: [train_error, test_top2_error]
  numbers: {2: 40.0, 32: 5.0}
  claims:
    - id: wider_is_better
      text: "the wider hidden layer ends with the lower test error (Table 1)"
      data: any
      small_scale: testable
      small_scale_reason: "the toy data set is the paper's"
      checks:
        - {check: decreasing, metric: test_top1_error, rows: ["2", "32"]}
"""
DATA_PY = """import torch

from runner.data import register_dataset
from runner.data.tensor_loader import resident_data


@register_dataset("toy_blobs")
def toy_blobs(cfg, ctx):
    \"\"\"Three classes of 8x8 grey images: dark, mid and bright, with noise. Learnable in a few steps.\"\"\"
    gen = torch.Generator().manual_seed(0)

    def draw(n):
        y = torch.randint(0, 3, (n,), generator=gen)
        x = (y.view(-1, 1, 1, 1) * 100 + torch.randint(0, 40, (n, 1, 8, 8), generator=gen)).to(torch.uint8)
        return x, y

    return resident_data(*draw(288), *draw(96), num_classes=3, cfg=cfg, ctx=ctx)
"""


@pytest.fixture
def contribution(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Write the toy parts where CONTRIBUTING.md says (a family file and a YAML option each); take all of it
    away afterwards."""
    from runner.config import datasets, schema
    from runner.data import DATASETS
    from runner.models import MODELS
    from runner.train import metrics

    top2 = metrics.Metric("top2_error", metrics.wrong_at(2), percent=True)
    monkeypatch.setattr(metrics, "EVAL_METRICS", (*metrics.EVAL_METRICS, top2))
    package = Path(CONF_DIR).parent
    files = {
        package / "models" / "toy_mlp.py": MODEL_PY,
        Path(CONF_DIR) / "model" / "toy_mlp.yaml": MODEL_YAML,
        package / "data" / "toy_blobs.py": DATA_PY,
        Path(CONF_DIR) / "dataset" / "toy_blobs.yaml": DATA_YAML,
        Path(CONF_DIR) / "experiment" / "toy_paper.yaml": PRESET_YAML,
    }
    caches = (schema.declared_names, schema.model_option_rules, datasets.about)

    def forget() -> None:
        for cache in caches:
            cache.cache_clear()
        MODELS.pop("toy_mlp", None)
        DATASETS.pop("toy_blobs", None)
        for module in ("runner.models.toy_mlp", "runner.data.toy_blobs"):
            sys.modules.pop(module, None)
        # The schema reads the OPTIONS tables when runner starts: as a new process would, read them again.
        for key in [k for k in schema.SCHEMA if k.startswith("model.") and k != "model.name"]:
            del schema.SCHEMA[key]
        schema.SCHEMA.update(schema.model_option_rules())

    for path, text in files.items():
        path.write_text(text)
    forget()
    try:
        yield
    finally:
        for path in files:
            path.unlink(missing_ok=True)
        forget()
        importlib.invalidate_caches()


def test_a_toy_model_dataset_and_metric_train_through_the_cli(contribution: None, workdir: Path) -> None:
    argv = ["model=toy_mlp", "dataset=toy_blobs", "trainer.epochs=3", "trainer.batch_size=32"]
    run_in_process(workdir, [*argv, "trainer.progress=false", "optim.lr=0.05"])
    (run,) = mlflow_runs(workdir)
    assert run.info.status == "FINISHED" and run.data.params["model"] == "toy_mlp"
    assert run.data.params["model.hidden"] == "16" and run.data.params["dataset.name"] == "toy_blobs"
    # The new metric went through the loop, the all-reduce, MLflow and the summary, named like the others.
    assert {"val_top2_error", "test_top2_error", "final_test_top2_error"} <= set(run.data.metrics)
    assert run.data.metrics["test_top2_error"] <= run.data.metrics["test_top1_error"] < 100 * 2 / 3


def test_an_option_the_toy_family_does_not_declare_is_refused(contribution: None, tmp_path: Path) -> None:
    from runner.run.preflight import precheck

    assert precheck(["model=toy_mlp", "dataset=toy_blobs", "model.hidden=8"]) is None
    line = precheck(["model=toy_mlp", "dataset=toy_blobs", "model.hidden=0"])
    assert line == "model.hidden=0 is not allowed; expected an integer in [1, 4096]"


@pytest.mark.slow  # a sweep of four jobs
def test_a_toy_paper_preset_trains_reports_and_takes_its_place_on_the_results_page(
    contribution: None, workdir: Path
) -> None:
    from runner.analysis import results, verdicts

    kinds = {*verdicts.JUDGED, verdicts.NOT_LEARNED, verdicts.UNDER_BUDGET, verdicts.UNDERPOWERED}
    run_in_process(workdir, ["-m", "+experiment=toy_paper"])
    runs = mlflow_runs(workdir, "toy_paper")
    (parent,) = [r for r in runs if r.data.tags.get("runner.sweep") == "parent"]
    assert len(runs) == 5 and parent.data.tags["runner.verdict.wider_is_better"] in kinds
    assert {"claim.wider_is_better.delta", "claim.wider_is_better.p"} <= set(parent.data.metrics)
    # the metric's curve: drawn where the preset asks for it (its points are logged per epoch)
    children = [r for r in runs if r is not parent]
    assert all("test_top2_error" in r.data.metrics for r in children)
    # the results page finds the preset by its own YAML (a new process reads the folder again)
    assert ("Toy (Toy et al. 2026)", ("toy_paper",)) in results.paper_sections()
