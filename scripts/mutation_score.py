"""The mutation score per module after `mutmut run` (make mutants): killed / (total − equivalent).

Reads `mutmut results --all true` ("<module>.x…__mutmut_<n>: <status>") and tests/mutants-equivalent.md, whose
table lists, by name, each survivor that cannot change behaviour and why. Prints one row per module, the
survivors that are neither killed nor listed, and exits 1 if any module's score is under --min (default 90 %).
With --sample, only the mutants it names count (the sample scripts/mutation_sample.py drew), and each row adds
the exact (Clopper-Pearson) 95 % interval of the module's score over all its mutants.
A listed mutant that mutmut now kills is reported too: its reason was wrong, or a test now tells it apart.

    python scripts/mutation_score.py [--min 90] [--results FILE] [--sample FILE]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tests" / "mutants-equivalent.md"
KILLED = {"killed", "timeout"}  # a mutant that hangs the tests is detected, as mutmut counts it
RESULT = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+?)\s*$")


def module_of(name: str) -> str:
    """runner.train.schedule.xǁPlateauǁepoch_end__mutmut_3 → runner.train.schedule; runner.models.layers.x__kaiming__mutmut_1 → runner.models.layers."""
    return name.split(".x", 1)[0] if ".x" in name else name.rsplit(".", 1)[0]


CUDA_HEADING = "## Told apart only on a CUDA device"


def equivalents(path: Path = EQUIVALENT) -> dict[str, str]:
    """The mutant names in the file's table rows (the first `code` span of each row) → "equivalent", or "cuda"
    for the rows under CUDA_HEADING."""
    if not path.exists():
        return {}
    names, kind = {}, "equivalent"
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            kind = "cuda" if line.strip() == CUDA_HEADING else "equivalent"
        found = re.match(r"^\|\s*`([^`]+__mutmut_\d+)`", line)
        if found:
            names[found.group(1)] = kind
    return names


def interval(killed: int, judged: int) -> tuple[float, float]:
    """The exact 95 % interval of a score of killed / judged, in %."""
    if not judged:
        return 100.0, 100.0
    low, high = binomtest(killed, judged).proportion_ci(confidence_level=0.95, method="exact")
    return 100.0 * low, 100.0 * high


def score(lines: list[str], equivalent: dict[str, str], minimum: float, only: set[str] | None = None) -> int:
    results = {m["name"]: m["status"] for m in map(RESULT.match, lines) if m}
    if only is not None:
        results = {name: status for name, status in results.items() if name in only}
    if not results:
        print("mutation_score: no mutmut results (run `make mutants` first)", file=sys.stderr)
        return 1
    total, killed, listed = Counter(), Counter(), Counter()
    survivors, cuda = [], 0
    for name, status in sorted(results.items()):
        module = module_of(name)
        total[module] += 1
        if status in KILLED:
            killed[module] += 1
            if name in equivalent:
                print(f"listed as equivalent but killed: {name}")
        elif name in equivalent:
            listed[module] += 1
            cuda += equivalent[name] == "cuda"
        else:
            survivors.append(f"{name}: {status}")
    print(
        f"{'module':32} {'killed':>7} {'total':>6} {'equiv.':>6} {'score':>7}"
        + ("   95 % interval" if only else "")
    )
    failing = []
    for module in sorted(total):
        judged = total[module] - listed[module]
        pct = 100.0 * killed[module] / judged if judged else 100.0
        row = f"{module:32} {killed[module]:7d} {total[module]:6d} {listed[module]:6d} {pct:6.1f}%"
        if only:  # a sample: how far the module's score over all its mutants may lie
            row += "   {:5.1f}–{:5.1f}".format(*interval(killed[module], judged))
        print(row)
        if pct < minimum:
            failing.append(module)
    all_judged = sum(total.values()) - sum(listed.values())
    print(f"{'all':32} {sum(killed.values()):7d} {sum(total.values()):6d} {sum(listed.values()):6d} "
          f"{100.0 * sum(killed.values()) / max(all_judged, 1):6.1f}%")  # fmt: skip
    print(f"listed: {sum(listed.values()) - cuda} equivalent, {cuda} told apart only on a CUDA device")
    if survivors:
        print(f"\n{len(survivors)} survivors neither killed nor listed in {EQUIVALENT.relative_to(ROOT)}:")
        print("\n".join(survivors))
    if failing:
        print(f"\nunder {minimum:g} %: {', '.join(failing)}")
    return 1 if failing else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--min", type=float, default=90.0, help="the lowest score a module may have (%%)")
    parser.add_argument("--results", type=Path, help="a saved `mutmut results --all true` (default: run it)")
    parser.add_argument("--sample", type=Path, help="score only the mutants this file names, one a line")
    args = parser.parse_args()
    if args.results:
        lines = args.results.read_text().splitlines()
    else:
        mutmut = Path(sys.executable).with_name("mutmut")
        done = subprocess.run(
            [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, cwd=ROOT
        )
        lines = done.stdout.splitlines()
    only = set(args.sample.read_text().split()) if args.sample else None
    return score(lines, equivalents(), args.min, only)


if __name__ == "__main__":
    sys.exit(main())
