"""A claim's budget curve: how its Δ between rows moved over the iterations of the very runs it was judged on.

Would more iterations have changed the verdict? For a claim that compares rows (`increasing`, `decreasing`,
`equivalent`), Δ = mean(b) − mean(a) over the seeds at every epoch, with its 95 % Welch interval, from the
per-epoch metric each run logged: `val_top1_error` where the runs held out a validation split, else
`train_error` (the test set is read once, at the end). The last point is the verdict's own Δ on the test set.
Two rows: b − a as the verdict states it; an ordering over several rows: the last row − the first; a `trend`
ordering: the slope of the metric on the row's position (as the verdict tests it) with its 95 % interval.
A `reaches_first` claim (time to a threshold): each row's median curve of its metric, with the threshold.
Other claims (one-row checks, several checks) have none.

Pure over runner.analysis.verdicts' cells: runner/analysis/results.py picks the claims and the file names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from runner.analysis import render
from runner.analysis.verdicts import LEVEL, Cell, Check, Expected, learned_only, welch_interval

# The per-epoch metric of a Δ curve: the first of these the runs logged (val: the small presets hold out images).
EPOCH_METRICS = ("val_top1_error", "train_error")
COMPARED = ("increasing", "decreasing", "equivalent")  # the checks whose Δ between rows a curve can follow


@dataclass(frozen=True)
class Point:
    step: int
    delta: float
    lo: float | None  # the LEVEL interval; None where a row has fewer than 2 seeds
    hi: float | None
    n: tuple[int, ...]  # seeds per row


@dataclass(frozen=True)
class Comparison:
    """The claim's Δ: mean(rows[-1]) − mean(rows[0]), or the slope over all rows (trend)."""

    check: Check
    rows: tuple[str, ...]
    trend: bool
    paper: float | None  # the paper's Δ (or slope) from its numbers, where it gives them

    @property
    def what(self) -> str:
        if self.trend:
            return f"slope per row, {self.rows[0]} → {self.rows[-1]}"
        return f"{self.rows[-1]} − {self.rows[0]}"


@dataclass(frozen=True)
class DeltaCurve:
    comparison: Comparison
    metric: str  # the per-epoch metric (EPOCH_METRICS)
    points: list[Point]
    final: Point | None  # the claim's own metric at the end of the runs (the test set): the verdict's Δ


@dataclass(frozen=True)
class ThresholdCurve:
    metric: str
    below: float
    medians: dict[str, tuple[list[int], list[float]]]  # row → steps, the median over its finished seeds
    seeds: dict[str, int]  # row → its finished seeds


def comparison(checks: Sequence[Check], ex: Expected) -> Comparison | None:
    """The one comparison of rows the claim makes; None for any other shape of claim."""
    if len(checks) != 1 or checks[0].check not in COMPARED:
        return None
    check = checks[0]
    if check.trend:
        numbers = [ex.paper_number(check, r) for r in check.rows]
        paper = None if None in numbers else float(stats.linregress(range(len(numbers)), numbers).slope)
        return Comparison(check, check.rows, True, paper)
    # the verdict's orientation: orderings mean(later) − mean(earlier), `equivalent` first − second
    a, b = (check.rows[1], check.rows[0]) if check.check == "equivalent" else (check.rows[0], check.rows[-1])
    pa, pb = ex.paper_number(check, a), ex.paper_number(check, b)
    return Comparison(check, (a, b), False, None if pa is None or pb is None else pb - pa)


def delta(per_row: Sequence[Sequence[float]], trend: bool) -> tuple[float, float | None, float | None]:
    """Δ = mean(last row) − mean(first row) with its LEVEL Welch interval; trend: the slope on the row's
    position with its LEVEL t-interval (n − 2 degrees of freedom). No interval where a row has one seed."""
    if trend:
        x = np.concatenate([[i] * len(v) for i, v in enumerate(per_row)]).astype(float)
        fit = stats.linregress(x, np.concatenate(per_row).astype(float))
        if min(map(len, per_row)) < 2:
            return float(fit.slope), None, None
        half = float(stats.t.ppf((1 + LEVEL) / 2, len(x) - 2)) * float(fit.stderr)
        return float(fit.slope), float(fit.slope) - half, float(fit.slope) + half
    a, b = per_row[0], per_row[-1]
    d = float(np.mean(b) - np.mean(a))
    if min(len(a), len(b)) < 2:
        return d, None, None
    lo, hi = welch_interval(b, a)
    return d, lo, hi


def counted(cells: Mapping[str, Cell], gate: str) -> dict[str, Cell]:
    """The seeds the verdict's statistics count: seeds at chance left out, except where the learned gate
    stopped the claim (its line counts every seed)."""
    return dict(cells) if gate == "learned" else {r: learned_only(c) for r, c in cells.items()}


def epoch_metric(cells: Mapping[str, Cell]) -> str:
    runs = [r for c in cells.values() for r in c.runs]
    return next((m for m in EPOCH_METRICS if any(r.history.get(m) for r in runs)), EPOCH_METRICS[-1])


