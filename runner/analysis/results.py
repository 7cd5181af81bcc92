"""docs/results.md: every claim of the seven paper presets, judged on the runs of their `_small` presets.

Generated, never hand-written: `make reproduce` runs the `_small` presets and then this module, which reads
the store back through runner/tracking/store.py and judges with runner/analysis/verdicts.py (as runner-report does). Per
paper and preset: each claim of the full preset (`expected:` in runner/conf/experiment/<name>.yaml), the
paper's number or figure, ours (mean ± std (n) per row), the small-scale verdict, the preset's wall time,
its command and its curves (docs/results/<name>_small.png). Claims tied to the paper's data set read
"needs ImageNet" / "needs CIFAR-10" with the command that runs them, plus their small-scale verdict where
they are orderings. A preset that has not run lists its claims as "not run yet": no claim goes missing.
The summary table also replaces the block between the markers in README.md.

    runner-results                                   # ./mlflow.db → docs/results.md, README.md
    runner-results --uri sqlite:///other.db --out /tmp/results.md --readme ''
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from runner.analysis import render
from runner.analysis.report import PRESET_ARTIFACT, _history_metrics, parse_preset, reference, to_run
from runner.analysis.verdicts import (
    JUDGED,
    Cell,
    Check,
    Claim,
    Expected,
    Reference,
    Verdict,
    group_cells,
    judge_claim,
    with_holm,
)
from runner.config import CONF_DIR
from runner.config.datasets import about

EXPERIMENT_DIR = CONF_DIR / "experiment"


def paper_sections() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(paper group, its presets) in the page's order, from each paper preset's own YAML (`expected.paper_group`,
    `expected.page_order`): a new paper preset is one file."""
    placed = []
    for path in EXPERIMENT_DIR.glob("*.yaml"):
        expected = (yaml.safe_load(path.read_text()) or {}).get("expected") or {}
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
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def full_expected(name: str) -> Expected:
    return Expected.parse(load_preset(name)["expected"])


def small_experiment(name: str) -> str:
    """The MLflow experiment of `<name>_small`: its tracking.experiment, else the preset's name."""
    small = f"{name}_small"
    return str((load_preset(small).get("tracking") or {}).get("experiment") or small)


def paper_tied(claim: Claim) -> bool:
    """Only judged on the paper's data set (and protocol): never at small scale."""
    return claim.paper_only


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
    history = _history_metrics(expected)
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


@dataclass
class ClaimRow:
    preset: str
    claim: Claim
    paper: str  # the paper's number or figure
    ours: str  # mean ± std (n) of each row, "—" where it did not run
    verdict: Verdict | None  # at small scale; None: the `_small` preset has not run yet
    needs: str  # tied to the paper's data set: "needs ImageNet: `runner -m +experiment=...`", else ""


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
            )
        )
    return rows


# --- the page -------------------------------------------------------------------------------------------


def fmt_wall(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def short(row: ClaimRow) -> tuple[str, str, str]:
    """The summary's columns: the verdict after Holm (with the raw one where Holm changed it), Δ [interval]
    vs the paper's Δ with both p values, and the gate that stopped the claim with its numbers."""
    v = row.verdict
    if v is None:
        return (row.needs.split(":")[0] if row.needs else NOT_RUN_YET), "—", "—"
    if v.gate == "data":  # a claim tied to the paper's data set: never judged at small scale
        reason = f"data: {row.claim.small_scale or 'untestable'}" + (
            f" ({row.claim.small_scale_reason})" if row.claim.small_scale_reason else ""
        )
        return row.needs.split(":")[0] or v.kind, "—", reason
    kind = f"**{v.after_holm}**" + (f" (before Holm: {v.kind})" if v.after_holm != v.kind else "")
    numbers = v.numbers if v.kind in JUDGED or v.gate == "power" else "—"
    return kind, numbers or "—", f"{v.gate}: {v.why}" if v.gate else "—"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def summary_table(rows: Sequence[ClaimRow]) -> list[str]:
    out = [
        "| preset | claim | verdict | Δ [95 % interval] vs paper; p | stopped by |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = (f"`{r.preset}`", r.claim.text, *short(r))
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    counts: dict[str, int] = {}
    for r in rows:
        kind = r.verdict.after_holm if r.verdict else NOT_RUN_YET
        counts[kind] = counts.get(kind, 0) + 1
    tally = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda x: -x[1]))
    tied = sum(1 for r in rows if r.needs)
    return [
        *out,
        "",
        f"{len(rows)} claims at small scale: {tally} (Holm-adjusted across the page); "
        f"{tied} need the paper's data set.",
    ]


