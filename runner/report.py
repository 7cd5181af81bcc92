"""The sweep report: one row per job with the paper's number beside ours, and a verdict per claim.

Everything is read back from MLflow (the children of a sweep's parent run), so the report made at the end
of a sweep and the one made later by `runner-report <experiment or parent run id>` are the same. The
preset's `expected:` block (paper numbers and claims) and the swept keys were stored on the parent when
the sweep started (runner/sweep.py). Outputs, all logged on the parent: report.md, report.csv,
curves.png, and a tag `runner.verdict.<claim id>` per claim.

A claim is a list of checks (CHECKS below) on named rows; a row is named by its values of `expected.key`
joined by "/" (e.g. `plain_deep30/kaiming`). Verdicts:
  reproduced | not reproduced | different data set: not comparable | not run | inconclusive
A claim marked `data: paper` holds only on the paper's data set; `data: any` (orderings, convergence)
is checked on whatever data set ran, and the verdict says which.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over 10 classes: a net that learned nothing
PRESET_ARTIFACT = "preset.json"
CURVES = ("train_error", "test_top1_error", "train_loss")  # the papers' figures: error vs iteration
VERDICT_TAG = "runner.verdict."


@dataclass
class Job:
    """One child run, as the report needs it."""

    run_id: str
    label: str  # its values of expected.key, joined by "/"
    swept: dict[str, str]
    status: str  # finished | diverged | failed | killed | running
    metrics: dict[str, float]  # the latest value of each metric
    wall_s: float | None
    dataset: str
    history: Callable[[str], list[tuple[int, float]]] = field(repr=False, default=lambda key: [])

    def final(self, key: str) -> float | None:
        value = self.metrics.get(key)
        return value if value is not None and math.isfinite(value) else None


@dataclass
class Verdict:
    claim: str
    text: str
    verdict: str
    detail: str


# --- checks: each takes the claim's rows (in the order given) and returns (holds, what was measured) ---


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _ordered(jobs: Sequence[Job], spec: Mapping[str, Any], rising: bool) -> tuple[bool, str]:
    metric = spec.get("metric", "test_top1_error")
    values = [job.final(metric) for job in jobs]
    if any(v is None for v in values):
        return False, f"{metric} missing"
    holds = values[-1] > values[0] if rising else values[-1] < values[0]
    return holds, f"{metric}: " + " → ".join(
        f"{j.label} {_fmt(v)}" for j, v in zip(jobs, values, strict=True)
    )


def check_increasing(jobs: Sequence[Job], spec: Mapping[str, Any]) -> tuple[bool, str]:
    """The metric of the last row is higher than that of the first (e.g. error grows with depth)."""
    return _ordered(jobs, spec, rising=True)


def check_decreasing(jobs: Sequence[Job], spec: Mapping[str, Any]) -> tuple[bool, str]:
    """The metric of the last row is lower than that of the first."""
    return _ordered(jobs, spec, rising=False)


def check_converges(jobs: Sequence[Job], spec: Mapping[str, Any]) -> tuple[bool, str]:
    """Every row's final training loss is clearly below chance (default: below 2.0, chance ln 10 ≈ 2.30)."""
    below = float(spec.get("below", 2.0))
    parts, holds = [], True
    for job in jobs:
        curve = job.history("train_loss")
        last = curve[-1][1] if curve else None
        holds = holds and last is not None and last < below
        parts.append(f"{job.label} train loss {_fmt(curve[0][1] if curve else None)} → {_fmt(last)}")
    return holds, "; ".join(parts) + f" (converged: < {below:g})"


def check_stalls(jobs: Sequence[Job], spec: Mapping[str, Any]) -> tuple[bool, str]:
    """Every row's training loss stays at chance: never below ln 10 − `within` (default 0.05)."""
    floor = CHANCE_LOSS - float(spec.get("within", 0.05))
    parts, holds = [], True
    for job in jobs:
        curve = job.history("train_loss")
        lowest = min((v for _, v in curve), default=None)
        holds = holds and lowest is not None and lowest >= floor
        parts.append(
            f"{job.label} train loss {_fmt(curve[0][1] if curve else None)} → {_fmt(curve[-1][1] if curve else None)}"
        )
    return holds, "; ".join(parts) + f" (stalled: never < {floor:.2f})"


