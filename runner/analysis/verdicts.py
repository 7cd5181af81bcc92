"""Verdicts on a sweep: cells of seeds, their statistics, and one verdict per claim of a preset.

Pure logic over plain data (no MLflow, no torch): runner/analysis/report.py reads the runs, this module judges them,
runner/analysis/render.py draws them. How each verdict is decided (README, "Paper presets"):

- A *cell* is a config without its seed (the `runner.cell` tag); a *row* of a claim is named by the cell's
  values of `expected.key`, joined by "/". A cell's statistics count its finished seeds; failed, diverged
  or killed seeds are counted beside them, never dropped silently.
- One rule for every check: **reproduced** when the paper's direction is significant (one-sided p < alpha),
  **contradicted** only when the reverse is (reverse one-sided p < alpha), **inconclusive** otherwise. Each
  verdict carries Δ with its 95 % interval beside the paper's Δ, both one-sided p values and n.
- Gates before any comparison, each naming its own numbers when it stops a claim: data (a `data: paper` or
  `small_scale: untestable` claim is never judged on other data), learned (seeds whose final training loss is
  within CHANCE_BAND of chance are reported apart and left out of the error statistics; a row with fewer than
  2 learned seeds is not testable), budget (a claim about trained nets needs every row's training loss to
  have fallen less than BUDGET_DROP over the last quarter of its iterations; early-training claims skip it),
  power (the difference the test finds with probability POWER, from the observed spread and n, against the
  effect the claim expects: the paper's Δ, or the small-scale `effect` the claim declares).
- Orderings (`increasing`, `decreasing`): every step (each adjacent pair of rows, or the claim's `pairs`) by a
  one-sided Welch t-test; reproduced when every step is (intersection-union, Berger 1982), contradicted when
  a step's reverse is significant after Bonferroni over the steps. `trend: true`: one trend test over all
  rows (the slope of the metric on the row's position) instead of the steps.
- Constant rows (zero variance, where the t-test degenerates): the exact permutation test (3 vs 3 seeds cannot
  go below p = 1/20 = 0.05); a constant one-sample row: the exact sign test.
- "No difference" (`equivalent`): two one-sided Welch tests (TOST, Schuirmann 1987) within ±`tolerance`;
  contradicted when the difference is significantly beyond the tolerance (Bonferroni over the two sides).
- Paper numbers (`matches`): the (1 − 2·alpha) t-interval of our mean inside paper ± `tolerance` (the
  interval form of TOST); `best_of_n`: our best of the paper's n seeds against its best-of-n number.
- `converges` / `stalls`: a one-sample t-test of every seed's training loss against a level set by chance,
  ln(number of classes) of the data set that ran; `reaches_first`: the iteration where each seed first gets
  below the threshold, read from the iteration-resolution curve, a seed that never does censored at its last
  iteration, by Gehan's generalised Wilcoxon test (exact permutation distribution).
- A row with one finished seed reads "single run: direction only"; a smoke preset never reproduces.
- Across the claims of a page, `holm` adds Holm-adjusted p values beside the raw ones (the summary counts
  use them).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
from scipy import stats

from runner.config.datasets import num_classes

ALPHA = 0.05  # the level of every test unless a claim states its own `alpha`

LEVEL = 0.95  # the interval printed beside every Δ
POWER = 0.8  # the power gate: the smallest difference the test finds this often
BUDGET_DROP = 0.10  # the budget gate: a training loss still falling by more than this over the last quarter
MAX_SEEDS = 1000  # the power gate's "about k seeds per row" stops counting here

REPRODUCED = "reproduced"
REDUCED = "reproduced at reduced scale"
INCONCLUSIVE = "inconclusive"
CONTRADICTED = "contradicted"
SINGLE = "single run: direction only"
NOT_COMPARABLE = "different protocol: not comparable"
SMOKE = "smoke: pipeline only"
NOT_RUN = "not run"
NOT_LEARNED = "not testable: did not learn"
UNDER_BUDGET = "not testable at this budget"
UNDERPOWERED = "underpowered"
AMBIGUOUS = "ambiguous rows"
# The kinds a test decided (the others: a gate or a missing row stopped the claim first).
JUDGED = (REPRODUCED, REDUCED, INCONCLUSIVE, CONTRADICTED)
SMALL_SCALE = ("testable", "analogue", "untestable")  # how a claim can be tested away from the paper's data

# check → the keys it requires, and the ones it may take (besides `check` and `rows`)
CHECK_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "increasing": ({"metric"}, {"pairs", "trend"}),
    "decreasing": ({"metric"}, {"pairs", "trend"}),
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
    at_chance: list[Run] = field(default_factory=list)  # finished seeds left out: they never left chance

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


def left_chance(run: Run) -> bool | None:
    """Whether the seed's final training loss ended below chance − CHANCE_BAND; None: no loss logged."""
    loss = run.final("train_loss")
    return None if loss is None else loss <= chance_loss(run.params) - CHANCE_BAND


