"""The tracker a job and its loop are typed against (RunLog) is the Tracker's own interface: every method it
names exists on Tracker with the same parameters, so the helper process, which serves Tracker's methods by
name, serves all of them."""

from __future__ import annotations

import inspect

from runner.tracking.store import RunLog, Tracker


def protocol_methods() -> list[str]:
    return [name for name, value in vars(RunLog).items() if not name.startswith("_") and callable(value)]


def test_every_runlog_method_is_a_tracker_method_with_the_same_parameters() -> None:
    names = protocol_methods()
    assert {"start", "log_metrics", "log_series", "end", "system_metrics"} <= set(names)
    for name in names:
        wanted = list(inspect.signature(getattr(RunLog, name)).parameters)
        assert list(inspect.signature(getattr(Tracker, name)).parameters) == wanted, name
