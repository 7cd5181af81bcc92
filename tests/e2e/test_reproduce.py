"""A real, small reproduction on the CPU: He et al. 2015 (Delving Deep into Rectifiers), Fig. 3.

A 30-layer plain ReLU net without batch norm trains with the paper's init (kaiming) and does not train at all
with the paper's "Xavier" (std = sqrt(1/n)). Run through the real `runner -m` entry point with the 30-layer half
of the init_depth_small preset at its earlier scale (plain_deep30 at width 16 on 2,560 Fashion-MNIST images, 3
seeds per init), for twice its earlier budget: 320 iterations instead of 160. At 160 the kaiming nets are only
starting to leave chance (two of three seeds sit at 2.25-2.30 for three epochs, then drop in the fourth), so
where a seed stands at iteration 160 depends on float rounding: seed 0 reads 1.76 with one torch thread and 2.29
with two on the same machine, and the verdict of 3 seeds read 'reproduced' on one machine and 'inconclusive' on
another (2026-12-06). By iteration 320 every seed was below 0.9 with either thread count. The preset keeps its
own budget, and its verdict is what `make reproduce` measures; this test checks the pipeline and the contrast
where it is settled. It trains 6 jobs for ~10 min on a 2-core EPYC: marked `claims`, it runs in `make
test-claims`, not in `make test`, which keeps the seconds-long sweep below (the verdict engine end to end, on
the e2e tier's shared INIT_DEPTH_QUICK store). The sweep's report gives mean ± std per cell, the verdict with
its p-value at reduced scale, and says that the 22-layer claims were not run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import metric_history, mlflow_runs, run_runner

CHANCE = math.log(10)
EPOCHS = 8  # 320 iterations of batch 64: twice the preset's earlier budget (see above)
# The preset's scale until 2026-12-07 (width 16, 2,560 training images, a 256-image test subset), pinned here:
# the preset now trains 800 iterations on 12,800 images at width 8 (make reproduce's budget), ~5× this test.
EARLIER_SCALE = ["model.width=16", "dataset.subset=2816", "dataset.val_split=256", "dataset.test_subset=256"]

pytestmark = pytest.mark.e2e  # every test here starts `runner` in a subprocess


@pytest.mark.slow
@pytest.mark.claims  # ~10 min on a 2-core EPYC: `make test-claims`, not `make test`
def test_init_depth_30_layers_xavier_stalls_kaiming_converges(workdir: Path) -> None:
    # Two torch threads: this 30-layer net trains 1.7× faster with the second core (79 s → 46 s a job here).
    argv = [
        "-m",
        "+experiment=init_depth_small",
        "model=plain_deep30",
        f"trainer.epochs={EPOCHS}",
        *EARLIER_SCALE,
    ]
    result = run_runner(argv, workdir, env={"OMP_NUM_THREADS": "2"}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow_runs(workdir, "init_depth_small")
    parent = next(r for r in runs if r.data.tags.get("runner.sweep") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    by_init: dict[str, list] = {}
    for child in children:
        by_init.setdefault(child.data.params["init"], []).append(child)
    assert {k: sorted(c.data.params["seed"] for c in v) for k, v in by_init.items()} == {
        "kaiming": ["0", "1", "2"],
        "xavier_he": ["0", "1", "2"],
    }
    # The seeds of one config share a cell id (the report and MLflow's group-by gather them by it).
    assert all(len({c.data.tags["runner.cell"] for c in cell}) == 1 for cell in by_init.values())
    assert by_init["kaiming"][0].data.tags["runner.cell"] != by_init["xavier_he"][0].data.tags["runner.cell"]
    for init, cell in by_init.items():
        for child in cell:
            losses = [m.value for m in metric_history(workdir, child.info.run_id, "train_loss")]
            print(init, child.data.params["seed"], [round(v, 3) for v in losses])
            assert len(losses) == EPOCHS  # one point per epoch
            if init == "kaiming":
                assert losses[-1] < 2.0 < CHANCE  # clearly below chance: the net learns
            else:
                assert all(abs(v - CHANCE) < 0.01 for v in losses)  # at chance throughout: it stalls

    tags = parent.data.tags
    assert tags["runner.verdict.depth30_xavier_stalls"] == "reproduced at reduced scale"
    assert tags["runner.verdict.depth22_both_converge"] == "not run"
    assert tags["runner.verdict.depth22_kaiming_earlier"] == "not run"
    report = (
        (workdir / "report.md").read_text()
        if (workdir / "report.md").exists()
        else _artifact(workdir, parent)
    )
    assert "| ± |" in report.replace("±  |", "± |")  # the seed spread column
    line = next(x for x in report.splitlines() if x.startswith("- **30 layers"))
    assert "reproduced at reduced scale (" in line and ("p = " in line or "p < " in line), line
    print(report)


# The verdict engine end to end in seconds: the same sweep at a budget where nothing is settled yet (the e2e
# tier's shared INIT_DEPTH_QUICK, tests/conftest.py: 4 jobs of 4 iterations, 2-filter nets). What must hold at
# any budget: the paper's "Xavier" holds a 30-layer plain ReLU net at chance from the first iteration (its
# signal vanishes: 1.3e-9 of the input's power at the output), the runs of a config share a cell, every claim
# gets a verdict tag, the claims of the rows not run read "not run", and the 30-layer claim's report line gives
# its test's p-value. Which verdict it reads is `make test-claims`'.
@pytest.mark.slow
def test_the_verdict_engine_judges_a_seconds_long_sweep_end_to_end(
    init_depth_quick: Path, tmp_path: Path
) -> None:
    cwd = init_depth_quick
    runs = mlflow_runs(cwd, "init_depth_small")
    parent = next(r for r in runs if r.data.tags.get("runner.sweep") == "parent")
    assert parent.info.run_name == "init_depth_small"  # a preset's parent run is named by the preset
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    cells = {(c.data.params["init"], c.data.params["seed"]): c.data.tags["runner.cell"] for c in children}
    assert sorted(cells) == [("kaiming", "0"), ("kaiming", "1"), ("xavier_he", "0"), ("xavier_he", "1")]
    assert (
        cells["kaiming", "0"] == cells["kaiming", "1"] != cells["xavier_he", "0"] == cells["xavier_he", "1"]
    )
    for child in children:
        if child.data.params["init"] == "xavier_he":
            losses = [m.value for m in metric_history(cwd, child.info.run_id, "train_loss")]
            assert losses and all(abs(v - CHANCE) < 0.01 for v in losses), losses

    tags = parent.data.tags
    assert tags["runner.verdict.depth22_both_converge"] == "not run"
    assert tags["runner.verdict.depth22_kaiming_earlier"] == "not run"
    assert tags["runner.verdict.depth30_xavier_stalls"] not in ("", "not run")
    report = _artifact(cwd, parent, tmp_path)
    line = next(x for x in report.splitlines() if x.startswith("- **30 layers"))
    assert "p = " in line or "p < " in line, line


def _artifact(cwd: Path, parent, dst: Path | None = None) -> str:
    """The parent run's report.md, downloaded into `dst` (default `cwd`)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    return Path(client.download_artifacts(parent.info.run_id, "report.md", str(dst or cwd))).read_text()
