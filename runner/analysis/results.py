"""docs/results.md: every claim of the seven paper presets, judged on the runs of their `_small` presets.

Generated, never hand-written: `make reproduce` runs the `_small` presets and then this module, which reads
the store back through runner/tracking/store.py and judges with runner/analysis/verdicts.py (as runner-report does).

The summary, for a reader who skims, puts every claim in one of five sections (SECTIONS): evidence for the
paper, evidence against, inconclusive at a powered test, not testable here (with the gate or reason that
stopped it), needs the paper's data (with the command). Each line: the verdict after Holm, Δ [95 % interval]
vs the paper's Δ, both p values (Holm's beside them where it changes them), seeds learned / run per row, the
budget in iterations and the claim's budget curve (runner/analysis/budget_curves.py:
docs/results/<name>_small_<claim id>.png). It also replaces the block between the markers in README.md.

Below it, per paper and preset: each claim of the full preset (`expected:` in
runner/conf/experiment/<name>.yaml), the paper's number or figure, ours (mean ± std (n) per row), the
small-scale verdict, the preset's wall time, its command and its curves (docs/results/<name>_small.png).
A preset that has not run lists its claims as "not run yet": no claim goes missing.

With `--also URI` (`make reproduce-threads`: the same presets with 2 torch threads each) every claim is judged on
that store too: a verdict that differs there is fragile (float rounding moved a seed over an edge), listed under
"not testable here" with both verdicts instead of counting as a finding; one that agrees gets a note.

    runner-results                                   # ./mlflow.db → docs/results.md, README.md
    runner-results --uri sqlite:///other.db --out /tmp/results.md --readme ''
    runner-results --also sqlite:///mlflow-2threads.db   # the stability check across thread counts
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.analysis import budget_curves, render
from runner.analysis.report import PRESET_ARTIFACT, _history_metrics, parse_preset, reference, to_run
from runner.analysis.verdicts import (
    AMBIGUOUS,
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_RUN,
    PAPER_NUMBER_CHECKS,
    REDUCED,
    REPRODUCED,
    Cell,
    Check,
    Claim,
    Expected,
    Reference,
    Verdict,
    fmt_ps,
    group_cells,
    judge_claim,
    left_chance,
    with_holm,
)
from runner.config import CONF_DIR, parse_yaml
from runner.config.datasets import about

EXPERIMENT_DIR = CONF_DIR / "experiment"


def paper_sections() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(paper group, its presets) in the page's order, from each paper preset's own YAML (`expected.paper_group`,
    `expected.page_order`): a new paper preset is one file."""
    placed = []
    for path in EXPERIMENT_DIR.glob("*.yaml"):
        expected = (parse_yaml(path.read_text()) or {}).get("expected") or {}
        if "paper_group" in expected:
            placed.append((int(expected["page_order"]), path.stem, str(expected["paper_group"])))
    sections: dict[str, list[str]] = {}
    for _, name, group in sorted(placed):
        sections.setdefault(group, []).append(name)
    return tuple((group, tuple(names)) for group, names in sections.items())


PAPERS = paper_sections()
PRESETS = tuple(name for _, names in PAPERS for name in names)
NOT_RUN_YET = "not run yet"
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
PNG_DPI = 70  # small PNGs: they are committed


# --- the presets' claims ---------------------------------------------------------------------------------


def load_preset(name: str) -> dict[str, Any]:
    """A preset's YAML as plain data ({} when the file does not exist yet)."""
    path = EXPERIMENT_DIR / f"{name}.yaml"
    return (parse_yaml(path.read_text()) or {}) if path.exists() else {}


def full_expected(name: str) -> Expected:
    return Expected.parse(load_preset(name)["expected"])


def small_experiment(name: str) -> str:
    """The MLflow experiment of `<name>_small`: its tracking.experiment, else the preset's name."""
    small = f"{name}_small"
    return str((load_preset(small).get("tracking") or {}).get("experiment") or small)


def paper_tied(claim: Claim) -> bool:
    """Only judged on the paper's data set (and protocol): never at small scale."""
    return claim.paper_only


