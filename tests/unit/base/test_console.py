"""Logs that read well without a terminal (issue 18): SLURM output files, CI logs and `| tee` get plain markdown
tables at their full width, never a cell cut to rich's 80 columns ("plai…"); a terminal keeps rich, whose
cells wrap instead of being cut."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from runner import console

LONG = "plain_deep30-xavier_he-width=16-a-cell-far-wider-than-eighty-columns-of-a-slurm-log-" * 2
HEADER = ["model", "init", "seeds", "test_top1_error", "paper", "verdict"]
ROWS = [
    [LONG, "xavier_he", "3/3", "87.5 ± 0.0 (3)", "n/a", "smoke: pipeline only"],
    ["plain|pipe", "k", "1", "2", "", ""],
]


def test_without_a_terminal_tables_are_markdown_with_every_cell_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.table("a sweep", HEADER, ROWS, caption="He et al. 2015b")
    console.summary("resnet20 — finished", {"test_top1_error": 10.7912, "name": LONG})
    out = capsys.readouterr().out
    assert "…" not in out and out.count(LONG) == 2
    lines = out.splitlines()
    assert "| model" in out and any(line.startswith("|---") for line in lines)
    assert "plain\\|pipe" in out  # a pipe inside a cell does not split it
    rows = [line for line in lines if line.startswith("| ")]
    assert len({len(line) for line in rows[:3]}) == 1  # padded columns: rows line up in a log
    assert "| test_top1_error | 10.79" in out and "He et al. 2015b" in out


def test_on_a_terminal_a_narrow_table_wraps_its_cells_and_cuts_none(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(console, "console", Console(file=buffer, force_terminal=True, width=80))
    console.table("a sweep", HEADER, ROWS)
    console.summary("resnet20 — finished", {"name": LONG})
    out = buffer.getvalue()
    assert "…" not in out
    assert "│" in out  # rich's box drawing: still a rich table
    assert "".join(out.split()).count("".join(LONG.split())[:40]) >= 1
