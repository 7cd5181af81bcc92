"""Verdicts on a sweep: cells of seeds, their statistics, and one verdict per claim of a preset.

Pure logic over plain data (no MLflow, no torch): runner/analysis/report.py reads the runs, this module judges them,
runner/analysis/render.py draws them. How each verdict is decided (README, "Paper presets"):

- A *cell* is a config without its seed (the `runner.cell` tag); a *row* of a claim is named by the cell's
  values of `expected.key`, joined by "/". A cell's statistics count its finished seeds; failed, diverged
  or killed seeds are counted beside them, never dropped silently.
- Orderings (`increasing`, `decreasing`): every step (each adjacent pair of rows, or the claim's `pairs`)
  by a one-sided Welch t-test at level `alpha`. All steps must be significant: an intersection-union
  test, valid at level `alpha` without a multiplicity correction (Berger 1982).
- "No difference" (`equivalent`): two one-sided Welch tests (TOST, Schuirmann 1987) within ±`tolerance`.
- Paper numbers (`matches`): the (1 − 2·alpha) t-interval of our mean inside paper ± `tolerance` (the
  interval form of TOST); `best_of_n`: our best of the paper's n seeds against its best-of-n number.
- `converges` / `stalls`: a one-sample t-test of every seed's training loss against a level set by chance,
  ln(number of classes) of the data set that ran; `reaches_first`: Welch on the iteration where each seed
  first gets below the threshold.
- Comparisons among rows that all learned nothing (every seed's final training loss within CHANCE_BAND of
  ln K) read "not measured: no row learned": an ordering of chance-level nets is noise, not evidence.
- A row with one finished seed reads "single run: direction only"; a run whose protocol differs from the
  preset's `expected.protocol` is never compared with the paper's numbers; a smoke preset never reproduces.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy import stats

from runner.config.datasets import num_classes

ALPHA = 0.05  # the level of every test unless a claim states its own `alpha`

REPRODUCED = "reproduced"
REDUCED = "reproduced at reduced scale"
INCONCLUSIVE = "inconclusive"
NOT_REPRODUCED = "not reproduced"
SINGLE = "single run: direction only"
NOT_COMPARABLE = "different protocol: not comparable"
SMOKE = "smoke: pipeline only"
NOT_RUN = "not run"
NOT_LEARNED = "not measured: no row learned"
AMBIGUOUS = "ambiguous rows"
# How step outcomes combine into a claim's: the most severe wins.
SEVERITY = (REPRODUCED, INCONCLUSIVE, SINGLE, NOT_REPRODUCED)

# check → the keys it requires, and the ones it may take (besides `check` and `rows`)
CHECK_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "increasing": ({"metric"}, {"pairs"}),
    "decreasing": ({"metric"}, {"pairs"}),
    "equivalent": ({"metric", "tolerance"}, set()),
    "matches": ({"metric", "tolerance"}, {"paper"}),
    "best_of_n": ({"metric", "tolerance", "n"}, {"paper"}),
    "converges": ({"below_chance"}, set()),
    "stalls": ({"within"}, set()),
    "reaches_first": ({"metric", "below"}, set()),
}
PAPER_NUMBER_CHECKS = ("matches", "best_of_n")
# Checks that compare rows with each other: meaningless when no row learned anything.
COMPARISONS = ("increasing", "decreasing", "equivalent", "reaches_first")
CHANCE_BAND = 0.05  # a final training loss above ln K − this: the net learned nothing (as `stalls` reads it)


# --- the runs and their cells ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One child run, as the verdicts need it."""

    run_id: str
    cell: str  # the runner.cell tag: the config hash without the seed
    status: str  # finished | diverged | failed | killed | running
    params: Mapping[str, str]
    metrics: Mapping[str, float]  # the latest value of each metric
    history: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)  # (step, value)
    wall_s: float | None = None

    def final(self, metric: str) -> float | None:
        value = self.metrics.get(metric)  # a metric the run never logged (it failed first) is None
        return value if value is not None and math.isfinite(value) else None

    @property
    def iterations(self) -> int:
        return max((step for curve in self.history.values() for step, _ in curve), default=0)


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    std: float  # sample std (ddof 1); 0 for n = 1
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats | None:
        if not values:
            return None
        a = np.asarray(values, dtype=float)
        std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
        return cls(len(a), float(a.mean()), std, float(a.min()), float(a.max()))

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f} ({self.n})"