def needs_paper_data(claim: Claim) -> bool:
    """A claim about the paper's data itself (`data: paper`, or its numbers): it waits for that data, where a
    `small_scale: untestable` claim of `data: any` is only out of this page's budget."""
    return claim.data == "paper" or any(c.check in PAPER_NUMBER_CHECKS for c in claim.checks)


def rows_of(checks: Sequence[Check]) -> list[str]:
    return list(dict.fromkeys(r for c in checks for r in (*c.rows, *(x for pair in c.pairs for x in pair))))


# --- the store: the sweeps of one `_small` experiment -----------------------------------------------------


@dataclass
class Sweep:
    """The runs of a `_small` preset in the store, over every sweep of it (a resumed or re-run preset
    spreads its jobs over several sweep parents: re-running skips what finished)."""

    experiment: str
    parent_id: str  # the newest sweep parent
    started: str  # its start, UTC
    expected: Expected | None  # the `_small` preset's block, from the newest parent's preset.json
    cells: list[Cell]
    wall_s: float | None  # start → end of each sweep that ran a job shown here, summed
    sessions: int  # how many sweeps that is
    device: str
    command: str  # what the newest sweep ran (its runner.command tag)


def _newest_per_config(children: Sequence[Any]) -> list[Any]:
    """One run per config hash: the newest (a config trained again with resume=never replaces the old)."""
    by_hash: dict[str, Any] = {}
    for run in sorted(children, key=lambda r: r.info.start_time or 0):
        by_hash[run.data.tags.get("runner.config_hash", run.info.run_id)] = run
    return sorted(by_hash.values(), key=lambda r: r.info.start_time or 0)


def _newest_cells(cells: Sequence[Cell], order: Mapping[str, int]) -> list[Cell]:
    """Per row, the cells of the newest sweep that ran it: a config edited since (another cell of the same
    row, from an older sweep) is superseded. Two cells of one row in the same sweep stay (ambiguous)."""
    newest: dict[str, int] = {}
    for cell in cells:
        rank = min(order[r.run_id] for r in cell.runs)  # 0 = the newest sweep
        newest[cell.label] = min(newest.get(cell.label, rank), rank)
    return [c for c in cells if min(order[r.run_id] for r in c.runs) == newest[c.label]]


def _wall(parent: Any, children: Sequence[Any]) -> float | None:
    """A sweep's start → end; a sweep killed before it closed: → its last job's end."""
    ends = [r.info.end_time for r in children if r.info.end_time]
    end = parent.info.end_time or max(ends, default=None)
    return (end - parent.info.start_time) / 1000 if end and parent.info.start_time else None


def read_sweep(tracker: Any, experiment: str, key: Sequence[str]) -> Sweep | None:
    """Every sweep of `experiment` in the store, newest first, gathered into one; None if it never ran."""
    exp_id = tracker.experiment_id_or_none(experiment)
    parents = tracker.find_runs(exp_id, {"runner.sweep": "parent"}) if exp_id else []
    if not parents:
        return None
    newest = parents[0]
    expected, _ = parse_preset(tracker.read_artifact_text(newest.info.run_id, PRESET_ARTIFACT))
    children_of = {p.info.run_id: tracker.child_runs(p) for p in parents}
    order = {c.info.run_id: i for i, p in enumerate(parents) for c in children_of[p.info.run_id]}
    kept = _newest_per_config([c for p in parents for c in children_of[p.info.run_id]])
    # + the per-epoch validation error: the budget curves' Δ over the same runs (budget_curves.EPOCH_METRICS)
    history = list(dict.fromkeys([*_history_metrics(expected), *budget_curves.EPOCH_METRICS]))
    runs = [to_run(tracker, r, history) for r in kept]
    cells = _newest_cells(group_cells(runs, list(expected.key) if expected else key), order)
    shown = {r.run_id for c in cells for r in c.runs}
    walls = [_wall(p, children_of[p.info.run_id]) for p in parents]
    used = [w for p, w in zip(parents, walls, strict=True) if shown & set(_ids(children_of[p.info.run_id]))]
    started = datetime.fromtimestamp(newest.info.start_time / 1000, tz=timezone.utc)
    return Sweep(
        experiment=experiment,
        parent_id=newest.info.run_id,
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        expected=expected,
        cells=cells,
        wall_s=sum(w for w in used if w is not None) if used else None,
        sessions=len(used),
        device=next((r.data.tags.get("runner.device", "") for r in kept), ""),
        command=newest.data.tags.get("runner.command", ""),
    )