def check_reaches_first(jobs: Sequence[Job], spec: Mapping[str, Any]) -> tuple[bool, str]:
    """The first row's `metric` falls below `below` at an earlier iteration than the second row's (or the
    second never gets there); the detail gives the ratio of the two iterations."""
    metric, below = spec.get("metric", "train_error"), float(spec["below"])
    steps = [next((s for s, v in job.history(metric) if v < below), None) for job in jobs[:2]]
    first, second = steps
    holds = first is not None and (second is None or first < second)
    ratio = f" ({second / first:.1f}× sooner)" if first and second else ""
    reached = [
        f"{j.label} at {'never' if s is None else f'iteration {s}'}"
        for j, s in zip(jobs, steps, strict=False)
    ]
    return holds, f"{metric} < {below:g}: " + ", ".join(reached) + ratio


def check_matches(
    jobs: Sequence[Job], spec: Mapping[str, Any], paper: Mapping[str, list[float]]
) -> tuple[bool, str]:
    """Each row's `metric` is within `tolerance` (%-points) of the paper's number."""
    metric, tolerance = spec.get("metric", "test_top1_error"), float(spec.get("tolerance", 0.5))
    parts, holds = [], True
    for job in jobs:
        ours, theirs = job.final(metric), (paper.get(job.label) or [None])[0]
        holds = holds and ours is not None and theirs is not None and abs(ours - theirs) <= tolerance
        parts.append(f"{job.label} {_fmt(ours)} vs {_fmt(theirs)}")
    return holds, "; ".join(parts) + f" (within ±{tolerance:g})"


CHECKS: dict[str, Callable[..., tuple[bool, str]]] = {
    "increasing": check_increasing,
    "decreasing": check_decreasing,
    "converges": check_converges,
    "stalls": check_stalls,
    "reaches_first": check_reaches_first,
    "matches": check_matches,
}


def paper_numbers(expected: Mapping[str, Any]) -> dict[str, list[float]]:
    """`numbers: {resnet20: 8.75, ...}` or `{prelu_14/relu: [33.82, 13.34]}` → label → list."""
    out = {}
    for label, value in (expected.get("numbers") or {}).items():
        out[str(label)] = [float(v) for v in value] if isinstance(value, list) else [float(value)]
    return out


def judge(expected: Mapping[str, Any], jobs: Sequence[Job]) -> list[Verdict]:
    """A verdict per claim of the preset, from the jobs that ran."""
    by_label: dict[str, Job] = {}
    for job in jobs:  # several jobs with one label (e.g. a seed sweep): the first finished one counts
        if job.label not in by_label or (
            by_label[job.label].status != "finished" and job.status == "finished"
        ):
            by_label[job.label] = job
    datasets = sorted({job.dataset for job in jobs})
    paper_data = str(expected.get("dataset", ""))
    same_data = bool(paper_data) and datasets == [paper_data]
    numbers = paper_numbers(expected)
    verdicts = []
    for claim in expected.get("claims") or []:
        cid, text = str(claim["id"]), str(claim.get("text", claim["id"]))
        if claim.get("data", "paper") == "paper" and not same_data:
            verdicts.append(
                Verdict(
                    cid,
                    text,
                    "different data set: not comparable",
                    f"the paper's claim is on {paper_data}; this sweep ran on {', '.join(datasets)}",
                )
            )
            continue
        results, problem = [], ""
        for spec in claim["checks"]:
            rows = [str(r) for r in spec["rows"]]
            missing = [r for r in rows if r not in by_label]
            unfinished = [
                f"{r} {by_label[r].status}"
                for r in rows
                if r in by_label and by_label[r].status != "finished"
            ]
            if missing or unfinished:
                problem = f"not run: {', '.join(missing)}" if missing else f"{', '.join(unfinished)}"
                break
            fn = CHECKS[spec["check"]]
            args = (numbers,) if spec["check"] == "matches" else ()
            results.append(fn([by_label[r] for r in rows], spec, *args))
        if problem:
            verdict = "not run" if problem.startswith("not run") else "inconclusive"
            verdicts.append(Verdict(cid, text, verdict, problem))
            continue
        holds = all(ok for ok, _ in results)
        detail = "; ".join(d for _, d in results)
        if not same_data:
            detail += f" (on {', '.join(datasets)}; the paper used {paper_data or 'another data set'})"
        verdicts.append(Verdict(cid, text, "reproduced" if holds else "not reproduced", detail))
    return verdicts