@dataclass
class Cell:
    label: str  # the values of expected.key, joined by "/"
    cell_id: str
    runs: list[Run]

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.status == "finished"]

    def unfinished(self) -> dict[str, int]:
        """status → count of the seeds that did not finish (shown beside the statistics)."""
        out: dict[str, int] = {}
        for run in self.runs:
            if run.status != "finished":
                out[run.status] = out.get(run.status, 0) + 1
        return out

    def values(self, metric: str) -> list[float]:
        return [v for v in (r.final(metric) for r in self.finished) if v is not None]

    def stats(self, metric: str) -> Stats | None:
        return Stats.of(self.values(metric))


def label_of(params: Mapping[str, str], key: Sequence[str]) -> str:
    return "/".join(params.get(k, "?") for k in key)  # "?": the run did not log that key


def group_cells(runs: Sequence[Run], key: Sequence[str]) -> list[Cell]:
    """Runs → cells (same label and same cell tag), in the order the first seed of each ran."""
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        label = label_of(run.params, key)
        cells.setdefault((label, run.cell), Cell(label, run.cell, [])).runs.append(run)
    return list(cells.values())


def chance_loss(params: Mapping[str, str]) -> float:
    """Cross-entropy of a uniform guess over the classes of the data set that ran: a net that learned nothing."""
    settings = {"num_classes": params.get("dataset.num_classes")}
    return math.log(num_classes(params["dataset.name"], settings))


# --- the preset's expected block ------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    check: str
    rows: tuple[str, ...]
    metric: str = "train_loss"  # converges/stalls judge the training loss (chance is a loss)
    pairs: tuple[tuple[str, str], ...] = ()  # orderings: explicit steps instead of each adjacent pair
    tolerance: float = math.nan  # %-points
    paper: float | None = None  # the paper's number, where `numbers:` does not hold it
    n: int = 0  # best_of_n: the paper's number of runs
    below_chance: float = math.nan  # converges: final loss < below_chance × ln K
    within: float = math.nan  # stalls: loss never below ln K − within
    below: float = math.nan  # reaches_first: the threshold of `metric`

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Check:
        kind = spec.get("check")
        if kind not in CHECK_KEYS:
            raise ValueError(f"unknown check {kind!r}; known: {', '.join(CHECK_KEYS)}")
        required, optional = CHECK_KEYS[kind]
        given = set(spec) - {"check", "rows"}
        if "rows" not in spec or required - given or given - required - optional:
            raise ValueError(
                f"check {kind} takes rows, {', '.join(sorted(required))}"
                + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
                + f"; got {', '.join(sorted(spec))}"
            )
        values = {k: spec[k] for k in given}
        values["pairs"] = tuple(tuple(str(r) for r in p) for p in spec.get("pairs") or ())
        return cls(check=kind, rows=tuple(str(r) for r in spec["rows"]), **values)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    data: str  # any: judged on whatever protocol ran | paper: only on the paper's protocol
    checks: tuple[Check, ...]
    alpha: float = ALPHA
    # Row names may hold "{family}": the claim is judged on the first family whose rows all ran (e.g. the
    # paper's prelu_deep nets, else their CPU-sized plain_deep analogues).
    families: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Claim:
        unknown = set(spec) - {f.name for f in fields(cls)}
        if unknown or spec.get("data") not in ("any", "paper") or not spec.get("checks"):
            raise ValueError(f"claim {spec.get('id')}: needs id, text, data (any|paper), checks; got {spec}")
        return cls(
            id=str(spec["id"]),
            text=str(spec["text"]),
            data=str(spec["data"]),
            checks=tuple(Check.parse(c) for c in spec["checks"]),
            alpha=float(spec.get("alpha", ALPHA)),
            families=tuple(str(f) for f in spec.get("families") or ()),
        )

    def variants(self) -> list[tuple[str, tuple[Check, ...]]]:
        """(family, checks with its rows filled in); one unnamed variant when the claim has no families."""
        if not self.families:
            return [("", self.checks)]
        return [(family, tuple(_fill(c, family) for c in self.checks)) for family in self.families]