def _ids(runs: Sequence[Any]) -> list[str]:
    return [r.info.run_id for r in runs]


def open_store(uri: str) -> Any | None:
    """A Tracker over the store; None when a sqlite store does not exist (nothing ran: no store created)."""
    from runner.tracking.store import Tracker, resolve_uri, store_exists

    resolved = resolve_uri(uri, Path.cwd())
    return Tracker(resolved) if store_exists(resolved) else None


# --- one row per claim ----------------------------------------------------------------------------------


FRAGILE, SAME, ALSO_NOT_RUN = "fragile", "same", "not run"  # Stability.kind


@dataclass(frozen=True)
class Stability:
    """The claim judged again on the second store (`--also`): same verdict, another (fragile), or not run there."""

    kind: str  # FRAGILE | SAME | ALSO_NOT_RUN
    text: str  # "fragile: reproduced with 1 thread, …", "same verdict with 2 threads", "2 threads: not run"


@dataclass
class ClaimRow:
    preset: str
    claim: Claim
    paper: str  # the paper's number or figure
    ours: str  # mean ± std (n) of each row, "—" where it did not run
    verdict: Verdict | None  # at small scale; None: the `_small` preset has not run yet
    needs: str  # tied to the paper's data set: "needs ImageNet: `runner -m +experiment=...`", else ""
    checks: tuple[Check, ...] = ()  # the claim's checks, rows filled in (the family that ran)
    cells: Mapping[str, Cell] = field(default_factory=dict)  # row → its cell, for the rows that ran
    curve: str = ""  # the file name of its budget curve (under docs/results/), "" where none was drawn
    stability: Stability | None = None  # on the second store; None: no `--also`, or nothing to compare

    @property
    def fragile(self) -> bool:
        return self.stability is not None and self.stability.kind == FRAGILE


def judge_small(claim: Claim, full: Expected, sweep: Sweep, ref: Reference | None = None) -> Verdict:
    """The claim on the `_small` runs, as its own preset states it (else as the full preset does); every
    difference from the full preset (`ref`) named. A claim tied to the paper's data set reads not comparable."""
    ex = sweep.expected or full
    own = next((c for c in ex.claims if c.id == claim.id), None)
    if own is None:
        own, ex = claim, full
    try:
        return judge_claim(own, ex, sweep.cells, ref)
    except (ValueError, KeyError) as e:  # a preset's block the verdicts cannot read: say so, keep the page
        return Verdict(claim.id, claim.text, "error", None, f"{type(e).__name__}: {e}")


def _variant(claim: Claim, labels: Mapping[str, Cell]) -> tuple[Check, ...]:
    """The checks of the first family whose rows all ran (as runner.analysis.verdicts picks); else of the family
    whose nets ran at all (plain_deep30 ran: show plain_deep22 as missing, not prelu_deep22)."""

    def score(variant: tuple[str, tuple[Check, ...]]) -> tuple[bool, int]:
        family, checks = variant
        ran = all(r in labels for c in checks for r in c.rows)
        return ran, sum(1 for label in labels if family and label.startswith(family))

    return max(claim.variants(), key=score)[1]  # max keeps the first of equals: the paper's nets


def paper_figure(claim: Claim, ex: Expected, checks: Sequence[Check]) -> str:
    """The figure or table the claim cites (its text's closing parenthesis) and the paper's numbers of its rows."""
    cited = re.search(r"\(([^()]*(?:Fig|Table|Sec)[^()]*)\)\s*$", claim.text)
    numbers = [f"{row} {n:g}" for c in checks for row in c.rows if (n := ex.paper_number(c, row)) is not None]
    parts = [cited.group(1) if cited else "", " · ".join(dict.fromkeys(numbers))]
    return "<br>".join(p for p in parts if p) or "—"


