"""The sweep report drawn: a row per cell (its seeds' mean ± std, min–max, best, lost seeds, the paper's
number and our difference), as markdown, CSV and JSON, and curves.png (mean and min–max band per cell).

Pure drawing over runner.analysis.verdicts' cells and verdicts: no MLflow here (runner/analysis/report.py reads and logs).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runner.analysis.verdicts import Cell, Expected, Run, Verdict, protocol_differences

CURVES = ("train_error", "test_top1_error", "train_loss")  # the papers' figures: error vs iteration
# The training curves at iteration resolution (every trainer.log_every steps), drawn where the runs logged them.
INTERVAL = {"train_error": "train_error_interval", "train_loss": "train_loss_interval"}
METRICS_WITHOUT_PRESET = ("test_top1_error", "test_top5_error")  # the table of a sweep with no expected block


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def half_interval(std: float, n: int, level: float) -> float | None:
    """Half the two-sided t-interval of a mean of n seeds at this level; None for one seed."""
    from scipy import stats

    return float(stats.t.ppf((1 + level) / 2, n - 1)) * std / n**0.5 if n > 1 else None


def seeds_cell(cell: Cell) -> str:
    """ "3", or "2/3 (1 diverged)": seeds that did not finish are counted, never dropped."""
    lost = cell.unfinished()
    if not lost:
        return str(len(cell.runs))
    return f"{len(cell.finished)}/{len(cell.runs)} (" + ", ".join(f"{n} {s}" for s, n in lost.items()) + ")"


def _paper_columns(cell: Cell, ex: Expected | None, metrics: Sequence[str]) -> list[str]:
    """The paper's numbers for this row and our mean minus them (or why they are not comparable)."""
    paper = ex.numbers.get(cell.label) if ex else None
    if not paper:
        return ["—", "—"]
    shown = " / ".join(f"{x:g}" for x in paper)
    if ex.scale == "smoke":
        return [shown, "smoke"]
    diffs = protocol_differences(ex.protocol, cell.runs)
    if diffs:
        return [shown, "not comparable (" + ", ".join(diffs) + ")"]
    deltas = []
    for metric, theirs in zip(metrics, paper, strict=False):
        s = cell.stats(metric)
        deltas.append("—" if s is None else f"{s.mean - theirs:+.2f}")
    return [shown, " / ".join(deltas)]


def table(
    cells: Sequence[Cell], keys: Sequence[str], ex: Expected | None
) -> tuple[list[str], list[list[str]]]:
    """One row per cell: the swept values (`keys`), seeds, per metric mean, ±std, min–max and best,
    the mean wall time, the paper's number and Δ (our mean − the paper's)."""
    metrics = ex.metrics if ex else METRICS_WITHOUT_PRESET
    header = [*keys, "seeds"]
    for metric in metrics:
        header += [metric, "±", "min–max", "best"]
    header += ["wall s", "paper", "Δ vs paper"]
    rows = []
    for cell in cells:
        row = [cell.runs[0].params.get(k, "?") for k in keys] + [seeds_cell(cell)]  # "?": key not logged
        for metric in metrics:
            s = cell.stats(metric)
            row += (
                ["—"] * 4
                if s is None
                else [_num(s.mean), _num(s.std), f"{s.min:.2f}–{s.max:.2f}", _num(s.min)]
            )
        walls = [r.wall_s for r in cell.runs if r.wall_s is not None]
        row.append(f"{np.mean(walls):.0f}" if walls else "—")
        rows.append(row + _paper_columns(cell, ex, metrics))
    return header, rows


def md_row(cells: Sequence[Any]) -> str:
    """A markdown table row; a "|" or a line break inside a cell would break the table."""
    return "| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |"


def markdown(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], verdicts: Sequence[Verdict], paper: str
) -> str:
    out = [f"# {title}", ""] + ([f"Paper: {paper}", ""] if paper else [])
    out += [md_row(header), md_row(["---"] * len(header)), *(md_row(r) for r in rows)]
    out += ["", "Mean ± sample std over the finished seeds of each cell; best = the lowest error.", ""]
    if verdicts:
        out += ["## Verdicts", ""]
        out += [f"- **{v.text}**: {v.headline} — {v.detail}" for v in verdicts]
    return "\n".join(out) + "\n"


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]], cells: Sequence[Cell]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*header, "cell", "run_ids"])
    for row, cell in zip(rows, cells, strict=True):
        writer.writerow([*row, cell.cell_id, " ".join(r.run_id for r in cell.runs)])
    return buffer.getvalue()


