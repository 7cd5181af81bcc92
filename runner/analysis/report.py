"""The sweep report: a row per cell (its seeds' mean ± std) beside the paper's numbers, and a verdict per claim.

Everything is read back from MLflow through runner/tracking/store.py (with its retries): the children of a
sweep's parent run, and the preset.json that runner/run/sweep.py stored on the parent (the preset's
`expected:` block and the swept keys). So the report at the end of a sweep and the one made later by
`runner-report <experiment or parent run id>` are the same. runner/analysis/verdicts.py judges, runner/analysis/render.py
draws; logged on the parent: report.md, report.csv, report.json, curves.png, tags `runner.verdict.<claim id>`
and `runner.gate.<claim id>` per claim, and as metrics (MLflow has no mean ± std across runs) each cell's
`cell.<row>.<metric>.{mean,std,lo,hi,n_learned,n_run}` and each claim's
`claim.<id>.{delta,lo,hi,paper_delta,p,p_reverse,p_holm}`.

    runner-report init_depth_small                  # the newest sweep of that experiment, in ./mlflow.db
    runner-report <parent run id> --format json     # also writes report.json here
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.analysis import render
from runner.analysis.verdicts import (
    LEVEL,
    Cell,
    Expected,
    Reference,
    Run,
    Verdict,
    group_cells,
    judge,
    learned_only,
    left_chance,
    with_holm,
)
from runner.config import CONF_DIR
from runner.errors import RunnerError

PRESET_ARTIFACT = "preset.json"
VERDICT_TAG = "runner.verdict."
GATE_TAG = "runner.gate."
FORMATS = ("md", "csv", "json")


@dataclass
class Report:
    title: str
    expected: Expected | None
    keys: list[str]  # the swept keys shown as columns (the seed is what a cell averages over)
    cells: list[Cell]
    verdicts: list[Verdict]

    def files(self) -> dict[str, str]:
        """report.md / report.csv / report.json, by format."""
        header, rows = render.table(self.cells, self.keys, self.expected)
        paper = self.expected.paper if self.expected else ""
        return {
            "md": render.markdown(self.title, header, rows, self.verdicts, paper),
            "csv": render.csv_text(header, rows, self.cells),
            "json": render.json_text(self.title, self.expected, self.cells, self.verdicts),
        }


def _history_metrics(expected: Expected | None) -> list[str]:
    """The curves, and every metric a claim reads over iterations (reaches_first)."""
    named = [c.metric for claim in (expected.claims if expected else ()) for c in claim.checks]
    curves = (expected.curves if expected else ()) or render.CURVES
    return list(dict.fromkeys([*curves, *render.INTERVAL.values(), *named]))


def to_run(tracker: Any, mlflow_run: Any, history_metrics: Sequence[str]) -> Run:
    info, params, tags = mlflow_run.info, mlflow_run.data.params, mlflow_run.data.tags
    wall = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None
    # Runs from before the cell tag: their params without the seed stand in for it.
    cell = tags.get("runner.cell") or json.dumps(
        {k: v for k, v in params.items() if k != "seed"}, sort_keys=True
    )
    return Run(
        run_id=info.run_id,
        cell=cell,
        status=tags.get("runner.status") or info.status.lower(),
        params=dict(params),
        metrics=dict(mlflow_run.data.metrics),
        history={m: tracker.metric_history(info.run_id, m) for m in history_metrics},
        wall_s=wall,
    )


def full_preset(experiment: str | None) -> str | None:
    """The full preset a sweep's preset stands for (init_depth_small → init_depth; a full preset: itself)."""
    base = re.sub(r"_(small|smoke)$", "", experiment or "")
    return base if base and (CONF_DIR / "experiment" / f"{base}.yaml").exists() else None


def _compose(overrides: list[str]) -> Any:
    """The config `runner <overrides>` composes; inside a Hydra run (the sweep's callback) through its own Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="runner"):
        return compose("config", overrides=overrides)


def reference(preset: str | None) -> Reference | None:
    """The full preset's flattened config per row, composed once per row: the verdicts name every difference
    from it (architecture, width, lr, init, budget, data), not only the paper's protocol keys."""
    if preset is None:
        return None
    from omegaconf import OmegaConf

    from runner.config.schema import flatten

    @functools.cache
    def config(row: tuple[tuple[str, str], ...]) -> dict[str, Any] | None:
        overrides = [f"+experiment={preset}", *(f"{k}={v}" for k, v in row if v != "?")]
        try:
            resolved = OmegaConf.to_container(_compose(overrides), resolve=True)
        except Exception as e:  # say so: the verdict then names the paper's protocol keys only
            print(f"runner-report: {' '.join(overrides)}: {type(e).__name__}: {e}", file=sys.stderr)
            return None
        return flatten({k: v for k, v in resolved.items() if k not in ("expected", "hydra")})

    return config


def parse_preset(text: str | None) -> tuple[Expected | None, list[str]]:
    """preset.json → the parsed expected block (None for a sweep without one) and the swept keys."""
    preset = json.loads(text) if text else {}
    block = preset.get("expected")  # absent for a sweep started without a preset
    return (Expected.parse(block) if block else None), list(preset.get("sweep_keys") or [])