def ours(checks: Sequence[Check], labels: Mapping[str, Cell]) -> str:
    """Per check: its metric, and each row's mean ± std (n) over the finished seeds, lost seeds named."""
    by_metric: dict[str, list[str]] = {}
    for check in checks:
        for row in check.rows:
            cell = labels.get(row)
            stats = cell.stats(check.metric) if cell else None
            lost = "".join(f", {n} {s}" for s, n in cell.unfinished().items()) if cell else ""
            by_metric.setdefault(check.metric, []).append(f"{row} {stats or '—'}{lost}")
    return "<br>".join(f"{m}: " + " · ".join(dict.fromkeys(rows)) for m, rows in by_metric.items())


def full_command(name: str, ex: Expected) -> str:
    dataset = str(ex.protocol["dataset.name"])
    extra = about(dataset).get("full_data_args", "")
    return f"runner -m +experiment={name}" + (f" {extra}" if extra else "")


def claim_rows(name: str, sweep: Sweep | None) -> list[ClaimRow]:
    """Every claim of the full preset `name`, judged on its `_small` sweep where it ran."""
    full = full_expected(name)
    labels: dict[str, Cell] = {}
    for cell in sweep.cells if sweep else ():
        labels.setdefault(cell.label, cell)
    dataset = str(full.protocol["dataset.name"])
    ref = reference(name) if sweep else None
    rows = []
    for claim in full.claims:
        checks = _variant(claim, labels)
        needs = ""
        if paper_tied(claim):
            needs = f"needs {about(dataset).get('display', dataset)}: `{full_command(name, full)}`"
        rows.append(
            ClaimRow(
                preset=name,
                claim=claim,
                paper=paper_figure(claim, full, checks),
                ours=ours(checks, labels) if sweep else "—",
                verdict=judge_small(claim, full, sweep, ref) if sweep else None,
                needs=needs,
                checks=checks,
                cells={r: labels[r] for r in rows_of(checks) if r in labels},
            )
        )
    return rows


# --- the summary: every claim in one of five sections ------------------------------------------------------

FOR, AGAINST, POWERED = "Evidence for the paper", "Evidence against", "Inconclusive at a powered test"
NOT_TESTABLE, NEEDS_DATA = "Not testable here", "Needs the paper's data"
SECTIONS = (FOR, AGAINST, POWERED, NOT_TESTABLE, NEEDS_DATA)  # the summary's order
ABOUT = {
    FOR: "Reproduced, or reproduced at reduced scale: the paper's direction is significant after Holm.",
    AGAINST: "Contradicted: the reverse direction is significant after Holm, at a test that passed every gate.",
    POWERED: "Every gate passed (learned, budget, power), yet neither direction is significant after Holm.",
    NOT_TESTABLE: "A gate, the claim's declared scale or a missing run stopped it before any comparison: "
    "each line says which, with its numbers.",
    NEEDS_DATA: "Claims about the paper's own data (`data: paper`, or its numbers): never judged on other "
    "data; the command runs them on it.",
}
JUDGED_HEADER = ("preset", "claim", "verdict", "Δ [95 % interval] vs paper", "p, reverse p")
JUDGED_HEADER += ("seeds learned / run", "budget", "budget curve")
NEEDS_HEADER = ("preset", "claim", "needs", "why not at small scale")


def section_of(row: ClaimRow) -> str:
    """The claim's summary section, from its verdict after Holm (a gate's kind or a missing run: not testable)."""
    v = row.verdict
    if needs_paper_data(row.claim):
        return NEEDS_DATA
    if v is None or row.fragile:  # a verdict the thread count changes is no finding either way
        return NOT_TESTABLE
    if v.after_holm in (REPRODUCED, REDUCED):
        return FOR
    if v.after_holm == CONTRADICTED:
        return AGAINST
    return POWERED if v.after_holm == INCONCLUSIVE else NOT_TESTABLE  # single run, rows missing, ambiguous