# --- reading a sweep back from MLflow ------------------------------------------------------------------


def load_preset(client: Any, parent_id: str) -> dict[str, Any]:
    """The preset.json stored on the parent at the start of the sweep ({} if the sweep had none)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(parent_id, PRESET_ARTIFACT, tmp)
        except Exception:  # a sweep started by another tool, or before presets were stored
            return {}
        return json.loads(Path(path).read_text())


def load_jobs(client: Any, parent: Any, preset: Mapping[str, Any]) -> list[Job]:
    """The parent's children, oldest first."""
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=5000,
    )
    sweep_keys = list(preset.get("sweep_keys") or [])
    key = list((preset.get("expected") or {}).get("key") or sweep_keys)
    jobs = []
    for run in runs:
        params, tags = run.data.params, run.data.tags
        info = run.info
        status = tags.get("runner.status") or info.status.lower()
        wall = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None

        def history(metric: str, run_id: str = info.run_id) -> list[tuple[int, float]]:
            return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))

        jobs.append(
            Job(
                run_id=info.run_id,
                label="/".join(params.get(k, "?") for k in key),
                swept={k: params.get(k, "?") for k in sweep_keys},
                status=status,
                metrics=dict(run.data.metrics),
                wall_s=wall,
                dataset=params.get("dataset.name", params.get("dataset", "?")),
                history=history,
            )
        )
    return jobs


# --- the table ---------------------------------------------------------------------------------------


def table_rows(
    expected: Mapping[str, Any], jobs: Sequence[Job], sweep_keys: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    numbers, paper_data = paper_numbers(expected), str(expected.get("dataset", ""))
    metrics = list(expected.get("metrics") or ["test_top1_error"])
    header = [
        *sweep_keys,
        "best val err",
        "test top-1",
        "test top-5",
        "epochs",
        "wall s",
        "status",
        "paper",
        "Δ vs paper",
    ]
    rows = []
    for job in jobs:
        best = job.final("best_monitored_error")
        paper = numbers.get(job.label)
        if paper is None:
            paper_cell, diff_cell = "—", "—"
        else:
            paper_cell = " / ".join(f"{v:.2f}" for v in paper)
            if job.dataset != paper_data:
                diff_cell = f"not comparable ({paper_data})"
            else:
                ours = [job.final(m) for m in metrics]
                diff_cell = " / ".join(
                    "—" if o is None else f"{o - p:+.2f}" for o, p in zip(ours, paper, strict=False)
                )
        epochs = job.final("epoch")
        rows.append(
            [
                *(job.swept[k] for k in sweep_keys),
                _fmt(best),
                _fmt(job.final("test_top1_error")),
                _fmt(job.final("test_top5_error")),
                "—" if epochs is None else str(int(epochs)),
                "—" if job.wall_s is None else f"{job.wall_s:.0f}",
                job.status,
                paper_cell,
                diff_cell,
            ]
        )
    return header, rows


def markdown(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], verdicts: Sequence[Verdict], paper: str
) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"

    out = [
        f"# {title}",
        "",
        f"Paper: {paper}" if paper else "",
        "",
        line(header),
        line(["---"] * len(header)),
    ]
    out += [line(r) for r in rows]
    out += ["", "## Verdicts", ""]
    out += [f"- **{v.text}**: {v.verdict} — {v.detail}" for v in verdicts]
    return "\n".join(out) + "\n"