def learned_only(cell: Cell) -> Cell:
    """The cell without its seeds at chance, which it keeps apart (an unmeasured seed counts as learned)."""
    stuck = [r for r in cell.finished if left_chance(r) is False]
    kept = [r for r in cell.runs if r not in stuck]
    return Cell(cell.label, cell.cell_id, kept, stuck)


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
    trend: bool = False  # orderings: one trend test over all rows instead of each step

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
    # How the claim can be tested away from the paper's data (declared before any run), and why.
    small_scale: str = ""  # testable | analogue | untestable; "" = not declared (untestable for data: paper)
    small_scale_reason: str = ""
    early_training: bool = False  # a claim about the start of training: it skips the budget gate
    effect: float | None = None  # the effect the small-scale test expects (metric units), for the power gate

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Claim:
        unknown = set(spec) - {f.name for f in fields(cls)}
        if unknown or spec.get("data") not in ("any", "paper") or not spec.get("checks"):
            raise ValueError(f"claim {spec.get('id')}: needs id, text, data (any|paper), checks; got {spec}")
        small = str(spec.get("small_scale", ""))
        if small not in ("", *SMALL_SCALE) or (spec["data"] == "paper" and small not in ("", "untestable")):
            raise ValueError(
                f"claim {spec['id']}: small_scale={small}: one of {', '.join(SMALL_SCALE)}"
                " (untestable for data: paper, never judged on other data)"
            )
        effect = spec.get("effect")
        return cls(
            id=str(spec["id"]),
            text=str(spec["text"]),
            data=str(spec["data"]),
            checks=tuple(Check.parse(c) for c in spec["checks"]),
            alpha=float(spec.get("alpha", ALPHA)),
            families=tuple(str(f) for f in spec.get("families") or ()),
            small_scale=small,
            small_scale_reason=str(spec.get("small_scale_reason", "")),
            early_training=bool(spec.get("early_training", False)),
            effect=None if effect is None else abs(float(effect)),
        )

    @property
    def paper_only(self) -> bool:
        """Judged on the paper's protocol only: `data: paper`, untestable away from it, or a paper number."""
        paper_numbers = any(c.check in PAPER_NUMBER_CHECKS for c in self.checks)
        return self.data == "paper" or self.small_scale == "untestable" or paper_numbers

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
    curves: tuple[
        str, ...
    ] = ()  # the metrics drawn against iterations; () the default figures (render.CURVES)

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
            curves=tuple(str(m) for m in spec.get("curves") or ()),
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


def _describe(key: str, ours: Any, paper: Any, source: str = "paper") -> str:
    """One difference, short: "fashion_mnist", "width_mult ÷16", "max_steps 160 (paper 64000)"."""
    if key == "dataset.name":
        return str(ours)
    name = key.rsplit(".", 1)[-1]
    numbers = (int, float)
    if "width" in name and isinstance(ours, numbers) and isinstance(paper, numbers) and 0 < ours < paper:
        ratio = paper / ours
        if ratio >= 2 and abs(ratio - round(ratio)) < 1e-6:
            return f"{name} ÷{round(ratio)}"
    return f"{name} {ours} ({source} {paper})"


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


# The config keys that make a run another experiment than the full preset's: architecture, width, init, lr and
# schedule, budget, data (not where the data lives, nor the facts read from conf/dataset).
SCALE_KEYS = (
    "model.",
    "init.",
    "act.",
    "optim.",
    "schedule.",
    "dataset.",
    "trainer.max_steps",
    "trainer.epochs",
)
SCALE_KEYS += ("trainer.batch_size",)
NOT_SCALE = (
    "dataset.about.",
    "dataset.root",
    "dataset.download",
    "dataset.split_seed",
    "dataset.num_workers",
)
# A row's values of expected.key → the full preset's flattened config for that row (None: none to compare with).
Reference = Callable[[tuple[tuple[str, str], ...]], Mapping[str, Any] | None]


def preset_differences(
    reference: Reference, key: Sequence[str], runs: Sequence[Run], skip: Collection[str] = ()
) -> list[str]:
    """What makes these runs differ from the full preset run for the same row, one short phrase per key."""
    out: list[str] = []
    for run in runs:
        full = reference(tuple((k, run.params.get(k, "?")) for k in key)) or {}
        for name, value in full.items():
            wanted = name.startswith(SCALE_KEYS) and not name.startswith(NOT_SCALE)
            if not wanted or name in skip or name in key or name not in run.params:
                continue  # a key the run did not log: a config from before the key existed
            ours = _value(run.params[name])
            phrase = _describe(name, ours, value, "full")
            if not _same(ours, value) and phrase not in out:
                out.append(phrase)
    return out


def differences(ex: Expected, runs: Sequence[Run], reference: Reference | None = None) -> list[str]:
    """The paper's protocol keys first, then every other difference from the full preset."""
    out = protocol_differences(ex.protocol, runs)
    if reference is not None:
        out += [d for d in preset_differences(reference, ex.key, runs, ex.protocol) if d not in out]
    return out


# --- the statistics -------------------------------------------------------------------------------------

EXACT_SPLITS = 200_000  # beyond this many splits the permutation test samples them (fixed seed)