def stopped_by(row: ClaimRow) -> str:
    """Why a claim is not testable here: its declared scale, the gate's own line, or what did not run."""
    v, claim = row.verdict, row.claim
    if claim.small_scale == "untestable":
        return f"small_scale: {declared_scale(claim)}"
    if v is None:
        return f"{NOT_RUN_YET}: `runner -m +experiment={row.preset}_small`"
    if row.stability is not None and row.fragile:
        return row.stability.text
    if v.why:  # learned, budget, power: "not testable: b did not learn (1/3 seeds learned)"
        return v.why
    return f"{v.kind}: {v.detail}" if v.kind in (NOT_RUN, AMBIGUOUS, "error") else v.headline


def p_text(v: Verdict) -> str:
    """Both one-sided p values, Holm's beside them where the adjustment changes them."""
    raw, holm = fmt_ps(v.p, v.p_reverse), fmt_ps(v.p_holm, v.p_reverse_holm)
    return (f"{raw} (Holm: {holm})" if holm and holm != raw else raw) or "—"


def seeds_text(row: ClaimRow) -> str:
    """Per row of the claim: seeds that left chance / seeds run ("vgg_a 3/3 · vgg_b 1/3"), as runner-report
    counts them (a seed without a training loss counts as learned)."""
    if row.verdict is None:
        return "—"
    out = []
    for label in rows_of(row.checks):
        cell = row.cells.get(label)
        learned = sum(left_chance(r) is not False for r in cell.finished) if cell else 0
        out.append(f"{label} {learned}/{len(cell.runs)}" if cell else f"{label} not run")
    return " · ".join(out)


def budget_text(row: ClaimRow) -> str:
    """The budget in iterations, and (with `--also`) the note that the verdict held or did not run there."""
    steps = max((r.iterations for c in row.cells.values() for r in c.runs), default=0)
    note = row.stability.text if row.stability and not row.fragile else ""  # a fragile line says it already
    return " · ".join(x for x in (f"{steps} iterations" if steps else "", note) if x) or "—"


def summary_line(row: ClaimRow, curves: str) -> tuple[str, ...]:
    """One claim as the summary shows it; `curves`: the folder of the PNGs, relative to the page."""
    head = (f"`{row.preset}`", row.claim.text)
    if section_of(row) == NEEDS_DATA:
        return (*head, row.needs or NOT_RUN_YET, row.claim.small_scale_reason or "—")
    v = row.verdict
    if section_of(row) == NOT_TESTABLE:
        verdict = stopped_by(row)
    else:
        verdict = f"**{v.after_holm}**" + (f" (before Holm: {v.kind})" if v.after_holm != v.kind else "")
    effect = str(v.effect) if v and v.effect else "—"  # underpowered: the Δ the power gate read
    curve = f"[curve]({curves}/{row.curve})" if row.curve else "—"
    return (*head, verdict, effect, p_text(v) if v else "—", seeds_text(row), budget_text(row), curve)


def summary(rows: Sequence[ClaimRow], curves: str = "results", level: str = "###") -> list[str]:
    """The tally, then every claim in its section (SECTIONS, in order, each with what puts a claim there)."""
    grouped = {name: [r for r in rows if section_of(r) == name] for name in SECTIONS}
    tally = "; ".join(f"{name.lower()}: {len(group)}" for name, group in grouped.items())
    out = [f"{len(rows)} claims — {tally} (verdicts after Holm-adjusted p values across the page).", ""]
    for name, group in grouped.items():
        out += [f"{level} {name} ({len(group)})", "", ABOUT[name], ""]
        header = NEEDS_HEADER if name == NEEDS_DATA else JUDGED_HEADER
        lines = [summary_line(r, curves) for r in group]
        out += [*_table(header, lines), ""] if lines else ["None.", ""]
    return out


# --- the page -------------------------------------------------------------------------------------------