def json_text(title: str, ex: Expected | None, cells: Sequence[Cell], verdicts: Sequence[Verdict]) -> str:
    metrics = ex.metrics if ex else METRICS_WITHOUT_PRESET

    def stats(cell: Cell, metric: str) -> dict[str, Any] | None:
        s = cell.stats(metric)
        return None if s is None else {**s.__dict__, "best": s.min}

    out = {
        "title": title,
        "paper": ex.paper if ex else None,
        "cells": [
            {
                "label": c.label,
                "cell": c.cell_id,
                "seeds": {"finished": len(c.finished), **c.unfinished()},
                "stats": {m: stats(c, m) for m in metrics},
                "runs": [
                    {"run_id": r.run_id, "status": r.status, "seed": r.params.get("seed")} for r in c.runs
                ],
            }
            for c in cells
        ],
        "verdicts": [
            {"claim": v.claim, "text": v.text, "verdict": v.kind, "headline": v.headline, "p": v.p}
            | {"p_reverse": v.p_reverse, "p_holm": v.p_holm, "p_reverse_holm": v.p_reverse_holm}
            | {"after_holm": v.after_holm, "gate": v.gate, "detail": v.detail, "scale": v.scale}
            | {"effect": None if v.effect is None else {**v.effect.__dict__, "text": str(v.effect)}}
            for v in verdicts
        ],
    }
    return json.dumps(out, indent=2)


def verdict_line(v: Verdict) -> str:
    """A verdict for the console (rich markup)."""
    return f"[bold]{v.text}[/]: {v.headline} — {v.detail}"


def values_by_step(runs: Sequence[Run], metric: str) -> dict[int, list[float]]:
    """Step → the finite values of `metric` the runs logged at that step (one per run that did)."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for step, value in run.history.get(metric, ()):
            if np.isfinite(value):
                by_step.setdefault(step, []).append(value)
    return by_step


def _band(cell: Cell, metric: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, mean, min and max over the seeds that logged each step (finite values only)."""
    by_step = values_by_step(cell.runs, metric)
    steps = sorted(by_step)
    return (
        steps,
        [float(np.mean(by_step[s])) for s in steps],
        [min(by_step[s]) for s in steps],
        [max(by_step[s]) for s in steps],
    )


def plot_curves(
    cells: Sequence[Cell], path: Path, title: str, dpi: int = 100, curves: Sequence[str] = CURVES
) -> None:
    """Each curve (by default training error, test error and training loss) vs iteration: per cell the mean
    over its seeds, and a band from the lowest to the highest seed (the papers' figures, with the seed spread)."""
    fig, axes = figure(len(curves))
    for ax, curve in zip(axes[0], curves, strict=True):
        fine = INTERVAL.get(curve)
        metric = fine if fine and any(_band(c, fine)[0] for c in cells) else curve
        for cell in cells:
            steps, mean, lo, hi = _band(cell, metric)
            if not steps:
                continue
            (line,) = ax.plot(steps, mean, marker=".", label=f"{cell.label} ({seeds_cell(cell)} seeds)")
            if len(cell.runs) > 1 and len(steps) > 1:
                ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            elif len(cell.runs) > 1:  # one point per seed (one epoch): the band as an error bar
                ax.vlines(steps, lo, hi, color=line.get_color(), alpha=0.5)
        ax.set_xlabel("iteration")
        ax.set_ylabel(metric + (" (%)" if "error" in metric else ""))
        ax.grid(alpha=0.3)
    if any(_band(c, curves[0])[0] for c in cells):
        axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title} — mean over seeds, band: min–max")
    save(fig, path, dpi)


def figure(columns: int) -> tuple[Any, Any]:
    """A figure with one row of `columns` axes (axes[0][i]), drawn off-screen (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(5 * columns, 4), squeeze=False)


def save(fig: Any, path: Path, dpi: int) -> None:
    """Lay out, write and close the figure (docs/results/*.png use a low dpi: they are committed)."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