def to_csv(header: Sequence[str], rows: Sequence[Sequence[str]], jobs: Sequence[Job]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*header, "run_id"])
    for row, job in zip(rows, jobs, strict=True):
        writer.writerow([*row, job.run_id])
    return buffer.getvalue()


def plot_curves(jobs: Sequence[Job], path: Path, title: str) -> None:
    """Training error, test error and training loss vs iteration, one line per job (the papers' figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 4), squeeze=False)
    for ax, metric in zip(axes[0], CURVES, strict=True):
        for job in jobs:
            curve = job.history(metric)
            if curve:
                ax.plot(
                    [s for s, _ in curve],
                    [v for _, v in curve],
                    marker=".",
                    label=f"{job.label} ({job.status})",
                )
        ax.set_xlabel("iteration")
        ax.set_ylabel(metric + (" (%)" if "error" in metric else ""))
        ax.grid(alpha=0.3)
    if any(job.history(CURVES[0]) for job in jobs):
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- the whole report ----------------------------------------------------------------------------------


def report(tracker: Any, parent_id: str) -> list[Verdict]:
    """Read the sweep under `parent_id`, print the table and verdicts, log them on the parent."""
    from runner import console

    client = tracker.client
    parent = client.get_run(parent_id)
    preset = load_preset(client, parent_id)
    expected = preset.get("expected") or {}
    jobs = load_jobs(client, parent, preset)
    sweep_keys = list(preset.get("sweep_keys") or [])
    title = f"{parent.info.run_name or 'sweep'} ({len(jobs)} jobs, parent run {parent_id})"
    header, rows = table_rows(expected, jobs, sweep_keys)
    verdicts = judge(expected, jobs)
    paper = str(expected.get("paper", ""))
    console.table(title, header, rows, caption=paper)
    for v in verdicts:
        console.info(f"[bold]{v.text}[/]: {v.verdict} — {v.detail}")

    tracker.run_id = parent_id
    tracker.log_text(markdown(title, header, rows, verdicts, paper), "report.md")
    tracker.log_text(to_csv(header, rows, jobs), "report.csv")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "curves.png"
        plot_curves(jobs, png, parent.info.run_name or "sweep")
        tracker.log_file(png)
    tags = {VERDICT_TAG + re.sub(r"[^\w.-]", "_", v.claim): v.verdict for v in verdicts}
    tags["runner.jobs"] = str(len(jobs))
    tracker.set_tags(tags)
    return verdicts


def sweep_report(tracker: Any, config: Any) -> list[Verdict]:
    """Called by runner.sweep at the end of a multirun, with the parent's tracker."""
    return report(tracker, tracker.run_id)


def find_parent(client: Any, target: str) -> str | None:
    """A parent run id as given, or the newest sweep parent of the experiment named `target`."""
    exp = client.get_experiment_by_name(target)
    if exp is not None:
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string="tags.`runner.sweep` = 'parent'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None
    try:
        return client.get_run(target).info.run_id
    except Exception:
        return None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="runner-report", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="an MLflow experiment name (its newest sweep) or a parent run id")
    parser.add_argument("--uri", default="sqlite:///mlflow.db", help="tracking URI (default: ./mlflow.db)")
    args = parser.parse_args(argv)

    from runner.console import error
    from runner.errors import RunnerError
    from runner.tracking import Tracker, resolve_uri

    uri = resolve_uri(args.uri, Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        error(f"--uri {args.uri}: no MLflow store at {uri[len('sqlite:///') :]}")
        sys.exit(2)
    try:
        tracker = Tracker(uri)
        parent_id = find_parent(tracker.client, args.target)
        if parent_id is None:
            error(f"{args.target}: neither an experiment with a sweep nor a run id in {uri}")
            sys.exit(2)
        report(tracker, parent_id)
    except RunnerError as e:
        error(str(e))
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