def fmt_wall(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    return [render.md_row(header), render.md_row(["---"] * len(header)), *map(render.md_row, lines)]


def preset_section(
    name: str, sweep: Sweep | None, rows: Sequence[ClaimRow], png: str | None, curves: str = "results"
) -> list[str]:
    small = f"{name}_small"
    out = [f"### `{name}` — {full_expected(name).paper}", ""]
    if sweep is None:
        out += [f"Not run yet: `runner -m +experiment={small}` (or `make reproduce PRESETS={small}`).", ""]
    else:
        jobs = sum(len(c.runs) for c in sweep.cells)
        sessions = f" over {sweep.sessions} sweeps" if sweep.sessions > 1 else ""
        ran = f"runner -m +experiment={small}"
        if sweep.command and sweep.command != ran:  # overrides on the command line: say so
            ran += f"` (the newest sweep ran `{sweep.command}`)"
        else:
            ran += "`"
        out += [
            f"Command: `{ran} · wall time {fmt_wall(sweep.wall_s)}{sessions} · "
            f"{jobs} jobs in {len(sweep.cells)} cells on {sweep.device or '?'} · "
            f"newest sweep {sweep.started} (parent run `{sweep.parent_id}`)",
            "",
        ]
    header = ("claim", "paper", "ours: mean ± std (n)", "small-scale verdict", "paper's data set")
    lines = []
    for r in rows:
        verdict = r.verdict.headline if r.verdict else NOT_RUN_YET
        verdict += f"<br>{r.stability.text}" if r.stability else ""
        verdict += f"<br>[budget curve]({curves}/{r.curve})" if r.curve else ""
        lines.append((r.claim.text, r.paper, r.ours, verdict, r.needs or "—"))
    out += [*_table(header, lines), ""]
    out += [
        f"- `{r.claim.id}`"
        + (f" (small scale: {declared_scale(r.claim)})" if r.claim.small_scale else "")
        + f": {r.verdict.detail}"
        for r in rows
        if r.verdict and r.verdict.detail
    ]
    if png:
        out += ["", f"![{small}: training error, test error and training loss vs iteration]({png})"]
    return [*out, ""]


def declared_scale(claim: Claim) -> str:
    """ "analogue — plain_deep30 stands in for …": how the claim can be tested away from the paper's data, as
    its preset declares ("" where it does not)."""
    reason = f" — {claim.small_scale_reason}" if claim.small_scale_reason else ""
    return f"{claim.small_scale}{reason}" if claim.small_scale else ""


def stability_rule(also: str | None) -> str:
    """The intro's sentence on verdicts that change with the thread count."""
    if also is None:
        return (
            "Stability across thread counts is not checked on this page (`make reproduce-threads` does: a "
            "verdict that changes with the thread count reads fragile, not a finding)."
        )
    return (
        f"Every claim is also judged on the same presets in `{also}` (another torch thread count: "
        "`make reproduce-threads`); a claim whose verdict after Holm differs there is **fragile** — float "
        "rounding moved a seed over an edge — and is listed under not testable here with both verdicts, "
        "not counted as a finding."
    )


def page(uri: str, sections: Sequence[list[str]], rows: Sequence[ClaimRow], also: str | None = None) -> str:
    head = [
        "<!-- Generated by runner/analysis/results.py; do not edit by hand. Regenerate: make reproduce "
        "(or runner-results alone to re-read the store). -->",
        "# Results: the papers' claims at small scale",
        "",
        "**Generated, not hand-written**: `make reproduce` runs every `<name>_small` preset (resuming what "
        "already ran) and then `runner-results`, which reads the newest sweeps in the MLflow store "
        f"(`{uri}`) and writes this page and the summary in README.md.",
        "",
        "Every claim of the seven paper presets (`expected.claims` in `runner/conf/experiment/<name>.yaml`) "
        "is judged by runner/analysis/verdicts.py on the runs of `<name>_small` (Fashion-MNIST, reduced width and "
        "budget: see each preset's comment). Claims tied to the paper's data set name it and the command "
        "that runs them; they are never judged on other data. A verdict is reproduced only when the paper's "
        "direction is significant, contradicted only when the reverse is, and a gate (learned, budget, power) "
        "stops a claim before any comparison with its own numbers; the sections use Holm-adjusted p values "
        "across the page. Ours: mean ± sample std (finished seeds) of the final value. A claim's budget "
        "curve follows its Δ over the epochs of the same runs (validation error where the runs held out "
        "images, else training error), its last point the verdict's Δ on the test set.",
        "",
        stability_rule(also),
        "",
        "## Summary",
        "",
        *summary(rows),
        "",
    ]
    text = "\n".join(head + [line for s in sections for line in s]).rstrip() + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)  # one blank line between blocks