def build(tracker: Any, parent_id: str) -> Report:
    """Read the sweep under `parent_id` and judge it."""
    parent = tracker.get_run(parent_id)
    text = tracker.read_artifact_text(parent_id, PRESET_ARTIFACT)
    expected, sweep_keys = parse_preset(text)
    history = _history_metrics(expected)
    runs = [to_run(tracker, r, history) for r in tracker.child_runs(parent)]
    key = list(expected.key) if expected else [k for k in sweep_keys if k != "seed"]
    cells = group_cells(runs, key)
    full = reference(full_preset(json.loads(text).get("experiment") if text else None))
    verdicts = with_holm(judge(expected, cells, full)) if expected else []
    name = parent.info.run_name or "sweep"
    title = f"{name} ({len(runs)} jobs, {len(cells)} cells, parent run {parent_id})"
    return Report(title, expected, [k for k in sweep_keys if k != "seed"], cells, verdicts)


def show(report: Report) -> None:
    from runner import console

    header, rows = render.table(report.cells, report.keys, report.expected)
    console.table(report.title, header, rows, caption=report.expected.paper if report.expected else "")
    for v in report.verdicts:
        console.info(render.verdict_line(v))


def log(tracker: Any, parent_id: str, report: Report) -> None:
    """report.md/csv/json, curves.png and the verdict tags, on the parent run."""
    tracker.run_id = parent_id
    for fmt, text in report.files().items():
        tracker.log_text(text, f"report.{fmt}")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "curves.png"
        curves = (report.expected.curves if report.expected else ()) or render.CURVES
        render.plot_curves(report.cells, png, report.title.split(" (")[0], curves=curves)
        tracker.log_file(png)
    tags: dict[str, str] = {VERDICT_TAG + _key(v.claim): v.kind for v in report.verdicts}
    tags |= {GATE_TAG + _key(v.claim): v.gate for v in report.verdicts if v.gate}
    tags["runner.jobs"] = str(sum(len(c.runs) for c in report.cells))
    tracker.set_tags(tags)
    metrics = {**cell_metrics(report), **claim_metrics(report.verdicts)}
    if metrics:
        tracker.log_metrics(metrics, 0)


def _key(name: str) -> str:
    """A name as an MLflow key allows it (letters, digits, _ - . / and spaces)."""
    return re.sub(r"[^\w./ -]", "_", name)


def cell_metrics(report: Report) -> dict[str, float]:
    """Per cell and metric: mean, std and the LEVEL t-interval of the mean over the learned seeds, and how
    many seeds learned (left chance) of those run."""
    out: dict[str, float] = {}
    metrics = report.expected.metrics if report.expected else render.METRICS_WITHOUT_PRESET
    for cell in report.cells:
        kept = learned_only(cell)
        learned = sum(left_chance(r) is not False for r in cell.finished)
        for metric in metrics:
            s = kept.stats(metric)
            if s is None:
                continue
            name = f"cell.{_key(cell.label)}.{metric}"
            half = render.half_interval(s.std, s.n, LEVEL)
            out |= {f"{name}.mean": s.mean, f"{name}.std": s.std, f"{name}.n_learned": float(learned)}
            out |= {f"{name}.n_run": float(len(cell.runs))}
            if half is not None:
                out |= {f"{name}.lo": s.mean - half, f"{name}.hi": s.mean + half}
    return out


def claim_metrics(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Per claim: Δ, its interval, the paper's Δ, both one-sided p values and Holm's (where measured)."""
    out: dict[str, float] = {}
    for v in verdicts:
        fx = v.effect
        values = {"p": v.p, "p_reverse": v.p_reverse, "p_holm": v.p_holm}
        if fx is not None:
            values |= {"delta": fx.delta, "lo": fx.lo, "hi": fx.hi, "paper_delta": fx.paper}
        out |= {
            f"claim.{_key(v.claim)}.{k}": float(x)
            for k, x in values.items()
            if x is not None and math.isfinite(x)
        }
    return out


def report(tracker: Any, parent_id: str) -> list[Verdict]:
    """Read the sweep under `parent_id`, print the table and verdicts, log them on the parent."""
    result = build(tracker, parent_id)
    show(result)
    log(tracker, parent_id, result)
    return result.verdicts


def sweep_report(tracker: Any, config: Mapping[str, Any]) -> list[Verdict]:
    """Called by runner.sweep at the end of a multirun, with the parent's tracker."""
    return report(tracker, tracker.run_id)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="runner-report", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="an MLflow experiment name (its newest sweep) or a parent run id")
    parser.add_argument("--uri", default="sqlite:///mlflow.db", help="tracking URI (default: ./mlflow.db)")
    parser.add_argument("--format", choices=FORMATS, help="also write report.<format> in this directory")
    args = parser.parse_args(argv)

    from runner.console import error
    from runner.tracking.store import Tracker, resolve_uri, store_exists

    uri = resolve_uri(args.uri, Path.cwd())
    if not store_exists(uri):
        error(f"--uri {args.uri}: no MLflow store at {uri[len('sqlite:///') :]}")
        sys.exit(2)
    try:
        tracker = Tracker(uri)
        parent_id = tracker.newest_sweep(args.target) or tracker.run_id_or_none(args.target)
        if parent_id is None:
            error(f"{args.target}: neither an experiment with a sweep nor a run id in {uri}")
            sys.exit(2)
        result = build(tracker, parent_id)
        show(result)
        log(tracker, parent_id, result)
        if args.format:
            Path(f"report.{args.format}").write_text(result.files()[args.format])
    except RunnerError as e:
        error(str(e))
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
