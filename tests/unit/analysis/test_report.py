"""runner/analysis/report.py over a real MLflow store written in-process (no training): a sweep of 2 cells × 3 seeds,
one seed diverged, read back, judged, rendered and logged on the parent; `runner-report --format`."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runner.analysis import render, report
from runner.analysis.verdicts import Cell, Effect, Expected, Run, Verdict
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
def sweep(workdir: Path) -> tuple[Tracker, str]:
    """A toy sweep in a copy of the migrated empty store (a new store's migrations take 2-4 s)."""
    tracker = Tracker(f"sqlite:///{workdir / 'mlflow.db'}", str(workdir / "art"), retries=())
    exp = tracker.experiment_id("toy")
    parent = tracker.start(exp, "toy", {"runner.sweep": "parent"})
    tracker.log_text(json.dumps(PRESET), "preset.json")
    for init in ("kaiming", "xavier"):
        for seed in range(3):
            child(tracker, exp, parent, init, seed)
    child(tracker, exp, parent, "kaiming", 3, status="diverged")
    return tracker, parent


@pytest.mark.whole_run
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


@pytest.mark.whole_run
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


# --- the same, in memory: a fake store with the Tracker methods the report reads and writes ---------------


def mlflow_run(
    run_id: str,
    params: dict[str, str],
    tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    status: str = "FINISHED",
    start: int | None = 1_000,
    end: int | None = 61_500,
    name: str | None = None,
) -> SimpleNamespace:
    """What MlflowClient.get_run / search_runs return, as far as the report reads it (times in ms)."""
    info = SimpleNamespace(run_id=run_id, run_name=name, status=status, start_time=start, end_time=end)
    return SimpleNamespace(
        info=info, data=SimpleNamespace(params=params, tags=tags or {}, metrics=metrics or {})
    )


class FakeStore:
    """A sweep held in memory: the parent's preset.json and its children; what the report logs is kept."""

    def __init__(
        self,
        preset: dict[str, Any] | None,
        children: Sequence[SimpleNamespace] = (),
        histories: dict[tuple[str, str], list[tuple[int, float]]] | None = None,
        parent_name: str | None = "toy",
    ) -> None:
        self.preset, self.children, self.histories = preset, list(children), histories or {}
        self.parent_name = parent_name
        self.run_id: str | None = None
        self.texts: dict[str, str] = {}
        self.files: dict[str, bytes] = {}
        self.tags: dict[str, str] = {}
        self.logged: list[tuple[dict[str, float], int]] = []

    def get_run(self, run_id: str) -> SimpleNamespace:
        return mlflow_run(run_id, {}, name=self.parent_name)

    def read_artifact_text(self, run_id: str, path: str) -> str | None:
        assert path == "preset.json"
        return None if self.preset is None else json.dumps(self.preset)

    def child_runs(self, parent: SimpleNamespace) -> list[SimpleNamespace]:
        return self.children

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return self.histories.get((run_id, key), [])

    def newest_sweep(self, experiment_name: str) -> str | None:
        return "p1" if experiment_name == "toy" else None

    def run_id_or_none(self, run_id: str) -> str | None:
        return run_id if run_id == "p1" else None

    def log_text(self, text: str, filename: str) -> None:
        self.texts[filename] = text

    def log_file(self, path: Path) -> None:
        self.files[path.name] = path.read_bytes()

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((dict(metrics), step))


def children(**extra: str) -> list[SimpleNamespace]:
    """Two inits × two seeds from before the runner.cell tag (their params stand in for it)."""
    return [
        mlflow_run(
            f"{init}-{seed}",
            {"init": init, "seed": str(seed), "dataset.name": "fashion_mnist", **extra},
            metrics={"test_top1_error": 40.0 + seed},
        )
        for init in ("kaiming", "xavier")
        for seed in (0, 1)
    ]


def test_to_run_reads_the_cell_and_status_tags_the_wall_time_and_each_curve() -> None:
    store = FakeStore(None, histories={("r1", "train_loss"): [(10, 2.0), (20, 1.5)]})
    tagged = mlflow_run(
        "r1",
        {"seed": "0", "init": "kaiming"},
        {"runner.cell": "abc", "runner.status": "diverged"},
        {"train_loss": 1.5},
        status="FAILED",
    )
    assert report.to_run(store, tagged, ["train_loss", "train_error"]) == Run(
        run_id="r1",
        cell="abc",
        status="diverged",
        params={"seed": "0", "init": "kaiming"},
        metrics={"train_loss": 1.5},
        history={"train_loss": [(10, 2.0), (20, 1.5)], "train_error": []},
        wall_s=60.5,
    )


def test_to_run_of_a_run_without_tags_takes_its_params_but_the_seed_as_its_cell() -> None:
    """Runs from before the runner.cell / runner.status tags: MLflow's own status, lower-cased as the
    verdicts read it, and no wall time while the run has not ended."""
    old = mlflow_run("r2", {"seed": "3", "lr": "0.1", "init": "xavier"}, status="FINISHED", end=None)
    out = report.to_run(FakeStore(None), old, [])
    assert out.cell == '{"init": "xavier", "lr": "0.1"}'
    assert (out.status, out.wall_s, out.history) == ("finished", None, {})
    assert report.to_run(FakeStore(None), mlflow_run("r3", {}, status="KILLED"), []).status == "killed"


@pytest.mark.parametrize(
    ("experiment", "full"),
    [
        ("init_depth_small", "init_depth"),
        ("init_depth_smoke", "init_depth"),
        ("init_depth", "init_depth"),
        ("vgg_depth_small", "vgg_depth"),
        ("toy_small", None),  # no conf/experiment/toy.yaml
        ("", None),
        (None, None),
    ],
)
def test_full_preset_is_the_packaged_preset_a_small_or_smoke_one_stands_for(
    experiment: str | None, full: str | None
) -> None:
    assert report.full_preset(experiment) == full


def test_reference_composes_each_row_of_the_full_preset_once_and_flattens_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """_compose replaced (no Hydra): the overrides it is asked for, and the config the verdicts read back."""
    from omegaconf import OmegaConf

    asked: list[list[str]] = []

    def compose(overrides: list[str]) -> Any:
        asked.append(overrides)
        if "model=broken" in overrides:
            raise ValueError("no such model")
        return OmegaConf.create(
            {"optim": {"lr": "${lr}"}, "lr": 0.1, "expected": {"x": 1}, "hydra": {"y": 2}}
        )

    monkeypatch.setattr(report, "_compose", compose)
    assert report.reference(None) is None  # no full preset: nothing to compare with

    config = report.reference("init_depth")

    assert config is not None
    row = (("model", "deep30"), ("init", "?"))  # "?": a key the run did not log is not overridden
    assert config(row) == {"optim.lr": 0.1, "lr": 0.1}  # resolved; expected and hydra left out
    assert config(row) == {"optim.lr": 0.1, "lr": 0.1}
    assert asked == [["+experiment=init_depth", "model=deep30"]]  # composed once per row
    assert config((("model", "broken"),)) is None
    assert capsys.readouterr().err == (
        "runner-report: +experiment=init_depth model=broken: ValueError: no such model\n"
    )


def test_parse_preset_reads_the_expected_block_and_the_swept_keys() -> None:
    assert report.parse_preset(None) == (None, [])
    assert report.parse_preset('{"sweep_keys": null}') == (None, [])
    assert report.parse_preset('{"sweep_keys": ["init", "seed"]}') == (None, ["init", "seed"])
    ex, keys = report.parse_preset(json.dumps(PRESET))
    assert ex == Expected.parse(PRESET["expected"]) and keys == ["init", "seed"]


def test_history_metrics_are_the_curves_their_fine_versions_and_what_the_claims_read() -> None:
    assert report._history_metrics(None) == [*render.CURVES, "train_error_interval", "train_loss_interval"]
    ex = Expected.parse({**PRESET["expected"], "curves": ["test_top5_error"]})
    assert report._history_metrics(ex) == [
        "test_top5_error",
        "train_error_interval",
        "train_loss_interval",
        "train_loss",  # converges / stalls
        "test_top1_error",  # the ordering
    ]


def test_build_without_an_expected_block_groups_the_runs_by_the_swept_keys_but_the_seed() -> None:
    store = FakeStore(
        {"experiment": "toy", "sweep_keys": ["init", "seed"]},
        children(),
        histories={("kaiming-0", "train_loss"): [(5, 2.0)]},
    )
    built = report.build(store, "p1")
    assert built.title == "toy (4 jobs, 2 cells, parent run p1)"
    assert (built.expected, built.keys, built.verdicts) == (None, ["init"], [])
    assert [(c.label, [r.run_id for r in c.runs]) for c in built.cells] == [
        ("kaiming", ["kaiming-0", "kaiming-1"]),
        ("xavier", ["xavier-0", "xavier-1"]),
    ]
    assert built.cells[0].runs[0].history["train_loss"] == [(5, 2.0)]
    assert report.build(FakeStore(None, children(), parent_name=None), "p1").title == (
        "sweep (4 jobs, 2 cells, parent run p1)"  # no preset.json: cells by the runs' params but the seed
    )


def test_build_judges_against_the_full_preset_the_sweeps_preset_stands_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """init_depth_small's rows are compared with init_depth's config: its differences name the scale."""
    asked: list[str | None] = []

    def reference(preset: str | None) -> Any:
        asked.append(preset)
        return lambda row: {"optim.lr": 0.1}  # the full preset's config for every row

    monkeypatch.setattr(report, "reference", reference)
    preset = {**PRESET, "experiment": "init_depth_small"}
    sweep = children(**{"model": "deep30", "model.width": "16", "optim.lr": "0.05"})
    built = report.build(FakeStore(preset, sweep), "p1")
    assert asked == ["init_depth"]
    assert {v.claim: v.scale for v in built.verdicts}["kaiming_better"] == "lr 0.05 (full 0.1)"
    report.build(FakeStore({**PRESET, "experiment": "toy"}, children()), "p1")
    report.build(FakeStore(None, children()), "p1")
    assert asked == ["init_depth", None, None]


def a_report(expected: Expected | None, verdicts: Sequence[Verdict] = ()) -> report.Report:
    runs = [
        Run(f"k{i}", "c", "finished", {"init": "kaiming", "seed": str(i)}, {"test_top1_error": 40.0 + i})
        for i in range(2)
    ]
    return report.Report(
        "toy (2 jobs, 1 cells, parent run p1)",
        expected,
        ["init"],
        [Cell("kaiming", "c", runs)],
        list(verdicts),
    )


VERDICTS = [
    Verdict(
        "a:b",
        "kaiming converges",
        "reproduced",
        0.01,
        "measured",
        p_reverse=0.99,
        p_holm=0.02,
        effect=Effect("b − a", 2.0, 1.0, 3.0, 1.5, (3, 3)),
    ),
    Verdict(
        "c",
        "xavier stalls",
        "not testable: did not learn",
        None,
        "0/3 learned",
        gate="learned",
        p_reverse=math.nan,
    ),
]


def test_show_prints_the_table_of_the_presets_metrics_with_the_paper_and_each_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runner import console

    tables: list[tuple[str, list[str], str]] = []
    lines: list[str] = []
    monkeypatch.setattr(
        console, "table", lambda title, header, rows, caption: tables.append((title, header, caption))
    )
    monkeypatch.setattr(console, "info", lines.append)
    ex = Expected.parse(PRESET["expected"])
    report.show(a_report(ex, VERDICTS))
    (title, header, caption) = tables[0]
    assert title == "toy (2 jobs, 1 cells, parent run p1)" and caption == "He et al. 2015, Fig. 3"
    assert header == render.table(a_report(ex).cells, ["init"], ex)[0] and "test_top5_error" not in header
    assert lines == [render.verdict_line(v) for v in VERDICTS]
    report.show(a_report(None))
    assert tables[1][2] == "" and "test_top5_error" in tables[1][1]


def test_log_writes_the_files_the_curves_the_verdict_and_gate_tags_and_the_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[tuple[str, str, tuple[str, ...]]] = []

    def plot_curves(cells: Sequence[Cell], path: Path, title: str, curves: Sequence[str]) -> None:
        drawn.append((path.name, title, tuple(curves)))
        path.write_bytes(b"png")

    monkeypatch.setattr(render, "plot_curves", plot_curves)
    ex = Expected.parse({**PRESET["expected"], "curves": ["test_top1_error"]})
    done = a_report(ex, VERDICTS)
    store = FakeStore(None)
    report.log(store, "p1", done)
    assert store.run_id == "p1"
    assert store.texts == {f"report.{fmt}": text for fmt, text in done.files().items()}
    assert store.files == {"curves.png": b"png"} and drawn == [("curves.png", "toy", ("test_top1_error",))]
    assert store.tags == {
        "runner.verdict.a_b": "reproduced",  # ":" is no MLflow key character
        "runner.verdict.c": "not testable: did not learn",
        "runner.gate.c": "learned",
        "runner.jobs": "2",
    }
    assert store.logged == [({**report.cell_metrics(done), **report.claim_metrics(VERDICTS)}, 0)]

    store = FakeStore(None)
    report.log(store, "p1", a_report(None))  # no preset: the default curves
    assert drawn[1] == ("curves.png", "toy", render.CURVES)
    empty = report.Report("toy sweep (0 jobs, 0 cells, parent run p1)", None, [], [], [])
    store = FakeStore(None)
    report.log(store, "p1", empty)
    assert store.tags == {"runner.jobs": "0"} and store.logged == []  # nothing measured: no metrics call
    assert drawn[2][1] == "toy sweep"  # the curves' title: the run's name, spaces and all


def test_cell_metrics_are_each_cells_statistics_over_its_learned_seeds() -> None:
    """The interval is the 95 % t-interval of the mean: t(0.975, 2) = 4.303 over 3 seeds of std 1."""
    fashion = {"dataset.name": "fashion_mnist"}
    learned = [
        Run(
            f"a{i}",
            "a",
            "finished",
            fashion,
            {"test_top1_error": 7.0 + i, "test_top5_error": 1.0, "train_loss": 0.5},
        )
        for i in range(3)
    ]
    at_chance = Run("a3", "a", "finished", fashion, {"test_top1_error": 90.0, "train_loss": math.log(10)})
    lost = Run("a4", "a", "diverged", fashion, {})
    unmeasured = Run("b0", "b", "finished", fashion, {"test_top1_error": 12.0})  # no loss: counted as learned
    ex = Expected.parse({**PRESET["expected"], "metrics": ["test_top1_error", "test_top5_error"]})
    cells = [Cell("deep/(a)", "a", [*learned, at_chance, lost]), Cell("b", "b", [unmeasured])]
    out = report.cell_metrics(report.Report("toy", ex, [], cells, []))
    half = 4.302652729749462 / math.sqrt(3)
    a = "cell.deep/_a_.test_top1_error"
    assert out == pytest.approx(
        {
            f"{a}.mean": 8.0,
            f"{a}.std": 1.0,
            f"{a}.n_learned": 3.0,
            f"{a}.n_run": 5.0,
            f"{a}.lo": 8.0 - half,
            f"{a}.hi": 8.0 + half,
            "cell.deep/_a_.test_top5_error.mean": 1.0,
            "cell.deep/_a_.test_top5_error.std": 0.0,
            "cell.deep/_a_.test_top5_error.n_learned": 3.0,
            "cell.deep/_a_.test_top5_error.n_run": 5.0,
            "cell.deep/_a_.test_top5_error.lo": 1.0,
            "cell.deep/_a_.test_top5_error.hi": 1.0,
            "cell.b.test_top1_error.mean": 12.0,
            "cell.b.test_top1_error.std": 0.0,
            "cell.b.test_top1_error.n_learned": 1.0,
            "cell.b.test_top1_error.n_run": 1.0,
        }
    )
    assert set(report.cell_metrics(report.Report("toy", None, [], cells[1:], []))) == {
        f"cell.b.test_top1_error.{k}" for k in ("mean", "std", "n_learned", "n_run")
    }  # no preset: top-1 and top-5 error, and b logged no top-5


def test_claim_metrics_are_each_claims_delta_interval_paper_delta_and_finite_p_values() -> None:
    assert report.claim_metrics(VERDICTS) == {
        "claim.a_b.p": 0.01,
        "claim.a_b.p_reverse": 0.99,
        "claim.a_b.p_holm": 0.02,
        "claim.a_b.delta": 2.0,
        "claim.a_b.lo": 1.0,
        "claim.a_b.hi": 3.0,
        "claim.a_b.paper_delta": 1.5,
    }  # claim c: no p, a NaN reverse p and no effect: nothing to log
    censored = Verdict("d", "t", "reproduced", 0.5, "", effect=Effect("b − a", 1.0, None, None, None, (2, 2)))
    assert report.claim_metrics([censored]) == {"claim.d.p": 0.5, "claim.d.delta": 1.0}


def test_runner_report_help_says_what_the_target_is(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        report.main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "target an MLflow experiment name (its newest sweep) or a parent run id" in out
    assert "--format {md,csv,json} also write report.<format> in this directory" in out
    assert out.startswith("usage: runner-report ")  # the command's name, as the user types it
    assert report.__doc__.splitlines()[0] in out  # what it is, from the module's first line


def test_runner_report_without_a_store_says_where_it_looked_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        report.main(["toy", "--uri", "sqlite:///nothere.db"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--uri sqlite:///nothere.db: no MLflow store at {tmp_path.resolve() / 'nothere.db'}" in err
    assert not (tmp_path / "nothere.db").exists()  # looking did not create one


def test_runner_report_over_a_store_reports_the_newest_sweep_or_the_run_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.tracking import store as store_module

    (tmp_path / "mlflow.db").touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(render, "plot_curves", lambda cells, path, title, curves: path.write_bytes(b"png"))
    stores: list[FakeStore] = []

    def tracker(uri: str) -> FakeStore:
        assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
        stores.append(FakeStore({"experiment": "toy", "sweep_keys": ["init", "seed"]}, children()))
        return stores[-1]

    monkeypatch.setattr(store_module, "Tracker", tracker)
    report.main(["toy", "--format", "md"])  # an experiment: its newest sweep, p1
    assert (tmp_path / "report.md").read_text() == stores[0].texts["report.md"]
    assert stores[0].run_id == "p1" and "toy (4 jobs, 2 cells" in capsys.readouterr().out
    report.main(["p1"])  # a parent run id
    assert stores[1].tags["runner.jobs"] == "4"
    with pytest.raises(SystemExit) as exit_info:
        report.main(["nothing"])
    assert exit_info.value.code == 2
    assert (
        "nothing: neither an experiment with a sweep nor a run id in "
        f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}" in " ".join(capsys.readouterr().err.split())
    )


def test_runner_report_prints_a_store_error_and_exits_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.errors import TrackingError
    from runner.tracking import store as store_module

    class Unreachable(TrackingError):
        exit_code = 3

    def tracker(uri: str) -> FakeStore:
        raise Unreachable("MLflow store locked: retried 3 times")

    (tmp_path / "mlflow.db").touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(store_module, "Tracker", tracker)
    with pytest.raises(SystemExit) as exit_info:
        report.main(["toy"])
    assert exit_info.value.code == 3
    assert "runner: error: MLflow store locked: retried 3 times" in capsys.readouterr().err
