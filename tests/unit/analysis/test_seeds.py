"""make reproduce's second pass (runner/analysis/seeds.py): the seeds a `_small` preset gets from its pilot."""

from __future__ import annotations

import pytest

from runner.analysis.seeds import seeds_wanted
from runner.analysis.verdicts import MAX_SEEDS, seeds_needed, t_gate


def test_the_power_gate_text_gives_back_the_seeds_it_asked_for() -> None:
    # A t-test at se 1 with 4 df cannot find an expected 1.0; the gate's own text carries k back.
    gate = t_gate(1.0, (1.0, 4.0), lambda k: (2.0 / k**0.5, 2.0 * k - 2), 0.05)
    asked = seeds_needed(gate)
    assert asked is not None and asked > 3
    assert t_gate(1.0, (2.0 / asked**0.5, 2.0 * asked - 2), lambda k: (2.0 / k**0.5, 2.0 * k - 2), 0.05) == ""
    assert t_gate(1.0, (2.0 / (asked - 1) ** 0.5, 2.0 * asked - 4), lambda k: (1.0, 1.0), 0.05) != ""
    assert (
        seeds_needed("underpowered (a: about 4 seeds per row would do; b: about 9 seeds per row would do)")
        == 9
    )
    assert seeds_needed(f"more than {MAX_SEEDS} seeds per row would be needed") == MAX_SEEDS + 1
    assert (
        seeds_needed("not testable at this budget (vgg_b still improving: −13 % over the last quarter)")
        is None
    )


@pytest.mark.parametrize(
    ("asked", "ran", "cap", "wanted"),
    [
        ([5, None, 4], 3, 8, 5),  # the largest k asked
        ([57], 3, 8, 8),  # capped at the preset's seeds_max
        ([], 3, 8, 3),  # nothing asked: no second pass
        ([2], 3, 8, 3),  # never fewer than already ran
        ([6], 3, None, 3),  # no seeds_max: the pilot is all
    ],
)
def test_the_rule_largest_k_asked_capped_never_below_what_ran(
    asked: list[int | None], ran: int, cap: int | None, wanted: int
) -> None:
    assert seeds_wanted(asked, ran, cap) == wanted