def replace_block(text: str, block: str) -> str | None:
    """`text` with the part between the results markers replaced; None when the markers are missing."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return None
    return text[: start + len(README_START)] + "\n" + block + "\n" + text[end:]


def draw_preset(name: str, sweep: Sweep | None, png_dir: Path) -> str | None:
    """The preset's curves (<png_dir>/<name>_small.png); its path relative to the page, None without runs."""
    if not (sweep and sweep.cells):
        return None
    png_dir.mkdir(parents=True, exist_ok=True)
    curves = full_expected(name).curves or render.CURVES
    render.plot_curves(sweep.cells, png_dir / f"{name}_small.png", f"{name}_small", PNG_DPI, curves)
    return f"{png_dir.name}/{name}_small.png"


def draw_budget_curves(rows: Sequence[ClaimRow], png_dir: Path) -> list[ClaimRow]:
    """The budget curve of each claim judged on runs (not tied to the paper's data), where it compares rows
    or times them to a threshold; each row with its PNG's name (<preset>_small_<claim id>.png)."""
    out = []
    for r in rows:
        name = f"{r.preset}_small_{r.claim.id}.png"
        title = f"{r.preset}_small · {r.claim.id}"
        drawn = (
            r.verdict is not None
            and not paper_tied(r.claim)
            and budget_curves.draw(
                r.checks, full_expected(r.preset), r.cells, r.verdict.gate, png_dir / name, title, PNG_DPI
            )
        )
        out.append(dataclasses.replace(r, curve=name) if drawn else r)
    return out


def write_readme(readme: Path, out: Path, png_dir: Path, rows: Sequence[ClaimRow]) -> None:
    """The summary between README's markers, its links relative to README (it sits under a ### heading)."""
    base = readme.resolve().parent
    target = Path(os.path.relpath(out.resolve(), base)).as_posix()
    curves = Path(os.path.relpath(png_dir.resolve(), base)).as_posix()
    link = f"Every claim, with its numbers, curves and commands: [{target}]({target})."
    new = replace_block(readme.read_text(), "\n".join([*summary(rows, curves, "####"), link]))
    if new is None:
        print(f"{readme}: no {README_START} … {README_END} block; left as it is", file=sys.stderr)
    else:
        readme.write_text(new)


PresetSweeps = list[tuple[str, Sweep | None]]  # each paper preset with its `_small` sweep (None: never ran)


def read_presets(uri: str) -> PresetSweeps:
    """Every paper preset's `_small` sweep in the store; all None where the store does not exist."""
    tracker = open_store(uri)
    return [
        (name, read_sweep(tracker, small_experiment(name), full_expected(name).key) if tracker else None)
        for name in PRESETS
    ]


def judged_rows(presets: PresetSweeps) -> list[ClaimRow]:
    """Every claim of the page, Holm-adjusted across all of them before any section is drawn."""
    rows = [row for name, sweep in presets for row in claim_rows(name, sweep)]
    held = iter(with_holm([r.verdict for r in rows if r.verdict]))
    return [dataclasses.replace(r, verdict=next(held)) if r.verdict else r for r in rows]


# --- stability: the same presets on a second store, with another thread count (--also) -------------------


def threads_of(presets: PresetSweeps) -> str:
    """ "1 thread", "2 threads": the torch threads every run of the store logged (`trainer.threads`); "" where
    none did or they differ."""
    counts = {r.params.get("trainer.threads") for _, s in presets if s for c in s.cells for r in c.runs}
    n = counts.pop() if len(counts) == 1 else None
    return f"{n} thread{'' if n == '1' else 's'}" if n and n.isdigit() else ""