def preset_section(name: str, sweep: Sweep | None, rows: Sequence[ClaimRow], png: str | None) -> list[str]:
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
    out += [
        "| claim | paper | ours: mean ± std (n) | small-scale verdict | paper's data set |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = r.verdict.headline if r.verdict else NOT_RUN_YET
        cells = (r.claim.text, r.paper, r.ours, verdict, r.needs or "—")
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    out.append("")
    out += [
        f"- `{r.claim.id}`{_small_scale(r.claim)}: {r.verdict.detail}"
        for r in rows
        if r.verdict and r.verdict.detail
    ]
    if png:
        out += ["", f"![{small}: training error, test error and training loss vs iteration]({png})"]
    return [*out, ""]


def _small_scale(claim: Claim) -> str:
    """ " (small scale: analogue — plain_deep30 stands in for …)": how the claim can be tested away from the
    paper's data, as its preset declares."""
    if not claim.small_scale:
        return ""
    reason = f" — {claim.small_scale_reason}" if claim.small_scale_reason else ""
    return f" (small scale: {claim.small_scale}{reason})"


def page(uri: str, sections: Sequence[list[str]], rows: Sequence[ClaimRow]) -> str:
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
        "stops a claim before any comparison with its own numbers; the counts use Holm-adjusted p values "
        "across the page. Ours: mean ± sample std (finished seeds) of the final value.",
        "",
        "## Summary",
        "",
        *summary_table(rows),
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


def generate(uri: str, out: Path, readme: Path | None) -> list[ClaimRow]:
    """Write the page (and its PNGs under <out dir>/results/), and the README's summary block."""
    tracker = open_store(uri)
    png_dir = out.parent / "results"
    presets: list[tuple[str, Sweep | None, str | None]] = []
    all_rows: list[ClaimRow] = []
    for name in PRESETS:
        sweep = read_sweep(tracker, small_experiment(name), full_expected(name).key) if tracker else None
        png = None
        if sweep and sweep.cells:
            png_dir.mkdir(parents=True, exist_ok=True)
            curves = full_expected(name).curves or render.CURVES
            render.plot_curves(sweep.cells, png_dir / f"{name}_small.png", f"{name}_small", PNG_DPI, curves)
            png = f"{png_dir.name}/{name}_small.png"
        presets.append((name, sweep, png))
        all_rows += claim_rows(name, sweep)
    # Holm across every claim of the page, before any section is drawn
    held = iter(with_holm([r.verdict for r in all_rows if r.verdict]))
    all_rows = [dataclasses.replace(r, verdict=next(held)) if r.verdict else r for r in all_rows]
    sections = []
    for paper, names in PAPERS:
        sections.append([f"## {paper}", ""])
        for name, sweep, png in (x for x in presets if x[0] in names):
            sections.append(preset_section(name, sweep, [r for r in all_rows if r.preset == name], png))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(uri, sections, all_rows))
    if readme is not None and readme.exists():
        target = Path(os.path.relpath(out.resolve(), readme.resolve().parent)).as_posix()
        link = f"Every claim, with its numbers, curves and commands: [{target}]({target})."
        new = replace_block(readme.read_text(), "\n".join([*summary_table(all_rows), "", link]))
        if new is None:
            print(f"{readme}: no {README_START} … {README_END} block; left as it is", file=sys.stderr)
        else:
            readme.write_text(new)
    return all_rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="runner-results", description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="sqlite:///mlflow.db", help="tracking URI (default: ./mlflow.db)")
    parser.add_argument("--out", default="docs/results.md", help="the page (PNGs go to <its dir>/results/)")
    parser.add_argument(
        "--readme", default="README.md", help="README to update between the markers; '' skips"
    )
    args = parser.parse_args(argv)

    from runner.console import error
    from runner.errors import RunnerError

    try:
        rows = generate(args.uri, Path(args.out), Path(args.readme) if args.readme else None)
    except RunnerError as e:
        error(str(e))
        sys.exit(e.exit_code)
    print(f"{args.out}: {len(rows)} claims, {sum(1 for r in rows if r.verdict)} judged")


if __name__ == "__main__":
    main()