def _fill(check: Check, family: str) -> Check:
    rows = tuple(r.format(family=family) for r in check.rows)
    pairs = tuple((a.format(family=family), b.format(family=family)) for a, b in check.pairs)
    return Check(**{**check.__dict__, "rows": rows, "pairs": pairs})


@dataclass(frozen=True)
class Expected:
    paper: str
    scale: str  # full | smoke (a smoke preset only shows that the pipeline runs)
    key: tuple[str, ...]
    metrics: tuple[str, ...]
    numbers: Mapping[str, tuple[float, ...]]  # row → the paper's value per metric
    protocol: Mapping[str, Any]  # flattened config key → the paper's value
    claims: tuple[Claim, ...]

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Expected:
        if spec["scale"] not in ("full", "smoke"):
            raise ValueError(f"expected.scale={spec['scale']}: full or smoke")
        numbers = {
            str(k): tuple(float(x) for x in (v if isinstance(v, list | tuple) else [v]))
            for k, v in (spec["numbers"] or {}).items()
        }
        return cls(
            paper=str(spec["paper"]),
            scale=str(spec["scale"]),
            key=tuple(str(k) for k in spec["key"]),
            metrics=tuple(str(m) for m in spec["metrics"]),
            numbers=numbers,
            # the paper's data set is named once, in expected.dataset; the rest of the fingerprint beside it
            protocol={"dataset.name": spec["dataset"], **(spec["protocol"] or {})},
            claims=tuple(Claim.parse(c) for c in spec["claims"] or ()),
        )

    def paper_number(self, check: Check, row: str) -> float | None:
        if check.paper is not None:
            return float(check.paper)
        values = self.numbers.get(row)
        if values is None or check.metric not in self.metrics:
            return None
        index = self.metrics.index(check.metric)
        return values[index] if index < len(values) else None


# --- the protocol fingerprint ----------------------------------------------------------------------------


def _value(text: str | None) -> Any:
    """A param as MLflow stores it ("0.0625", "[256, 256]", "None", "imagenet") → a Python value."""
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _same(ours: Any, paper: Any) -> bool:
    if isinstance(ours, list | tuple) and isinstance(paper, list | tuple):
        return len(ours) == len(paper) and all(_same(a, b) for a, b in zip(ours, paper, strict=True))
    numbers = (int, float)
    if isinstance(ours, numbers) and isinstance(paper, numbers) and not isinstance(ours, bool):
        return math.isclose(float(ours), float(paper), rel_tol=1e-9)
    return ours == paper


def _describe(key: str, ours: Any, paper: Any) -> str:
    """One difference, short: "fashion_mnist", "width_mult ÷16", "max_steps 160 (paper 64000)"."""
    if key == "dataset.name":
        return str(ours)
    name = key.rsplit(".", 1)[-1]
    numbers = (int, float)
    if "width" in name and isinstance(ours, numbers) and isinstance(paper, numbers) and 0 < ours < paper:
        ratio = paper / ours
        if ratio >= 2 and abs(ratio - round(ratio)) < 1e-6:
            return f"{name} ÷{round(ratio)}"
    return f"{name} {ours} (paper {paper})"


def protocol_differences(protocol: Mapping[str, Any], runs: Sequence[Run]) -> list[str]:
    """What makes these runs another experiment than the paper's, one short phrase per difference."""
    out: list[str] = []
    for key, paper in protocol.items():
        for run in runs:
            ours = _value(run.params.get(key))  # a key the run does not have reads None
            phrase = _describe(key, ours, paper)
            if not _same(ours, paper) and phrase not in out:
                out.append(phrase)
    return out


# --- the statistics -------------------------------------------------------------------------------------


def welch_p(a: Sequence[float], b: Sequence[float], greater: bool) -> float:
    """One-sided p of Welch's t-test, H1: mean(a) > mean(b) (greater) or mean(a) < mean(b).

    Both rows identical over their seeds (zero variance): t is ±∞ and we take its limit, p = 0 when the
    means differ the paper's way and 1 otherwise: every seed agrees exactly, the strongest evidence n seeds
    can give. (A repeated seed is one config hash, so a cell's runs are distinct seeds.)"""
    if np.var(a) == 0 and np.var(b) == 0:
        diff = float(np.mean(a) - np.mean(b))
        return 0.0 if (diff > 0 if greater else diff < 0) else 1.0
    alternative = "greater" if greater else "less"
    return float(stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue)