def _point(step: int, per_row: Sequence[Sequence[float]], trend: bool) -> Point:
    return Point(step, *delta(per_row, trend), tuple(len(v) for v in per_row))


def delta_curve(
    checks: Sequence[Check], ex: Expected, cells: Mapping[str, Cell], gate: str = ""
) -> DeltaCurve | None:
    """The claim's Δ at every step where each of its rows logged the per-epoch metric, and at the end."""
    comp = comparison(checks, ex)
    if comp is None or any(r not in cells for r in comp.rows):
        return None
    kept = counted({r: cells[r] for r in comp.rows}, gate)
    metric = epoch_metric(kept)
    by_row = [render.values_by_step(kept[r].finished, metric) for r in comp.rows]
    steps = sorted(set.intersection(*(set(row) for row in by_row)))
    points = [_point(s, [row[s] for row in by_row], comp.trend) for s in steps]
    finals = [kept[r].values(comp.check.metric) for r in comp.rows]
    last = max((r.iterations for c in kept.values() for r in c.finished), default=0)
    final = _point(last, finals, comp.trend) if all(finals) else None
    return DeltaCurve(comp, metric, points, final)


def threshold_curve(checks: Sequence[Check], cells: Mapping[str, Cell]) -> ThresholdCurve | None:
    """Each row's median curve of a `reaches_first` claim's metric, at iteration resolution where logged
    (the curve the verdict reads the first crossing from)."""
    if len(checks) != 1 or checks[0].check != "reaches_first" or any(r not in cells for r in checks[0].rows):
        return None
    check = checks[0]
    fine = f"{check.metric}_interval"
    runs = [r for row in check.rows for r in cells[row].finished]
    metric = fine if any(r.history.get(fine) for r in runs) else check.metric
    medians = {}
    for row in check.rows:
        by_step = render.values_by_step(cells[row].finished, metric)
        medians[row] = (sorted(by_step), [float(np.median(by_step[s])) for s in sorted(by_step)])
    return ThresholdCurve(metric, check.below, medians, {r: len(cells[r].finished) for r in check.rows})


def plot_delta(curve: DeltaCurve, path: Path, title: str, dpi: int) -> None:
    comp = curve.comparison
    fig, axes = render.figure(1)
    ax = axes[0][0]
    steps = [p.step for p in curve.points]
    (line,) = ax.plot(
        steps, [p.delta for p in curve.points], marker="o", label=f"{curve.metric}, mean over seeds"
    )
    banded = [p for p in curve.points if p.lo is not None and p.hi is not None]
    if banded:
        lo, hi = [p.lo for p in banded], [p.hi for p in banded]
        ax.fill_between(
            [p.step for p in banded], lo, hi, color=line.get_color(), alpha=0.2, label="95 % interval"
        )
    if curve.final is not None:
        f = curve.final
        err = None if f.lo is None or f.hi is None else [[f.delta - f.lo], [f.hi - f.delta]]
        label = f"{comp.check.metric} at the end: the verdict's {f.delta:+.2f}"
        ax.errorbar([f.step], [f.delta], yerr=err, fmt="D", color="C3", capsize=4, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    if comp.paper is not None:
        ax.axhline(comp.paper, color="C2", linestyle="--", label=f"the paper's {comp.paper:+.2f}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"Δ ({comp.what}), %-points" + (" per row" if comp.trend else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    how = "slope of the metric on the row's position" if comp.trend else "mean(last row) − mean(first row)"
    ax.set_title(f"{title}\nΔ = {how}, 95 % {'t' if comp.trend else 'Welch'} interval", fontsize=9)
    render.save(fig, path, dpi)


def plot_threshold(curve: ThresholdCurve, path: Path, title: str, dpi: int) -> None:
    fig, axes = render.figure(1)
    ax = axes[0][0]
    for row, (steps, medians) in curve.medians.items():
        ax.plot(steps, medians, label=f"{row}, median over {curve.seeds[row]} seeds")
    ax.axhline(curve.below, color="black", linestyle="--", linewidth=0.8, label=f"threshold {curve.below:g}")
    ax.set_xlabel("iteration")
    name = curve.metric.removesuffix("_interval")  # the same metric, logged every few iterations
    ax.set_ylabel(name + (" (%)" if "error" in name else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{title}\nwhich row gets below the threshold first", fontsize=9)
    render.save(fig, path, dpi)


def draw(
    checks: Sequence[Check],
    ex: Expected,
    cells: Mapping[str, Cell],
    gate: str,
    path: Path,
    title: str,
    dpi: int,
) -> bool:
    """The claim's budget curve into `path`; False (nothing written) when the claim has none."""
    curve = delta_curve(checks, ex, cells, gate)
    if curve is not None and (curve.points or curve.final):
        plot_delta(curve, path, title, dpi)
        return True
    threshold = threshold_curve(checks, cells)
    if threshold is not None and any(steps for steps, _ in threshold.medians.values()):
        plot_threshold(threshold, path, title, dpi)
        return True
    return False