def _constant(values: Sequence[float]) -> bool:
    return float(np.ptp(np.asarray(values, dtype=float))) == 0.0


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def exact_p(a: Sequence[float], b: Sequence[float], greater: bool) -> float:
    """One-sided p of the permutation test on mean(a) − mean(b) over every split of the pooled seeds: valid at
    any spread, with a floor of 1 / C(n_a + n_b, n_a) (3 vs 3 seeds: 0.05)."""
    splits = math.comb(len(a) + len(b), len(a))
    result = stats.permutation_test(
        (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
        _mean_difference,
        vectorized=True,
        alternative="greater" if greater else "less",
        n_resamples=np.inf if splits <= EXACT_SPLITS else 99_999,
        rng=np.random.default_rng(0),
    )
    return float(result.pvalue)


def exact_floor(n_a: int, n_b: int) -> float:
    """The smallest one-sided p an exact two-sample rank or permutation test can give."""
    splits = math.comb(n_a + n_b, n_a)
    return 1.0 / splits if splits < 10**300 else 0.0  # beyond a float's range: no floor worth the name


def welch_p(a: Any, b: Any, greater: bool) -> Any:
    """One-sided p of Welch's t-test, H1: mean(a) > mean(b) (greater) or mean(a) < mean(b); seeds along the
    last axis (arrays of many simulated rows give an array of p values: the calibration test).

    Both rows constant over their seeds: t is ±∞ and the t-test degenerates, so the exact permutation test
    decides (3 constant seeds against 3 read p = 0.05 at best, never 0)."""
    if np.ndim(a) == 1 and _constant(a) and _constant(b):
        return exact_p(a, b, greater)
    alternative = "greater" if greater else "less"
    p = stats.ttest_ind(a, b, equal_var=False, alternative=alternative, axis=-1).pvalue
    return float(p) if np.ndim(p) == 0 else p


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The LEVEL (two-sided) Welch interval of mean(a) − mean(b); a point where both rows are constant."""
    if _constant(a) and _constant(b):
        d = float(np.mean(a) - np.mean(b))
        return d, d
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(LEVEL)
    return float(ci.low), float(ci.high)


def welch_se_df(a: Any, b: Any) -> tuple[Any, Any]:
    """The standard error of mean(a) − mean(b) and its Welch–Satterthwaite degrees of freedom (seeds along
    the last axis, as welch_p)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = a.shape[-1], b.shape[-1]
    va, vb = np.var(a, ddof=1, axis=-1) / na, np.var(b, ddof=1, axis=-1) / nb
    denominator = va**2 / (na - 1) + vb**2 / (nb - 1)
    df = np.where(
        denominator > 0, (va + vb) ** 2 / np.where(denominator > 0, denominator, 1.0), na + nb - 2.0
    )
    se = np.sqrt(va + vb)
    return (float(se), float(df)) if np.ndim(se) == 0 else (se, df)


def sign_p(a: Sequence[float], level: float, greater: bool) -> float:
    """One-sided p of the exact sign test, H1: the seeds lie above `level` (greater) or below it."""
    above = sum(x > level for x in a)
    n = above + sum(x < level for x in a)  # a seed exactly on the level says nothing either way
    if n == 0:
        return 1.0
    return float(stats.binomtest(above if greater else n - above, n, 0.5, alternative="greater").pvalue)


def one_sample_p(a: Sequence[float], level: float, greater: bool) -> float:
    """One-sided p of a one-sample t-test, H1: mean(a) > level (greater) or < level; a constant row (t = ±∞):
    the exact sign test (3 seeds: p = 0.125 at best)."""
    if _constant(a):
        return sign_p(a, level, greater)
    alternative = "greater" if greater else "less"
    return float(stats.ttest_1samp(a, level, alternative=alternative).pvalue)


def t_interval(values: Sequence[float], alpha: float) -> tuple[float, float]:
    """The two-sided (1 − 2·alpha) t-interval of the mean: inside paper ± tolerance ⇔ TOST at alpha."""
    s = Stats.of(values)
    assert s is not None and s.n > 1
    half = float(stats.t.ppf(1 - alpha, s.n - 1)) * s.std / math.sqrt(s.n)
    return s.mean - half, s.mean + half


def gehan_scores(times: Sequence[float], reached: Sequence[bool]) -> np.ndarray:
    """Gehan's scores for time to threshold: per seed, how many seeds it surely got there before, minus how
    many surely got there before it. A censored seed (never got there by its last iteration) is surely later
    only than seeds that got there no later than that iteration."""
    t, e = np.asarray(times, dtype=float), np.asarray(reached, dtype=bool)
    before = e[:, None] & ((t[:, None] < t[None, :]) | (~e[None, :] & (t[:, None] <= t[None, :])))
    return before.sum(axis=1) - before.sum(axis=0)


def gehan_p(a: Sequence[tuple[float, bool]], b: Sequence[tuple[float, bool]], earlier: bool) -> float:
    """One-sided p that the seeds of `a` get there before those of `b` (earlier) or after, by Gehan's
    generalised Wilcoxon test with its exact permutation distribution."""
    pooled = [*a, *b]
    scores = gehan_scores([t for t, _ in pooled], [ok for _, ok in pooled])
    return exact_p(scores[: len(a)], scores[len(a) :], greater=earlier)


def detectable(se: Any, df: Any, alpha: float) -> Any:
    """The smallest true difference a one-sided t-test at alpha finds with probability POWER."""
    found = (stats.t.ppf(1 - alpha, df) + stats.t.ppf(POWER, df)) * se
    return float(found) if np.ndim(found) == 0 else found


def power(effect: float, se: float, df: float, alpha: float) -> float:
    """The probability that a one-sided t-test at alpha finds a true difference `effect` (noncentral t)."""
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, effect / se))


def _seeds_needed(ok: Callable[[int], bool]) -> str:
    """ "about k seeds per row would do": the smallest k in 2…MAX_SEEDS for which `ok` holds (it is monotone)."""
    if not ok(MAX_SEEDS):
        return f"more than {MAX_SEEDS} seeds per row would be needed"
    lo, hi = 2, MAX_SEEDS
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return SEEDS_NEEDED.format(lo)


SEEDS_NEEDED = "about {} seeds per row would do"  # runner.analysis.seeds reads k back from the power gate


def seeds_needed(gate_text: str) -> int | None:
    """k of the power gate's "about k seeds per row would do" (MAX_SEEDS + 1 for "more than"); None: none asked."""
    if f"more than {MAX_SEEDS} seeds" in gate_text:
        return MAX_SEEDS + 1
    found = [int(k) for k in re.findall(SEEDS_NEEDED.replace("{}", r"(\d+)"), gate_text)]
    return max(found) if found else None


def t_gate(
    expected: float | None,
    now: tuple[float, float],
    se_at: Callable[[int], tuple[float, float]],
    alpha: float,
    vs: str = "expected",
) -> str:
    """The power gate of a t-test: "" when it finds `expected` with probability POWER at the standard error and
    degrees of freedom it has (`now`), else the detectable difference against it and the seeds per row that
    would do (se_at(k): the standard error and degrees of freedom at k seeds a row)."""
    if expected is None:
        return ""
    found = detectable(*now, alpha)
    if found <= expected:
        return ""
    need = _seeds_needed(lambda k: detectable(*se_at(k), alpha) <= expected)
    return f"detectable {found:.2f} vs {vs} {max(expected, 0.0):.2f}; {need}"


def floor_gate(floor: float, alpha: float, seeds: str, floor_at: Callable[[int], float]) -> str:
    """The power gate of an exact test: "" when its smallest possible p is below alpha."""
    if floor < alpha:
        return ""
    need = _seeds_needed(lambda k: floor_at(k) < alpha)
    return f"an exact test of {seeds} seeds cannot go below p = {floor:.2g}; {need}"


