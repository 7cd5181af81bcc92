"""make reproduce's second pass (runner/analysis/seeds.py): the seeds a `_small` preset gets from its pilot."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from runner.analysis import seeds
from runner.analysis.seeds import seeds_wanted
from runner.analysis.verdicts import MAX_SEEDS, UNDERPOWERED, seeds_needed, t_gate


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


# --- seeds_for over a fake store: the calls into runner.analysis.results replaced, each recorded ---------


def row(kind: str | None, why: str = "") -> SimpleNamespace:
    """A claim row as seeds_for reads it: its verdict's kind and gate text, or no verdict (not run)."""
    return SimpleNamespace(verdict=None if kind is None else SimpleNamespace(kind=kind, why=why))


def asks(k: int) -> str:
    return f"underpowered (a: about {k} seeds per row would do)"


def swept(*runs_per_cell: int) -> SimpleNamespace:
    return SimpleNamespace(cells=[SimpleNamespace(runs=[object()] * n) for n in runs_per_cell])


class Store:
    """Stands in for the store and the presets: what seeds_for asked, and what it gets back."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        *,
        sweep: Any = None,
        preset: dict | None = None,
        rows: Sequence[SimpleNamespace] = (),
        tracker: Any = "tracker",
    ) -> None:
        self.calls: list[tuple] = []
        self.sweep, self.rows = sweep, list(rows)

        def record(name: str, result: Any):
            def call(*args: Any) -> Any:
                self.calls.append((name, *args))
                return result

            return call

        monkeypatch.setattr(seeds, "open_store", record("open_store", tracker))
        monkeypatch.setattr(seeds, "small_experiment", lambda name: f"{name}_small (mlflow)")
        monkeypatch.setattr(seeds, "full_expected", lambda name: SimpleNamespace(key=(f"{name}.key",)))
        monkeypatch.setattr(seeds, "read_sweep", record("read_sweep", sweep))
        monkeypatch.setattr(seeds, "load_preset", record("load_preset", {} if preset is None else preset))
        monkeypatch.setattr(seeds, "claim_rows", record("claim_rows", self.rows))


def test_seeds_for_gives_nothing_when_no_store_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(monkeypatch, tracker=None)

    assert seeds.seeds_for("vgg_depth_small", "sqlite:///x.db") == (0, 0)
    assert store.calls == [("open_store", "sqlite:///x.db")]  # no store: nothing read from it


def test_seeds_for_gives_nothing_when_the_small_preset_never_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(
        monkeypatch, sweep=None, preset={"expected": {"seeds_max": 8}}, rows=[row(UNDERPOWERED, asks(5))]
    )

    assert seeds.seeds_for("vgg_depth_small", "sqlite:///x.db") == (0, 0)
    # the store's experiment and key come from the full preset's name, "_small" stripped
    assert store.calls == [
        ("open_store", "sqlite:///x.db"),
        ("read_sweep", "tracker", "vgg_depth_small (mlflow)", ("vgg_depth.key",)),
    ]


def test_seeds_for_takes_the_largest_k_the_power_gate_asked_up_to_seeds_max(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweep = swept(3, 2, 3)  # a row lost a seed: the pilot is the most any row ran
    rows = [
        row(None),  # not run yet: asks nothing
        row("not learned", asks(7)),  # stopped by another gate: its k does not count
        row(UNDERPOWERED, asks(5)),
        row(UNDERPOWERED, asks(4)),
        row(UNDERPOWERED, "underpowered"),  # no k in the text
    ]
    store = Store(monkeypatch, sweep=sweep, preset={"expected": {"seeds_max": 8}}, rows=rows)

    assert seeds.seeds_for("vgg_depth_small", "sqlite:///m.db") == (3, 5)
    assert ("load_preset", "vgg_depth_small") in store.calls  # the cap is the _small preset's own
    assert ("claim_rows", "vgg_depth", sweep) in store.calls


def test_seeds_for_caps_what_was_asked_at_the_presets_seeds_max(monkeypatch: pytest.MonkeyPatch) -> None:
    Store(
        monkeypatch,
        sweep=swept(3, 3),
        preset={"expected": {"seeds_max": "8"}},  # YAML may give a string: read as a number
        rows=[row(UNDERPOWERED, asks(57))],
    )

    assert seeds.seeds_for("vgg_depth_small", "u") == (3, 8)


@pytest.mark.parametrize(
    "preset",
    [{}, {"expected": None}, {"expected": {"metrics": ["test_top1_error"]}}],
    ids=["no file", "empty expected", "no seeds_max"],
)
def test_seeds_for_keeps_the_pilot_when_the_preset_sets_no_seeds_max(
    monkeypatch: pytest.MonkeyPatch, preset: dict
) -> None:
    Store(monkeypatch, sweep=swept(3, 3), preset=preset, rows=[row(UNDERPOWERED, asks(6))])

    assert seeds.seeds_for("vgg_depth_small", "u") == (3, 3)


def test_seeds_for_a_sweep_with_no_cells_ran_no_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    Store(monkeypatch, sweep=swept(), preset={"expected": {"seeds_max": 8}}, rows=[row(None)])

    assert seeds.seeds_for("vgg_depth_small", "u") == (0, 0)


def test_seeds_for_never_asks_for_fewer_seeds_than_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    Store(
        monkeypatch, sweep=swept(4), preset={"expected": {"seeds_max": 8}}, rows=[row(UNDERPOWERED, asks(2))]
    )

    assert seeds.seeds_for("vgg_depth_small", "u") == (4, 4)


# --- main: the line make reproduce reads ------------------------------------------------------------------


def fake_seeds_for(monkeypatch: pytest.MonkeyPatch, result: tuple[int, int]) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []

    def seeds_for(small: str, uri: str) -> tuple[int, int]:
        asked.append((small, uri))
        return result

    monkeypatch.setattr(seeds, "seeds_for", seeds_for)
    return asked


def test_main_prints_the_seed_override_when_more_seeds_are_wanted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = fake_seeds_for(monkeypatch, (3, 5))
    monkeypatch.setattr(sys, "argv", ["seeds", "other_small"])  # main must read its argv, not the process's

    seeds.main(["vgg_depth_small"])

    assert capsys.readouterr() == ("seed=0,1,2,3,4\n", "")
    assert asked == [("vgg_depth_small", "sqlite:///mlflow.db")]  # the default store


def test_main_reads_the_store_given_by_uri(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = fake_seeds_for(monkeypatch, (1, 2))

    seeds.main(["vgg_depth_small", "--uri", "sqlite:///other.db"])

    assert capsys.readouterr().out == "seed=0,1\n"
    assert asked == [("vgg_depth_small", "sqlite:///other.db")]


@pytest.mark.parametrize("result", [(3, 3), (0, 0), (4, 3)])
def test_main_prints_nothing_when_the_pilot_is_enough(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], result: tuple[int, int]
) -> None:
    fake_seeds_for(monkeypatch, result)

    seeds.main(["vgg_depth_small"])

    assert capsys.readouterr() == ("", "")  # make reproduce skips the second pass on an empty line


def test_main_help_names_the_module_the_rule_and_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        seeds.main(["--help"])

    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m runner.analysis.seeds ")
    text = " ".join(out.split())  # argparse wraps to the terminal
    # the description: the docstring's first line only
    assert (
        "How many seeds make reproduce's second pass gives a `_small` preset: the rule, stated before any pilot."
        in text
    )
    assert "Every `_small` preset" not in text
    assert "preset a _small preset, e.g. vgg_depth_small" in text
    assert "--uri URI" in text


def test_main_without_a_preset_exits_with_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = fake_seeds_for(monkeypatch, (3, 5))

    with pytest.raises(SystemExit) as exit_:
        seeds.main([])

    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: python -m runner.analysis.seeds ")
    assert "the following arguments are required: preset" in captured.err
    assert asked == []