def one_sample_p(a: Sequence[float], level: float, greater: bool) -> float:
    """One-sided p of a one-sample t-test, H1: mean(a) > level (greater) or < level; zero variance as above."""
    if np.var(a) == 0:
        diff = float(np.mean(a)) - level
        return 0.0 if (diff > 0 if greater else diff < 0) else 1.0
    alternative = "greater" if greater else "less"
    return float(stats.ttest_1samp(a, level, alternative=alternative).pvalue)


def t_interval(values: Sequence[float], alpha: float) -> tuple[float, float]:
    """The two-sided (1 − 2·alpha) t-interval of the mean: inside paper ± tolerance ⇔ TOST at alpha."""
    s = Stats.of(values)
    assert s is not None and s.n > 1
    half = float(stats.t.ppf(1 - alpha, s.n - 1)) * s.std / math.sqrt(s.n)
    return s.mean - half, s.mean + half


@dataclass(frozen=True)
class Outcome:
    kind: str  # one of SEVERITY
    holds: bool  # the paper's direction (or threshold) holds on the means
    p: float | None  # None where no test applies (single run, a best-of-n)
    detail: str


def decide(n_min: int, holds: bool, p: float | None, alpha: float, detail: str) -> Outcome:
    """The common rule: one seed → direction only; wrong direction → not reproduced; else by p."""
    if n_min < 2:
        return Outcome(SINGLE, holds, None, detail)
    if not holds:
        return Outcome(NOT_REPRODUCED, holds, p, detail)
    assert p is not None
    return Outcome(REPRODUCED if p < alpha else INCONCLUSIVE, holds, p, detail)


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    """Every step must hold: the most severe outcome wins; p is the largest p of the tested steps."""
    kind = max((o.kind for o in outcomes), key=SEVERITY.index)
    ps = [o.p for o in outcomes if o.p is not None]
    return Outcome(
        kind, all(o.holds for o in outcomes), max(ps) if ps else None, "; ".join(o.detail for o in outcomes)
    )