def store_labels(uri: str, presets: PresetSweeps, also: str, others: PresetSweeps) -> tuple[str, str]:
    """How the lines name the two stores: by their runs' thread count; by the store where a count is unknown
    or the same in both (the verdicts then differ for another reason, which the line must not hide)."""
    here, there = threads_of(presets), threads_of(others)
    if here and there and here != there:
        return here, there
    return store_name(uri), store_name(also)


def store_name(uri: str) -> str:
    """ "`mlflow.db`": a sqlite store by its file name (a server's URI by its last part)."""
    return f"`{uri.rstrip('/').rsplit('/', 1)[-1] or uri}`"


def _with(label: str) -> str:
    return f"with {label}" if label[0].isdigit() else f"in {label}"


def stability(v: Verdict, other: Verdict | None, here: str, there: str) -> Stability:
    """The verdict after Holm (what the page counts) on both stores: the same, another (fragile), or none."""
    if other is None or other.kind == NOT_RUN:
        return Stability(ALSO_NOT_RUN, f"{there}: not run")
    if other.after_holm != v.after_holm:
        return Stability(FRAGILE, f"fragile: {v.after_holm} {_with(here)}, {other.after_holm} {_with(there)}")
    return Stability(SAME, f"same verdict {_with(there)}")


def compare_stores(
    rows: Sequence[ClaimRow], others: Sequence[ClaimRow], here: str, there: str
) -> list[ClaimRow]:
    """Each judged row with its stability against the same claim on the second store. Not compared: claims
    of the paper's data (never judged here) and rows that did not run here (nothing to hold or change)."""
    out = []
    for row, other in zip(rows, others, strict=True):
        v = row.verdict
        if v is None or v.kind == NOT_RUN or needs_paper_data(row.claim):
            out.append(row)
        else:
            out.append(dataclasses.replace(row, stability=stability(v, other.verdict, here, there)))
    return out


def generate(uri: str, out: Path, readme: Path | None, also: str | None = None) -> list[ClaimRow]:
    """Write the page (and its PNGs under <out dir>/results/), and the README's summary block; with `also`,
    every verdict checked against the same claim on that store."""
    png_dir = out.parent / "results"
    presets = read_presets(uri)
    all_rows = judged_rows(presets)
    if also is not None:
        others = read_presets(also)
        all_rows = compare_stores(all_rows, judged_rows(others), *store_labels(uri, presets, also, others))
    all_rows = draw_budget_curves(all_rows, png_dir)
    sections = []
    for paper, names in PAPERS:
        sections.append([f"## {paper}", ""])
        for name, sweep in (x for x in presets if x[0] in names):
            png = draw_preset(name, sweep, png_dir)
            sections.append(preset_section(name, sweep, [r for r in all_rows if r.preset == name], png))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(uri, sections, all_rows, also))
    if readme is not None and readme.exists():
        write_readme(readme, out, png_dir, all_rows)
    return all_rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="runner-results", description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="sqlite:///mlflow.db", help="tracking URI (default: ./mlflow.db)")
    parser.add_argument("--out", default="docs/results.md", help="the page (PNGs go to <its dir>/results/)")
    parser.add_argument(
        "--readme", default="README.md", help="README to update between the markers; '' skips"
    )
    parser.add_argument(
        "--also",
        metavar="URI",
        help="a second store of the same presets (another thread count: make reproduce-threads); a verdict "
        "that differs there reads fragile",
    )
    args = parser.parse_args(argv)

    from runner.console import error
    from runner.errors import RunnerError

    try:
        rows = generate(args.uri, Path(args.out), Path(args.readme) if args.readme else None, args.also)
    except RunnerError as e:
        error(str(e))
        sys.exit(e.exit_code)
    fragile = f", {sum(r.fragile for r in rows)} fragile" if args.also else ""
    print(f"{args.out}: {len(rows)} claims, {sum(1 for r in rows if r.verdict)} judged{fragile}")


if __name__ == "__main__":
    main()
