"""How many seeds make reproduce's second pass gives a `_small` preset: the rule, stated before any pilot.

Every `_small` preset first runs the seeds its sweep lists (3: the pilot). Then each of its claims whose only
stop is the power gate ("underpowered: … about k seeds per row would do", from the pilot's spread) asks for
k; the preset gets the largest k asked, at most its `expected.seeds_max`, never fewer than it already ran.
A claim stopped by another gate (did not learn, still improving, the paper's data) asks for nothing: more
seeds would not make it testable. The power gate's arithmetic lives in runner/analysis/verdicts.py.

    python -m runner.analysis.seeds vgg_depth_small --uri sqlite:///mlflow.db   # "seed=0,1,2,3,4", or nothing
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from runner.analysis.results import (
    claim_rows,
    full_expected,
    load_preset,
    open_store,
    read_sweep,
    small_experiment,
)
from runner.analysis.verdicts import UNDERPOWERED, seeds_needed


def seeds_wanted(asked: Sequence[int | None], ran: int, cap: int | None) -> int:
    """The rule: the largest k the power gate asked for, capped at `cap`, never below `ran`."""
    wanted = max((k for k in asked if k is not None), default=ran)
    return max(ran, min(wanted, cap if cap is not None else ran))


def seeds_for(small: str, uri: str) -> tuple[int, int]:
    """(seeds that ran per row, seeds the preset should have) for `<name>_small` from the store's verdicts."""
    name = small.removesuffix("_small")
    tracker = open_store(uri)
    sweep = read_sweep(tracker, small_experiment(name), full_expected(name).key) if tracker else None
    if sweep is None:
        return 0, 0
    ran = max((len(c.runs) for c in sweep.cells), default=0)
    cap = (load_preset(small).get("expected") or {}).get("seeds_max")
    asked = [
        seeds_needed(row.verdict.why)
        for row in claim_rows(name, sweep)
        if row.verdict is not None and row.verdict.kind == UNDERPOWERED
    ]
    return ran, seeds_wanted(asked, ran, None if cap is None else int(cap))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m runner.analysis.seeds", description=__doc__.split("\n")[0]
    )
    parser.add_argument("preset", help="a _small preset, e.g. vgg_depth_small")
    parser.add_argument("--uri", default="sqlite:///mlflow.db")
    args = parser.parse_args(argv)
    ran, wanted = seeds_for(args.preset, args.uri)
    if wanted > ran:
        print("seed=" + ",".join(str(s) for s in range(wanted)))


if __name__ == "__main__":
    main()
