"""runner/analysis/report.py over a real MLflow store written in-process (no training): a sweep of 2 cells × 3 seeds,
one seed diverged, read back, judged, rendered and logged on the parent; `runner-report --format`."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from runner.analysis import report
from runner.tracking.store import Tracker

LN10 = math.log(10)
PRESET = {
    "experiment": "toy",
    "sweep_keys": ["init", "seed"],
    "expected": {
        "paper": "He et al. 2015, Fig. 3",
        "dataset": "fashion_mnist",
        "scale": "full",
        "key": ["model", "init"],
        "metrics": ["test_top1_error"],
        "numbers": {"deep30/kaiming": 30.0},
        "protocol": {"model.width": 16},
        "claims": [
            {
                "id": "xavier_stalls",
                "text": "30 layers: Xavier stalls, kaiming converges",
                "data": "any",
                "early_training": True,  # as init_depth's claim: no budget gate
                "checks": [
                    {"check": "converges", "rows": ["deep30/kaiming"], "below_chance": 0.87},
                    {"check": "stalls", "rows": ["deep30/xavier"], "within": 0.05},
                ],
            },
            {
                "id": "kaiming_better",
                "text": "kaiming ends with the lower test error",
                "data": "any",
                "checks": [
                    {
                        "check": "increasing",
                        "metric": "test_top1_error",
                        "rows": ["deep30/kaiming", "deep30/xavier"],
                    }
                ],
            },
        ],
    },
}


def child(tracker: Tracker, exp: str, parent: str, init: str, seed: int, status: str = "finished") -> None:
    tracker.start(exp, f"{init}-{seed}", {"runner.status": status, "runner.cell": f"cell-{init}"}, parent)
    params = {
        "model": "deep30",
        "init": init,
        "seed": seed,
        "dataset.name": "fashion_mnist",
        "model.width": 16,
    }
    tracker.log_params(params)
    for step in (40, 80, 120, 160):
        if init == "kaiming":
            loss, err = 2.2 - step / 160 - 0.05 * seed, 80 - step / 4 - seed
        else:
            loss, err = LN10 + 0.0005 * (seed - 1), 90.0 + seed / 10
        if status == "diverged" and step > 80:
            loss = float("nan")
        tracker.log_metrics({"train_loss": loss, "train_error": err, "test_top1_error": err}, step)
    tracker.end("FINISHED" if status == "finished" else "FAILED")


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Tracker, str]:
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "art"), retries=())
    exp = tracker.experiment_id("toy")
    parent = tracker.start(exp, "toy", {"runner.sweep": "parent"})
    tracker.log_text(json.dumps(PRESET), "preset.json")
    for init in ("kaiming", "xavier"):
        for seed in range(3):
            child(tracker, exp, parent, init, seed)
    child(tracker, exp, parent, "kaiming", 3, status="diverged")
    return tracker, parent


def test_the_report_reads_judges_and_logs_a_seeded_sweep(
    sweep: tuple[Tracker, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tracker, parent = sweep
    verdicts = {v.claim: v for v in report.report(tracker, parent)}
    stalls = verdicts["xavier_stalls"]
    # fashion_mnist is the paper's data set here and width 16 its width: the same protocol.
    assert stalls.kind == "reproduced" and stalls.p is not None and stalls.p < 0.05
    assert "chance ln 10 = 2.30" in stalls.detail and "3 (1 diverged)" not in stalls.detail
    # an ordering against a row whose every seed stayed at chance: stopped by the learned gate, with its counts
    assert (
        verdicts["kaiming_better"].headline == "not testable: deep30/xavier did not learn (0/3 seeds learned)"
    )
    out = capsys.readouterr().out
    assert "toy (7 jobs, 2 cells" in out and "diverged" in out  # the table wraps at the test width

    run = tracker.get_run(parent)
    assert run.data.tags["runner.verdict.xavier_stalls"] == "reproduced"
    assert run.data.tags["runner.gate.kaiming_better"] == "learned"
    # the cell statistics and the claim's numbers as metrics of the parent (MLflow charts and compares them)
    m = run.data.metrics
    assert m["cell.deep30/kaiming.test_top1_error.mean"] == pytest.approx(39.0)  # 40, 39, 38 at the last step
    assert (
        m["cell.deep30/kaiming.test_top1_error.n_learned"],
        m["cell.deep30/kaiming.test_top1_error.n_run"],
    ) == (3, 4)
    assert m["cell.deep30/kaiming.test_top1_error.hi"] - 39.0 == pytest.approx(4.303 * 1.0 / 3**0.5, abs=1e-3)
    assert m["claim.xavier_stalls.p"] == pytest.approx(stalls.p) and "claim.xavier_stalls.p_holm" in m
    files = {
        name: tracker.read_artifact_text(parent, name) for name in ("report.md", "report.csv", "report.json")
    }
    assert "| ± |" in files["report.md"] and "reproduced (Δ(deep30/" in files["report.md"]
    rows = list(csv.DictReader(io.StringIO(files["report.csv"])))
    kaiming = next(r for r in rows if r["init"] == "kaiming")
    assert kaiming["seeds"] == "3/4 (1 diverged)" and len(kaiming["run_ids"].split()) == 4
    assert float(kaiming["test_top1_error"]) == pytest.approx(39.0)  # 40, 39, 38 at the last step
    assert kaiming["Δ vs paper"] == "+9.00"
    data = json.loads(files["report.json"])
    assert data["cells"][0]["seeds"] == {"finished": 3, "diverged": 1}
    assert {a.path for a in tracker.client.list_artifacts(parent)} >= {"curves.png", "report.md"}


def test_runner_report_cli_writes_the_chosen_format(
    sweep: tuple[Tracker, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, parent = sweep
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.chdir(out_dir)
    report.main(["toy", "--uri", tracker.uri, "--format", "json"])
    data = json.loads((out_dir / "report.json").read_text())
    assert {v["claim"]: v["verdict"] for v in data["verdicts"]}[
        "kaiming_better"
    ] == "not testable: did not learn"
    report.main([parent, "--uri", tracker.uri, "--format", "csv"])
    assert "run_ids" in (out_dir / "report.csv").read_text()
    with pytest.raises(SystemExit) as exit_info:
        report.main(["no_such_experiment", "--uri", tracker.uri])
    assert exit_info.value.code == 2


def test_the_sweep_callback_reports_on_the_parent_run_its_tracker_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def fake_report(tracker: object, parent_id: str) -> list[str]:
        calls.append((tracker, parent_id))
        return ["the verdicts"]

    monkeypatch.setattr(report, "report", fake_report)
    tracker = type("Tracker", (), {"run_id": "parent-1"})()
    assert report.sweep_report(tracker, {"seed": 0}) == ["the verdicts"]
    assert calls == [(tracker, "parent-1")]


def test_compose_reads_the_packaged_configs_or_the_hydra_already_running(tmp_path: Path) -> None:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import JobRuntime
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from hydra.version import VersionBase

    backup = get_gh_backup()
    GlobalHydra.instance().clear()  # outside any Hydra run: _compose starts its own
    JobRuntime.instance().set("name", "before")
    try:
        cfg = report._compose(["+experiment=init_depth_small", "seed=3"])
        assert not GlobalHydra.instance().is_initialized()  # left as it was found
    finally:
        restore_gh_from_backup(backup)
    # runner/conf with the overrides: init_depth_small's width and experiment, the seed given
    assert (cfg.model.width, cfg.seed, cfg.tracking.experiment) == (8, 3, "init_depth_small")
    assert "hydra" not in cfg
    # Hydra as `runner` starts it: job name runner, version_base 1.3 (not the 1.1 compatibility defaults)
    assert JobRuntime.instance().get("name") == "runner"
    assert str(VersionBase.instance().getbase()) == "1.3"

    # Inside a Hydra run (the sweep's callback): its own config directory, with the overrides.
    (tmp_path / "config.yaml").write_text("greeting: hello\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = report._compose(["+extra=1"])
    assert dict(cfg) == {"greeting": "hello", "extra": 1}