def fmt_p(p: float | None) -> str:
    return "" if p is None else (f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001")


# --- the checks: each gets its rows' cells (row name → cell) and returns an Outcome ------------------------


def _row(cell: Cell, metric: str) -> str:
    s = cell.stats(metric)
    lost = "".join(f", {n} {status}" for status, n in cell.unfinished().items())
    return f"{cell.label} {'—' if s is None else s}{lost}"


def _step(lo: Cell, hi: Cell, metric: str, alpha: float) -> Outcome:
    """One step of an ordering: `hi`'s metric is higher than `lo`'s."""
    a, b = hi.values(metric), lo.values(metric)
    holds = bool(np.mean(a) > np.mean(b))
    n_min = min(len(a), len(b))
    p = welch_p(a, b, greater=True) if n_min > 1 else None
    return decide(
        n_min, holds, p, alpha, f"{lo.label} < {hi.label}" + (f" ({fmt_p(p)})" if p is not None else "")
    )


def check_ordering(check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float) -> Outcome:
    """increasing: each row's metric above the one before (decreasing: below), every step tested."""
    pairs = check.pairs or tuple(zip(check.rows, check.rows[1:], strict=False))
    steps = []
    for first, second in pairs:
        lo, hi = (first, second) if check.check == "increasing" else (second, first)
        steps.append(_step(cells[lo], cells[hi], check.metric, alpha))
    out = combine(steps)
    rows = " → ".join(_row(cells[r], check.metric) for r in check.rows)
    return Outcome(out.kind, out.holds, out.p, f"{check.metric}: {rows}; {out.detail}")


def check_equivalent(check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float) -> Outcome:
    """No difference: |mean A − mean B| < tolerance by TOST (two one-sided Welch tests at alpha)."""
    first, second = (cells[r] for r in check.rows)
    a, b, tol = first.values(check.metric), second.values(check.metric), check.tolerance
    diff = float(np.mean(a) - np.mean(b))
    detail = f"{check.metric}: {_row(first, check.metric)} vs {_row(second, check.metric)}, Δ {diff:+.2f} (tolerance ±{tol:g})"
    if min(len(a), len(b)) < 2:
        return Outcome(SINGLE, abs(diff) < tol, None, detail)
    shifted_up, shifted_down = [x + tol for x in a], [x - tol for x in a]
    p_inside = max(welch_p(shifted_up, b, greater=True), welch_p(shifted_down, b, greater=False))
    p_outside = min(welch_p(shifted_down, b, greater=True), welch_p(shifted_up, b, greater=False))
    kind = REPRODUCED if p_inside < alpha else NOT_REPRODUCED if p_outside < alpha else INCONCLUSIVE
    p = p_outside if kind == NOT_REPRODUCED else p_inside
    return Outcome(kind, abs(diff) < tol, p, f"{detail} (TOST {fmt_p(p_inside)})")


def _matches_row(check: Check, cell: Cell, paper: float, alpha: float) -> Outcome:
    values, tol = cell.values(check.metric), check.tolerance
    s = Stats.of(values)
    assert s is not None
    detail = f"{cell.label} {s} vs paper {paper:g}"
    if s.n < 2:
        return Outcome(SINGLE, abs(s.mean - paper) <= tol, None, detail)
    lo, hi = t_interval(values, alpha) if s.std > 0 else (s.mean, s.mean)  # no spread: the mean itself
    inside = paper - tol <= lo and hi <= paper + tol
    outside = hi < paper - tol or lo > paper + tol
    kind = REPRODUCED if inside else NOT_REPRODUCED if outside else INCONCLUSIVE
    return Outcome(
        kind, abs(s.mean - paper) <= tol, None, f"{detail} ({100 - 200 * alpha:g}% CI {lo:.2f}–{hi:.2f})"
    )


def check_matches(check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float) -> Outcome:
    """Each row's mean, by its t-interval, within ±tolerance of the paper's number."""
    outcomes = []
    for row in check.rows:
        paper = ex.paper_number(check, row)
        if paper is None:
            raise ValueError(f"no paper number for {row} ({check.metric}) in expected.numbers")
        outcomes.append(_matches_row(check, cells[row], paper, alpha))
    out = combine(outcomes)
    return Outcome(out.kind, out.holds, None, f"{check.metric} within ±{check.tolerance:g}: {out.detail}")


def check_best_of_n(check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float) -> Outcome:
    """Our best of the paper's n seeds within ±tolerance of its best-of-n number (one number: no p)."""
    outcomes = []
    for row in check.rows:
        cell, paper = cells[row], ex.paper_number(check, row)
        if paper is None:
            raise ValueError(f"no paper number for {row} ({check.metric}) in expected.numbers")
        values = cell.values(check.metric)[: check.n]  # the first n seeds, as the paper's n runs
        best = min(values)
        holds = abs(best - paper) <= check.tolerance
        detail = f"{cell.label} best of {len(values)} {best:.2f} vs paper's best of {check.n} {paper:g}"
        if len(values) < 2:
            kind = SINGLE
        elif len(values) < check.n:  # a best of fewer runs is biased upward: no verdict either way
            kind, detail = INCONCLUSIVE, detail + f" (only {len(values)} of {check.n} seeds)"
        else:
            kind = REPRODUCED if holds else NOT_REPRODUCED
        outcomes.append(Outcome(kind, holds, None, detail))
    out = combine(outcomes)
    return Outcome(out.kind, out.holds, None, f"{check.metric} within ±{check.tolerance:g}: {out.detail}")


def _loss_check(check: Check, cell: Cell, alpha: float) -> Outcome:
    """converges: every seed's final training loss below below_chance × ln K; stalls: its lowest training
    loss never below ln K − within. K: the classes of the data set that ran."""
    stall = check.check == "stalls"
    chance = chance_loss(cell.runs[0].params)
    level = chance - check.within if stall else check.below_chance * chance
    curves = [[v for _, v in r.history.get("train_loss", ())] for r in cell.finished]
    values = [min(c) if stall else c[-1] for c in curves if c]
    s = Stats.of(values)
    if s is None:
        return Outcome(NOT_REPRODUCED, False, None, f"{cell.label}: no training loss logged")
    holds = s.mean > level if stall else s.mean < level
    p = one_sample_p(values, level, greater=stall) if s.n > 1 else None
    what = "lowest" if stall else "final"
    sign = "≥" if stall else "<"
    detail = f"{cell.label} {what} train loss {s} {sign} {level:.2f} (chance ln {round(math.exp(chance))} = {chance:.2f})"
    return decide(s.n, holds, p, alpha, detail + (f" ({fmt_p(p)})" if p is not None else ""))


def check_loss(check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float) -> Outcome:
    """converges / stalls, each row on its own."""
    return combine([_loss_check(check, cells[r], alpha) for r in check.rows])


def _first_below(run: Run, metric: str, below: float) -> tuple[int, bool]:
    """The iteration where the run's metric first falls below `below`; a run that never gets there counts
    as its last iteration + 1 (a lower bound: it makes "the other row was first" harder to show)."""
    step = next((s for s, v in run.history.get(metric, ()) if v < below), None)
    return (step, True) if step is not None else (run.iterations + 1, False)


def check_reaches_first(check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float) -> Outcome:
    """The first row's metric falls below `below` at an earlier iteration than the second row's."""
    first, second = (cells[r] for r in check.rows)  # two rows: a third is a malformed claim
    a = [_first_below(r, check.metric, check.below) for r in first.finished]
    b = [_first_below(r, check.metric, check.below) for r in second.finished]
    sa, sb = [s for s, _ in a], [s for s, _ in b]
    holds = bool(np.mean(sa) < np.mean(sb))
    n_min = min(len(sa), len(sb))
    p = welch_p(sa, sb, greater=False) if n_min > 1 else None

    def when(cell: Cell, reached: list[tuple[int, bool]]) -> str:
        at = ", ".join(str(s) if ok else "never" for s, ok in reached)
        return f"{cell.label} at iteration {at}"

    ratio = f", {np.mean(sb) / np.mean(sa):.1f}× sooner" if holds and all(ok for _, ok in b) else ""
    detail = f"{check.metric} < {check.below:g}: {when(first, a)}; {when(second, b)}{ratio}"
    return decide(n_min, holds, p, alpha, detail + (f" ({fmt_p(p)})" if p is not None else ""))


CHECKS = {
    "increasing": check_ordering,
    "decreasing": check_ordering,
    "equivalent": check_equivalent,
    "matches": check_matches,
    "best_of_n": check_best_of_n,
    "converges": check_loss,
    "stalls": check_loss,
    "reaches_first": check_reaches_first,
}
assert set(CHECKS) == set(CHECK_KEYS)


# --- a verdict per claim --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    claim: str
    text: str
    kind: str  # REPRODUCED, REDUCED, INCONCLUSIVE, NOT_REPRODUCED, SINGLE, NOT_COMPARABLE, SMOKE, NOT_RUN,
    # NOT_LEARNED, AMBIGUOUS
    p: float | None
    detail: str  # what was measured
    scale: str = ""  # the protocol differences, where the runs are not the paper's experiment

    @property
    def headline(self) -> str:
        """ "reproduced (p = 0.003)", "reproduced at reduced scale (fashion_mnist, width 16; p = 0.01)"."""
        scale = self.scale if self.kind in (REDUCED, NOT_COMPARABLE) else ""
        p = fmt_p(self.p) if self.kind in (*SEVERITY, REDUCED) else ""  # a smoke run's p means nothing
        inside = "; ".join(x for x in (scale, p) if x)
        return f"{self.kind} ({inside})" if inside else self.kind


def _final_losses(cell: Cell) -> list[float]:
    return [x for x in (r.final("train_loss") for r in cell.finished) if x is not None]


def learned_nothing(cell: Cell) -> bool:
    """Every finished seed ended with a training loss within CHANCE_BAND of chance, ln K."""
    finals = _final_losses(cell)
    return bool(finals) and min(finals) > chance_loss(cell.runs[0].params) - CHANCE_BAND


def _at_chance(cell: Cell) -> str:
    chance = chance_loss(cell.runs[0].params)
    return f"{cell.label} final train loss {Stats.of(_final_losses(cell))} (chance ln {round(math.exp(chance))} = {chance:.2f})"


def _rows_of(checks: Sequence[Check]) -> list[str]:
    rows = [r for c in checks for r in (*c.rows, *(x for pair in c.pairs for x in pair))]
    return list(dict.fromkeys(rows))


def _pick_variant(claim: Claim, by_label: Mapping[str, list[Cell]]) -> tuple[str, tuple[Check, ...]]:
    """The first family whose rows all ran (the paper's nets first); else the first one, to say what is missing."""
    variants = claim.variants()
    for family, checks in variants:
        if all(by_label.get(r) for r in _rows_of(checks)):
            return family, checks
    return variants[0]


def _absent(rows: Sequence[str], by_label: Mapping[str, list[Cell]]) -> list[str]:
    return [r for r in rows if not by_label.get(r)]


def _missing(
    rows: Sequence[str], by_label: Mapping[str, list[Cell]], metric_of: Mapping[str, str]
) -> tuple[str, str] | None:
    """Why the claim cannot be judged, as (kind, detail): rows that did not run, ran in several cells, or have
    no finished seed; None when every row can be judged."""
    absent = _absent(rows, by_label)
    if absent:
        return NOT_RUN, f"no run of {', '.join(absent)}"
    several = [r for r in rows if len(by_label[r]) > 1]
    if several:
        return (
            AMBIGUOUS,
            f"{', '.join(several)} ran as several cells (a swept key is missing from expected.key)",
        )
    empty = [r for r in rows if not by_label[r][0].values(metric_of[r])]
    if empty:
        lost = [
            f"{r} ({', '.join(f'{n} {s}' for s, n in by_label[r][0].unfinished().items())})" for r in empty
        ]
        return NOT_RUN, f"no finished seed of {', '.join(lost)}"
    return None


def judge_claim(claim: Claim, ex: Expected, cells: Sequence[Cell]) -> Verdict:
    by_label: dict[str, list[Cell]] = {}
    for cell in cells:
        by_label.setdefault(cell.label, []).append(cell)
    family, checks = _pick_variant(claim, by_label)
    rows, variants = _rows_of(checks), claim.variants()
    metric_of = {r: c.metric for c in checks for r in _rows_of([c])}
    problem = _missing(rows, by_label, metric_of)
    if len(variants) > 1 and _absent(rows, by_label):  # no family ran: name each one's missing rows
        missing = (f"no run of {', '.join(_absent(_rows_of(c), by_label))} ({f} nets)" for f, c in variants)
        problem = NOT_RUN, "; ".join(missing)
    if problem:
        kind, detail = problem
        return Verdict(claim.id, claim.text, SMOKE if ex.scale == "smoke" else kind, None, detail)
    row_cells = {r: by_label[r][0] for r in metric_of}
    if all(c.check in COMPARISONS for c in checks) and all(map(learned_nothing, row_cells.values())):
        kind = SMOKE if ex.scale == "smoke" else NOT_LEARNED
        return Verdict(claim.id, claim.text, kind, None, "; ".join(map(_at_chance, row_cells.values())))
    out = combine([CHECKS[c.check](c, row_cells, ex, claim.alpha) for c in checks])
    detail = (f"{family} nets: " if family else "") + out.detail
    runs = [run for cell in row_cells.values() for run in cell.runs]
    diffs = protocol_differences(ex.protocol, runs)
    steps = max(r.iterations for r in runs)
    scale = ", ".join([*diffs, f"{steps} iterations"] if steps else diffs) if diffs else ""
    paper_only = claim.data == "paper" or any(c.check in PAPER_NUMBER_CHECKS for c in checks)
    if ex.scale == "smoke":
        return Verdict(claim.id, claim.text, SMOKE, out.p, detail, scale)
    if diffs and paper_only:
        return Verdict(claim.id, claim.text, NOT_COMPARABLE, None, detail, scale)
    kind = REDUCED if diffs and out.kind == REPRODUCED else out.kind
    if out.kind == SINGLE:
        detail += " — the paper's direction " + ("holds" if out.holds else "does not hold")
    return Verdict(
        claim.id,
        claim.text,
        kind,
        out.p,
        detail + (f" (at reduced scale: {scale})" if diffs and kind != REDUCED else ""),
        scale,
    )


def judge(ex: Expected, cells: Sequence[Cell]) -> list[Verdict]:
    """A verdict per claim of the preset, from the cells that ran."""
    return [judge_claim(claim, ex, cells) for claim in ex.claims]