def holm(ps: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment over the p values given (None: not tested, not in the family)."""
    tested = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    out: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class Effect:
    """The difference a check measured, beside the paper's."""

    what: str  # "b − a", "slope per row", "final loss − level"
    delta: float
    lo: float | None  # its LEVEL interval; None where there is none (censored seeds, one seed)
    hi: float | None
    paper: float | None  # the paper's Δ, where its numbers give one
    n: tuple[int, ...]  # seeds per row
    bound: str = ""  # "≥ " / "≤ ": censored seeds make Δ a bound
    paper_text: str = ""  # instead of the paper's Δ (a tolerance, a ratio)

    def __str__(self) -> str:
        interval = "" if self.lo is None or self.hi is None else f" [{self.lo:+.2f}, {self.hi:+.2f}]"
        paper = self.paper_text or ("—" if self.paper is None else f"{self.paper:+.2f}")
        return f"Δ({self.what}) {self.bound}{self.delta:+.2f}{interval} vs paper {paper}"


@dataclass(frozen=True)
class Outcome:
    kind: str  # REPRODUCED, INCONCLUSIVE, CONTRADICTED or SINGLE
    holds: bool  # the paper's direction (or threshold) holds on the means
    p: float | None  # one-sided, the paper's direction; None where no test applies (single run, a best-of-n)
    detail: str
    p_reverse: float | None = None  # one-sided, the reverse direction
    effect: Effect | None = None
    underpowered: str = ""  # the power gate's numbers where it stops the check


def decide(
    n_min: int,
    holds: bool,
    p: float | None,
    alpha: float,
    detail: str,
    p_reverse: float | None = None,
    effect: Effect | None = None,
    underpowered: str = "",
) -> Outcome:
    """The one rule: one seed → direction only; the paper's direction significant → reproduced; the reverse
    significant → contradicted; else inconclusive."""
    if n_min < 2 or p is None:
        return Outcome(SINGLE, holds, None, detail, None, effect)
    kind = str(rule(p, 1.0 if p_reverse is None else p_reverse, alpha))
    return Outcome(kind, holds, p, detail, p_reverse, effect, underpowered)


def rule(p: Any, p_reverse: Any, alpha: float) -> Any:
    """The one rule, on p values or arrays of them: reproduced when the paper's direction is significant,
    contradicted when the reverse is, inconclusive otherwise."""
    return np.where(p < alpha, REPRODUCED, np.where(p_reverse < alpha, CONTRADICTED, INCONCLUSIVE))


def bonferroni(ps: Any) -> Any:
    """The smallest of k p values (along the first axis), times k: a step's reverse among k steps."""
    ps = np.asarray(ps, dtype=float)
    adjusted = np.minimum(1.0, len(ps) * np.min(ps, axis=0))
    return float(adjusted) if np.ndim(adjusted) == 0 else adjusted


def combine(outcomes: Sequence[Outcome], alpha: float = ALPHA) -> Outcome:
    """Every step must hold: reproduced when all are (p: the largest, intersection-union); contradicted when a
    step's reverse is significant after Bonferroni over the steps; a single run anywhere → direction only."""
    ps = [o.p for o in outcomes if o.p is not None]
    reverse = [o.p_reverse for o in outcomes if o.p_reverse is not None]
    p_reverse = bonferroni(reverse) if reverse else None
    untested_contradiction = any(o.kind == CONTRADICTED and o.p_reverse is None for o in outcomes)
    if (p_reverse is not None and p_reverse < alpha) or untested_contradiction:
        kind = CONTRADICTED
        deciding = min(outcomes, key=lambda o: 2.0 if o.p_reverse is None else o.p_reverse)
    else:
        kinds = {o.kind for o in outcomes}
        kind = REPRODUCED if kinds == {REPRODUCED} else SINGLE if SINGLE in kinds else INCONCLUSIVE
        deciding = max(outcomes, key=lambda o: -1.0 if o.p is None else o.p)
    return Outcome(
        kind,
        all(o.holds for o in outcomes),
        max(ps) if ps else None,
        "; ".join(o.detail for o in outcomes),
        p_reverse,
        deciding.effect,
        "; ".join(o.underpowered for o in outcomes if o.underpowered),
    )


def fmt_p(p: float | None) -> str:
    return "" if p is None else (f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001")


def fmt_ps(p: float | None, p_reverse: float | None) -> str:
    """ "p = 0.011, reverse p = 0.99": both one-sided p values."""
    reverse = fmt_p(p_reverse).replace("p ", "reverse p ", 1)
    return ", ".join(x for x in (fmt_p(p), reverse) if x)


# --- the checks: each gets its rows' cells (row name → cell) and returns an Outcome ------------------------
# `effect`: the small-scale effect the claim declares (used instead of the paper's Δ by the power gate).


def _row(cell: Cell, metric: str) -> str:
    s = cell.stats(metric)
    lost = "".join(f", {n} {status}" for status, n in cell.unfinished().items())
    if cell.at_chance:
        values = [x for x in (r.final(metric) for r in cell.at_chance) if x is not None]
        shown = f" ({', '.join(f'{x:.2f}' for x in values)})" if values else ""
        lost += f", {len(cell.at_chance)} at chance left out{shown}"
    return f"{cell.label} {'—' if s is None else s}{lost}"


def _paper_delta(ex: Expected, check: Check, first: str, second: str) -> float | None:
    a, b = ex.paper_number(check, first), ex.paper_number(check, second)
    return None if a is None or b is None else b - a


def _welch_gate(
    a: Sequence[float], b: Sequence[float], expected: float | None, alpha: float, vs: str = "expected"
) -> str:
    """The power gate of a two-row comparison: the exact test's floor where both rows are constant, else the
    t-test's detectable difference at the observed spreads against the expected one."""
    if _constant(a) and _constant(b):
        floor = exact_floor(len(a), len(b))
        return floor_gate(floor, alpha, f"{len(b)} + {len(a)}", lambda k: exact_floor(k, k))
    sa, sb = float(np.std(a, ddof=1)), float(np.std(b, ddof=1))
    return t_gate(expected, welch_se_df(a, b), lambda k: _se_at(sa, sb, k), alpha, vs)


def _se_at(sa: float, sb: float, k: int) -> tuple[float, float]:
    """Welch's standard error and degrees of freedom with k seeds in each row at these spreads."""
    va, vb = sa * sa / k, sb * sb / k
    denominator = (va * va + vb * vb) / (k - 1)
    return math.sqrt(va + vb), ((va + vb) ** 2 / denominator if denominator > 0 else 2.0 * k - 2)


def _step(
    first: Cell, second: Cell, check: Check, ex: Expected, alpha: float, effect: float | None
) -> Outcome:
    """One step of an ordering: Δ = mean(second) − mean(first), the paper's way positive for `increasing`."""
    up = check.check == "increasing"
    a, b = second.values(check.metric), first.values(check.metric)
    delta = float(np.mean(a) - np.mean(b))
    holds = delta > 0 if up else delta < 0
    n = (len(b), len(a))
    paper = _paper_delta(ex, check, first.label, second.label)
    step = f"{first.label} {'<' if up else '>'} {second.label}"
    if min(n) < 2:
        return decide(
            min(n),
            holds,
            None,
            alpha,
            step,
            effect=Effect(f"{second.label} − {first.label}", delta, None, None, paper, n),
        )
    lo, hi = welch_interval(a, b)
    p, p_reverse = welch_p(a, b, greater=up), welch_p(a, b, greater=not up)
    expected = effect if effect is not None else (None if paper is None else abs(paper))
    gate = _welch_gate(a, b, expected, alpha)
    fx = Effect(f"{second.label} − {first.label}", delta, lo, hi, paper, n)
    return decide(
        min(n), holds, p, alpha, f"{step} ({fmt_p(p)})", p_reverse, fx, f"{step}: {gate}" if gate else ""
    )


def _trend(
    check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float, effect: float | None
) -> Outcome:
    """One trend test over all rows: the slope of the metric on the row's position (0, 1, 2, …), one-sided."""
    up = check.check == "increasing"
    per_row = [cells[r].values(check.metric) for r in check.rows]
    x = np.concatenate([[i] * len(v) for i, v in enumerate(per_row)]).astype(float)
    y = np.concatenate(per_row).astype(float)
    n = tuple(len(v) for v in per_row)
    fit = stats.linregress(x, y)
    numbers = [ex.paper_number(check, r) for r in check.rows]
    paper = None if None in numbers else float(stats.linregress(range(len(numbers)), numbers).slope)
    what = f"slope per row, {check.rows[0]} → {check.rows[-1]}"
    if min(n) < 2:
        return decide(
            1, (fit.slope > 0) == up, None, alpha, what, effect=Effect(what, fit.slope, None, None, paper, n)
        )
    df = len(y) - 2
    if fit.stderr > 0:
        p, p_reverse = (float(stats.linregress(x, y, alternative=s).pvalue) for s in ("greater", "less"))
        half = float(stats.t.ppf((1 + LEVEL) / 2, df)) * fit.stderr
    else:  # every row constant and exactly in line: the t-test degenerates, the permutation test does not
        p, p_reverse = (_inline_trend_p(x, y, greater) for greater in (True, False))
        half = 0.0
    if not up:
        p, p_reverse = p_reverse, p
    expected = effect if effect is not None else (None if paper is None else abs(paper))
    per_seed = fit.stderr * math.sqrt(float(np.mean(n)))  # the slope's standard error shrinks as 1/√seeds
    gate = t_gate(expected, (fit.stderr, df), lambda k: (per_seed / math.sqrt(k), k * len(n) - 2.0), alpha)
    fx = Effect(what, float(fit.slope), fit.slope - half, fit.slope + half, paper, n)
    detail = f"trend over {len(n)} rows ({fmt_p(p)})"
    return decide(
        min(n), (fit.slope > 0) == up, p, alpha, detail, p_reverse, fx, f"trend: {gate}" if gate else ""
    )


def _slope(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    xc = x - np.mean(x, axis=axis, keepdims=True)
    return np.sum(xc * (y - np.mean(y, axis=axis, keepdims=True)), axis=axis) / np.sum(xc * xc, axis=axis)


def _inline_trend_p(x: np.ndarray, y: np.ndarray, greater: bool) -> float:
    """The exact one-sided p of the permutation test of the slope where the t-test degenerates: every row
    constant and the rows exactly in line. The observed pairing is then the steepest of all (rearrangement
    inequality), shared only by the reorderings within rows: p = ∏ n_i! / n! on its side (2 rows of 3 seeds:
    0.05, as the two-row step's exact test), 1 on the other; a flat line ties every pairing, 1 both ways. Exact
    where a sampled permutation test (scipy beyond 9,999 pairings) could land below the floor it cannot reach."""
    slope = float(_slope(x, y))
    if slope == 0.0 or (slope > 0) != greater:
        return 1.0
    _, counts = np.unique(x, return_counts=True)
    return math.prod(math.factorial(int(c)) for c in counts) / math.factorial(len(x))


def check_ordering(
    check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float, effect: float | None = None
) -> Outcome:
    """increasing: each row's metric above the one before (decreasing: below), every step tested; `trend`:
    one trend test over all rows instead."""
    rows = " → ".join(_row(cells[r], check.metric) for r in check.rows)
    if check.trend:
        out = _trend(check, cells, ex, alpha, effect)
    else:
        pairs = check.pairs or tuple(zip(check.rows, check.rows[1:], strict=False))
        out = combine([_step(cells[a], cells[b], check, ex, alpha, effect) for a, b in pairs], alpha)
    return replace(out, detail=f"{check.metric}: {rows}; {out.detail}")


def check_equivalent(
    check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float, effect: float | None = None
) -> Outcome:
    """No difference: |mean A − mean B| < tolerance by TOST (two one-sided Welch tests at alpha); contradicted
    when the difference lies significantly beyond the tolerance on either side (Bonferroni over the two)."""
    first, second = (cells[r] for r in check.rows)
    a, b, tol = first.values(check.metric), second.values(check.metric), check.tolerance
    diff = float(np.mean(a) - np.mean(b))
    detail = f"{check.metric}: {_row(first, check.metric)} vs {_row(second, check.metric)}, Δ {diff:+.2f} (tolerance ±{tol:g})"
    paper = _paper_delta(ex, check, second.label, first.label)
    n = (len(a), len(b))
    if min(n) < 2:
        return Outcome(
            SINGLE,
            abs(diff) < tol,
            None,
            detail,
            effect=Effect(f"{first.label} − {second.label}", diff, None, None, paper, n),
        )
    shifted_up, shifted_down = [x + tol for x in a], [x - tol for x in a]
    p_inside = max(welch_p(shifted_up, b, greater=True), welch_p(shifted_down, b, greater=False))
    p_outside = min(
        1.0, 2 * min(welch_p(shifted_down, b, greater=True), welch_p(shifted_up, b, greater=False))
    )
    expected = effect if effect is not None else abs(paper or 0.0)
    gate = _welch_gate(a, b, tol - expected, alpha, vs="the tolerance's margin")
    lo, hi = welch_interval(a, b)
    fx = Effect(f"{first.label} − {second.label}", diff, lo, hi, paper, n)
    return decide(
        min(n), abs(diff) < tol, p_inside, alpha, f"{detail} (TOST {fmt_p(p_inside)})", p_outside, fx, gate
    )


def _matches_row(check: Check, cell: Cell, paper: float, alpha: float) -> Outcome:
    values, tol = cell.values(check.metric), check.tolerance
    s = Stats.of(values)
    assert s is not None
    detail = f"{cell.label} {s} vs paper {paper:g}"
    what = f"{cell.label} − paper {paper:g}"
    if s.n < 2:
        fx = Effect(what, s.mean - paper, None, None, None, (s.n,), paper_text=f"±{tol:g}")
        return Outcome(SINGLE, abs(s.mean - paper) <= tol, None, detail, effect=fx)
    lo, hi = t_interval(values, alpha) if s.std > 0 else (s.mean, s.mean)  # no spread: the mean itself
    inside = paper - tol <= lo and hi <= paper + tol
    outside = hi < paper - tol or lo > paper + tol
    kind = REPRODUCED if inside else CONTRADICTED if outside else INCONCLUSIVE
    wide = t_interval(values, (1 - LEVEL) / 2) if s.std > 0 else (s.mean, s.mean)
    fx = Effect(what, s.mean - paper, wide[0] - paper, wide[1] - paper, None, (s.n,), paper_text=f"±{tol:g}")
    se = s.std / math.sqrt(s.n)
    per_seed = s.std
    gate = t_gate(tol, (se, s.n - 1.0), lambda k: (per_seed / math.sqrt(k), k - 1.0), alpha, "tolerance")
    detail += f" ({100 - 200 * alpha:g}% CI {lo:.2f}–{hi:.2f})"
    return Outcome(
        kind, abs(s.mean - paper) <= tol, None, detail, None, fx, f"{cell.label}: {gate}" if gate else ""
    )


def check_matches(
    check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float, effect: float | None = None
) -> Outcome:
    """Each row's mean, by its t-interval, within ±tolerance of the paper's number."""
    outcomes = []
    for row in check.rows:
        paper = ex.paper_number(check, row)
        if paper is None:
            raise ValueError(f"no paper number for {row} ({check.metric}) in expected.numbers")
        outcomes.append(_matches_row(check, cells[row], paper, alpha))
    out = combine(outcomes, alpha)
    return replace(out, detail=f"{check.metric} within ±{check.tolerance:g}: {out.detail}")


def check_best_of_n(
    check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float, effect: float | None = None
) -> Outcome:
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
            kind = REPRODUCED if holds else CONTRADICTED
        fx = Effect(
            f"best − paper {paper:g}",
            best - paper,
            None,
            None,
            None,
            (len(values),),
            paper_text=f"±{check.tolerance:g}",
        )
        outcomes.append(Outcome(kind, holds, None, detail, effect=fx))
    out = combine(outcomes, alpha)
    return replace(out, detail=f"{check.metric} within ±{check.tolerance:g}: {out.detail}")


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
        return Outcome(INCONCLUSIVE, False, None, f"{cell.label}: no training loss logged")
    holds = s.mean > level if stall else s.mean < level
    what = "lowest" if stall else "final"
    sign = "≥" if stall else "<"
    detail = f"{cell.label} {what} train loss {s} {sign} {level:.2f} (chance ln {round(math.exp(chance))} = {chance:.2f})"
    fx = Effect(f"{cell.label} {what} loss − {level:.2f}", s.mean - level, None, None, None, (s.n,))
    if s.n < 2:
        return decide(s.n, holds, None, alpha, detail, effect=fx)
    p, p_reverse = one_sample_p(values, level, greater=stall), one_sample_p(values, level, greater=not stall)
    gate = ""
    if _constant(values):  # the sign test decides: its floor is the gate
        gate = floor_gate(0.5**s.n, alpha, str(s.n), lambda k: 0.5**k)
    else:
        ci = stats.ttest_1samp(values, level).confidence_interval(LEVEL)
        fx = replace(fx, lo=float(ci.low) - level, hi=float(ci.high) - level)
    return decide(
        s.n, holds, p, alpha, f"{detail} ({fmt_p(p)})", p_reverse, fx, f"{cell.label}: {gate}" if gate else ""
    )


def check_loss(
    check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float, effect: float | None = None
) -> Outcome:
    """converges / stalls, each row on its own."""
    return combine([_loss_check(check, cells[r], alpha) for r in check.rows], alpha)


def _first_below(run: Run, metric: str, below: float) -> tuple[int, bool]:
    """The iteration where the run's metric first falls below `below`, read from its iteration-resolution curve
    (`<metric>_interval`) where it logged one; a run that never gets there is censored at the last iteration
    it was seen (a lower bound, for the survival-style test)."""
    curve = run.history.get(f"{metric}_interval") or run.history.get(metric, ())
    step = next((s for s, v in curve if v < below), None)
    if step is not None:
        return step, True
    return max((s for s, _ in curve), default=run.iterations), False


def check_reaches_first(
    check: Check, cells: Mapping[str, Cell], ex: Expected, alpha: float, effect: float | None = None
) -> Outcome:
    """The first row's metric falls below `below` at an earlier iteration than the second row's (Gehan's test:
    censored seeds count as not there by their last iteration, never as a made-up time)."""
    first, second = (cells[r] for r in check.rows)  # two rows: a third is a malformed claim
    a = [_first_below(r, check.metric, check.below) for r in first.finished]
    b = [_first_below(r, check.metric, check.below) for r in second.finished]
    ma, mb = float(np.median([s for s, _ in a])), float(np.median([s for s, _ in b]))
    holds = ma < mb or (ma == mb and sum(ok for _, ok in a) > sum(ok for _, ok in b))
    n = (len(a), len(b))

    def when(cell: Cell, reached: list[tuple[int, bool]]) -> str:
        at = ", ".join(str(s) if ok else f"never (by {s})" for s, ok in reached)
        return f"{cell.label} at iteration {at}"

    censored_a, censored_b = not all(ok for _, ok in a), not all(ok for _, ok in b)
    ratio = f", {mb / ma:.1f}× sooner" if holds and not censored_b and ma > 0 else ""
    detail = f"{check.metric} < {check.below:g}: {when(first, a)}; {when(second, b)}{ratio}"
    bound = {(False, True): "≥ ", (True, False): "≤ ", (True, True): "~ "}.get((censored_a, censored_b), "")
    fx = Effect(f"median iteration {second.label} − {first.label}", mb - ma, None, None, None, n, bound)
    if min(n) < 2:
        return decide(min(n), holds, None, alpha, detail, effect=fx)
    p, p_reverse = gehan_p(a, b, earlier=True), gehan_p(a, b, earlier=False)
    gate = floor_gate(exact_floor(*n), alpha, f"{n[0]} + {n[1]}", lambda k: exact_floor(k, k))
    return decide(min(n), holds, p, alpha, f"{detail} (Gehan {fmt_p(p)})", p_reverse, fx, gate)


CHECKS: dict[str, Callable[..., Outcome]] = {
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
# The learned gate: checks of final values need every row to have learned (seeds at chance are left out of
# their statistics); reaches_first needs some row to have (a seed that never gets there is censored, not lost).
LEARNED_EACH = ("increasing", "decreasing", "equivalent", "matches", "best_of_n")
LEARNED_ANY = ("reaches_first",)


# --- a verdict per claim --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    claim: str
    text: str
    kind: str  # REPRODUCED, REDUCED, INCONCLUSIVE, CONTRADICTED, SINGLE, NOT_COMPARABLE, SMOKE, NOT_RUN,
    # NOT_LEARNED, UNDER_BUDGET, UNDERPOWERED, AMBIGUOUS
    p: float | None  # one-sided, the paper's direction
    detail: str  # what was measured
    scale: str = ""  # the differences from the paper's protocol and the full preset
    p_reverse: float | None = None  # one-sided, the reverse direction
    effect: Effect | None = None  # Δ with its interval beside the paper's, and n
    gate: str = ""  # the gate that stopped the claim: data | learned | budget | power
    why: str = ""  # that gate's numbers, as the headline shows them
    alpha: float = ALPHA
    p_holm: float | None = None  # Holm-adjusted across the claims of a page (with_holm)
    p_reverse_holm: float | None = None

    @property
    def numbers(self) -> str:
        """ "Δ(b − a) +2.00 [+1.27, +2.73] vs paper +1.40; p = 0.00011, reverse p = 1 (Holm …); n = 5 + 5"."""
        ps = fmt_ps(self.p, self.p_reverse)
        holm = fmt_ps(self.p_holm, self.p_reverse_holm).replace("p =", "=").replace("p <", "<")
        ps += f" (Holm: {holm})" if self.p_holm is not None else ""
        n = " + ".join(map(str, self.effect.n)) if self.effect else ""
        parts = [str(self.effect) if self.effect else "", ps, f"n = {n}" if n else ""]
        return "; ".join(x for x in parts if x)

    @property
    def headline(self) -> str:
        """ "reproduced (Δ(b − a) +2.00 [+1.27, +2.73] vs paper +1.40; p = 0.00011, reverse p = 1; n = 5 + 5)",
        or the gate's own line ("underpowered (detectable 7.30 vs expected 1.18; about 40 seeds per row would do)")."""
        if self.why:
            return self.why
        scale = self.scale if self.kind in (REDUCED, NOT_COMPARABLE) else ""
        numbers = self.numbers if self.kind in JUDGED else ""  # a smoke run's p means nothing
        inside = "; ".join(x for x in (scale, numbers) if x)
        return f"{self.kind} ({inside})" if inside else self.kind

    @property
    def after_holm(self) -> str:
        """The kind the page's counts use: a significance that does not stand after Holm reads inconclusive."""
        if self.kind in (REPRODUCED, REDUCED) and self.p_holm is not None and self.p_holm >= self.alpha:
            return INCONCLUSIVE
        if (
            self.kind == CONTRADICTED
            and self.p_reverse_holm is not None
            and self.p_reverse_holm >= self.alpha
        ):
            return INCONCLUSIVE
        return self.kind


def with_holm(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts with Holm-adjusted p values (each direction its own family) over the claims a test judged."""
    tested = [v.kind in JUDGED for v in verdicts]
    paper = holm([v.p if t else None for v, t in zip(verdicts, tested, strict=True)])
    reverse = holm([v.p_reverse if t else None for v, t in zip(verdicts, tested, strict=True)])
    return [replace(v, p_holm=a, p_reverse_holm=b) for v, a, b in zip(verdicts, paper, reverse, strict=True)]


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


# --- the gates: each returns "" or the line that stops the claim, with its own numbers ----------------------


def _learned_count(cell: Cell) -> tuple[int, int]:
    """(seeds that left chance or were not measured, finished seeds)."""
    flags = [left_chance(r) for r in cell.finished]
    return len(flags) - flags.count(False), len(flags)


def _did_not_learn(cell: Cell) -> bool:
    learned, finished = _learned_count(cell)
    return learned < finished and learned < 2  # a lone seed that learned is a single run, not this gate's


def learned_gate(checks: Sequence[Check], cells: Mapping[str, Cell]) -> str:
    """ "not testable: b did not learn (1/3 seeds learned)" where a compared row kept fewer than 2 learned seeds."""
    each = _rows_of([c for c in checks if c.check in LEARNED_EACH])
    stuck = [r for r in each if _did_not_learn(cells[r])]
    some = _rows_of([c for c in checks if c.check in LEARNED_ANY])
    if some and all(_did_not_learn(cells[r]) for r in some):
        stuck += [r for r in some if r not in stuck]
    if not stuck:
        return ""
    counts = ", ".join("{}/{}".format(*_learned_count(cells[r])) for r in stuck)
    return f"not testable: {', '.join(stuck)} did not learn ({counts} seeds learned)"


def _window_mean(curve: Sequence[tuple[int, float]], lo: float, hi: float, at: float) -> float:
    """The mean loss logged between iterations lo and hi; the point nearest `at` where none was."""
    inside = [v for s, v in curve if lo <= s <= hi]
    return float(np.mean(inside)) if inside else min(curve, key=lambda p: abs(p[0] - at))[1]


def last_quarter_drop(run: Run) -> float | None:
    """How much the training loss fell over the last quarter of the run's iterations (0.2: by 20 %), from its
    iteration-resolution curve where logged: the mean around 3/4 of the run against the mean of its last tenth."""
    curve = run.history.get("train_loss_interval") or run.history.get("train_loss") or ()
    curve = [(s, v) for s, v in curve if math.isfinite(v)]
    if len(curve) < 2:
        return None
    end = curve[-1][0]
    start = _window_mean(curve, 0.7 * end, 0.8 * end, 0.75 * end)
    final = _window_mean(curve, 0.9 * end, end, end)
    return (start - final) / start if start > 0 else None


def budget_gate(cells: Mapping[str, Cell]) -> str:
    """ "not testable at this budget (b still improving: −23 % over the last quarter)": a row whose seeds' median
    training loss fell more than BUDGET_DROP over the last quarter (the learned seeds; no curve: not checked)."""
    improving = []
    for row, cell in cells.items():
        drops = [d for d in (last_quarter_drop(r) for r in learned_only(cell).finished) if d is not None]
        if drops and float(np.median(drops)) > BUDGET_DROP:
            improving.append(
                f"{row} still improving: −{100 * float(np.median(drops)):.0f} % over the last quarter"
            )
    return f"{UNDER_BUDGET} ({'; '.join(improving)})" if improving else ""


def _scale_text(diffs: Sequence[str], runs: Sequence[Run]) -> str:
    steps = max(r.iterations for r in runs)
    return ", ".join([*diffs, f"{steps} iterations"] if steps else diffs) if diffs else ""


def _gates(
    claim: Claim, checks: Sequence[Check], cells: Mapping[str, Cell], diffs: Sequence[str]
) -> tuple[str, str]:
    """The first gate that stops the claim before any comparison, as (gate, its line); ("", "") when none does."""
    if diffs and claim.paper_only:
        return "data", ""
    learned = learned_gate(checks, cells)
    if learned:
        return "learned", learned
    budget = "" if claim.early_training else budget_gate(cells)
    return ("budget", budget) if budget else ("", "")


GATE_KINDS = {"data": NOT_COMPARABLE, "learned": NOT_LEARNED, "budget": UNDER_BUDGET, "power": UNDERPOWERED}


def judge_claim(
    claim: Claim, ex: Expected, cells: Sequence[Cell], reference: Reference | None = None
) -> Verdict:
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
    base = {"claim": claim.id, "text": claim.text, "alpha": claim.alpha}
    if problem:
        kind, detail = problem
        return Verdict(**base, kind=SMOKE if ex.scale == "smoke" else kind, p=None, detail=detail)
    row_cells = {r: by_label[r][0] for r in metric_of}
    runs = [run for cell in row_cells.values() for run in cell.runs]
    diffs = differences(ex, runs, reference)
    base["scale"] = scale = _scale_text(diffs, runs)
    gate, why = _gates(claim, checks, row_cells, diffs) if ex.scale != "smoke" else ("", "")
    value_rows = _rows_of([c for c in checks if c.check in LEARNED_EACH])
    # Seeds at chance leave the statistics of final values; a gate's detail shows every seed.
    judged = (
        row_cells if gate else {r: learned_only(c) if r in value_rows else c for r, c in row_cells.items()}
    )
    effect = claim.effect if diffs else None  # a declared small-scale effect stands in for the paper's Δ
    out = combine([CHECKS[c.check](c, judged, ex, claim.alpha, effect) for c in checks], claim.alpha)
    detail = (f"{family} nets: " if family else "") + out.detail
    measured = {**base, "p": out.p, "p_reverse": out.p_reverse, "effect": out.effect}
    if ex.scale == "smoke":
        return Verdict(**measured, kind=SMOKE, detail=detail)
    if gate == "data":
        reason = claim.small_scale_reason or "data: paper"
        why = f"{NOT_COMPARABLE} ({scale})"
        return Verdict(**base, kind=NOT_COMPARABLE, p=None, detail=f"{detail} — {reason}", gate=gate, why=why)
    if gate:
        return Verdict(**base, kind=GATE_KINDS[gate], p=None, detail=detail, gate=gate, why=why)
    if out.underpowered and out.kind != SINGLE:
        why = f"{UNDERPOWERED} ({out.underpowered})"
        return Verdict(**measured, kind=UNDERPOWERED, detail=detail, gate="power", why=why)
    kind = REDUCED if diffs and out.kind == REPRODUCED else out.kind
    if out.kind == SINGLE:
        detail += " — the paper's direction " + ("holds" if out.holds else "does not hold")
    suffix = f" (at reduced scale: {scale})" if diffs and kind != REDUCED else ""
    if claim.small_scale == "analogue" and diffs:
        suffix += (
            f" — an analogue: {claim.small_scale_reason}" if claim.small_scale_reason else " — an analogue"
        )
    return Verdict(**measured, kind=kind, detail=detail + suffix)


def judge(ex: Expected, cells: Sequence[Cell], reference: Reference | None = None) -> list[Verdict]:
    """A verdict per claim of the preset, from the cells that ran (raw p values: with_holm adds Holm's)."""
    return [judge_claim(claim, ex, cells, reference) for claim in ex.claims]
