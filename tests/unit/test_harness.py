"""The test harness itself: what the Makefile's parallel runs rely on."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("harness")
def test_an_xdist_group_keeps_its_tests_on_one_worker(request: pytest.FixtureRequest) -> None:
    """`--dist loadgroup` (the Makefile's XDIST) sends a group's tests to one worker by the `@<group>` suffix
    pytest-xdist adds to their node ids. A pytest that drops the suffix spreads them silently (pytest 9.2,
    pytest-dev/pytest-xdist#1386): the SLURM tests would then share one cluster from two workers."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run under pytest-xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("@harness"), request.node.nodeid
