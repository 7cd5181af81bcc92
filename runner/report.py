"""Sweep report: one row per job, the paper's numbers beside ours, a verdict per claim. (Issue 6.)"""

from __future__ import annotations

import sys
from typing import Any


def sweep_report(tracker: Any, config: Any) -> None:
    """Placeholder until the report lands: lists the children of the parent run."""
    children = tracker.find_runs(
        tracker.client.get_run(tracker.run_id).info.experiment_id, {"mlflow.parentRunId": tracker.run_id}
    )
    from runner import console

    console.info(f"sweep: {len(children)} run(s) under parent {tracker.run_id}; browse them with `make ui`")


def main() -> None:
    print("runner-report: not yet implemented", file=sys.stderr)
    sys.exit(2)
