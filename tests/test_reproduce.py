"""A real, small reproduction on the CPU: He et al. 2015 (Delving Deep into Rectifiers), Fig. 3.

A 30-layer plain ReLU net without batch norm trains with the paper's init (kaiming) and does not train at
all with Xavier's. Run through the real `runner -m` entry point with the init_depth_small preset
(plain_deep30, 160 iterations on 2,560 Fashion-MNIST images); the sweep's report marks the claim
"reproduced" and says honestly that the 22-layer claims were not run at this scale.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import metric_history, mlflow_runs, run_runner

CHANCE = math.log(10)


@pytest.mark.slow
def test_init_depth_30_layers_xavier_stalls_kaiming_converges(workdir: Path) -> None:
    result = run_runner(["-m", "+experiment=init_depth_small"], workdir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow_runs(workdir, "init_depth_small")
    parent = next(r for r in runs if r.data.tags.get("runner.sweep") == "parent")
    children = {
        r.data.params["init"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == {"kaiming", "xavier"}
    losses = {
        init: [m.value for m in metric_history(workdir, run.info.run_id, "train_loss")]
        for init, run in children.items()
    }
    print("train loss per epoch:", {k: [round(v, 3) for v in vs] for k, vs in losses.items()})
    assert len(losses["kaiming"]) == len(losses["xavier"]) == 4  # one point per epoch
    assert losses["kaiming"][-1] < 2.0 < CHANCE  # clearly below chance: the net learns
    assert all(abs(v - CHANCE) < 0.01 for v in losses["xavier"])  # at chance throughout: it stalls
    tags = parent.data.tags
    assert tags["runner.verdict.depth30_xavier_stalls"] == "reproduced"
    assert tags["runner.verdict.depth22_both_converge"] == "not run"
    assert tags["runner.verdict.depth22_kaiming_earlier"] == "not run"
