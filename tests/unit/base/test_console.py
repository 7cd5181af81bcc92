"""Logs that read well without a terminal (issue 18): SLURM output files, CI logs and `| tee` get plain markdown
tables at their full width, never a cell cut to rich's 80 columns ("plai…"); a terminal keeps rich, whose
cells wrap instead of being cut."""

from __future__ import annotations

import io
import re

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
    uri = "sqlite:///" + "/runs" * 30 + "/mlflow.db"  # a value with no space to break at: folded, not cut
    console.summary("resnet20 — finished", {"name": LONG, "uri": uri})
    out = buffer.getvalue()
    assert "…" not in out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    values = [line.split("│")[-2].strip() for line in plain.splitlines() if line.count("│") == 3]
    assert uri in "".join(values)  # every piece of it, in order
    assert "│" in out  # rich's box drawing: still a rich table
    assert "".join(out.split()).count("".join(LONG.split())[:40]) >= 1


def test_a_markdown_table_pads_columns_to_the_widest_cell_and_escapes_pipes_and_newlines() -> None:
    text = console.markdown_table(["model", "err"], [["a|b", "1\n2"], ["resnet110", "6.43"]])
    assert text == (
        "| model     | err  |\n"
        "|-----------|------|\n"
        "| a\\|b      | 1 2  |\n"
        "| resnet110 | 6.43 |"
    )  # fmt: skip


def test_without_a_terminal_a_table_is_its_title_the_markdown_and_its_caption(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.table("a sweep", ["act", "n"], [["relu", 3]], caption="2 cells")
    assert capsys.readouterr().out == "\na sweep\n\n| act  | n |\n|------|---|\n| relu | 3 |\n\n2 cells\n\n"
    console.table("no caption", ["act"], [["tanh"]])
    assert capsys.readouterr().out == "\nno caption\n\n| act  |\n|------|\n| tanh |\n\n"


def test_without_a_terminal_the_summary_gives_floats_four_significant_digits_and_the_rest_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.summary(
        "resnet20 — finished", {"test_top1_error": 8.751234, "epochs": 3, "augment": "[crop, flip]"}
    )
    assert capsys.readouterr().out == (
        "\nresnet20 — finished\n\n"
        "| metric          | value        |\n"
        "|-----------------|--------------|\n"
        "| test_top1_error | 8.751        |\n"
        "| epochs          | 3            |\n"
        "| augment         | [crop, flip] |\n\n"
    )


def terminal(monkeypatch: pytest.MonkeyPatch, width: int = 80) -> io.StringIO:
    """console.console as a terminal of `width` columns, without colours, writing into the returned buffer."""
    buffer = io.StringIO()
    monkeypatch.setattr(
        console,
        "console",
        Console(file=buffer, force_terminal=True, color_system=None, width=width, highlight=False),
    )
    return buffer


def test_on_a_terminal_the_summary_and_the_table_show_their_titles_and_cells_as_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = terminal(monkeypatch)
    console.summary("resnet20 — finished", {"test_top1_error": 8.751234, "augment": "[crop, flip]"})
    console.table("a sweep", ["act", "n"], [["[relu]", 3]], caption="2 cells")
    out = buffer.getvalue()
    assert "resnet20 — finished" in out and "a sweep" in out and "2 cells" in out
    assert "8.751" in out and "[crop, flip]" in out and "[relu]" in out  # brackets are text, not markup
    assert "metric" not in out  # the summary has no header row on a terminal


def test_an_error_is_one_line_on_stderr_printed_as_text_however_long(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = "pip install 'psycopg[binary]' " + "x" * 150
    console.error(message)
    captured = capsys.readouterr()
    assert captured.err == f"runner: error: {message}\n" and captured.out == ""


def test_info_is_one_line_on_stdout_however_long(capsys: pytest.CaptureFixture[str]) -> None:
    message = "resuming " + "y" * 150
    console.info(message)
    assert capsys.readouterr().out == f"{message}\n"


def test_the_config_tree_shows_groups_with_their_choice_and_leaves_with_their_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = terminal(monkeypatch)
    console.config_tree({"model": {"name": "vgg_a", "width_mult": 0.5}, "seed": 3}, {"model": "vgg_a"})
    lines = [line.strip("│├└─ ") for line in buffer.getvalue().splitlines()]
    assert lines == ["config", "model (vgg_a)", "name: vgg_a", "width_mult: 0.5", "seed: 3"]


def test_the_training_bars_count_epochs_and_steps_and_print_each_epochs_metrics_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = terminal(monkeypatch, width=60)
    monkeypatch.setattr(console.sys.stdout, "isatty", lambda: True)
    with console.TrainProgress(epochs=3, steps_per_epoch=5) as bars:
        epoch, step = bars.progress.tasks
        assert [(t.description, t.total, t.completed, t.fields) for t in (epoch, step)] == [
            ("epoch", 3, 0, {"stats": ""}),
            ("step ", 5, 0, {"stats": ""}),
        ]
        bars.start_epoch(1, step_in_epoch=2)  # a resume mid-epoch: the step bar starts where it left off
        assert (epoch.completed, step.completed) == (1, 2)
        bars.steps(4, loss=0.12345, lr=0.1, images_per_s=1234.5)
        assert step.completed == 4 and step.fields["stats"] == "loss 0.123  lr 0.1  1,234 img/s"
        bars.end_epoch(1, {"val_top1_error": 12.3456, "val_loss": 0.51234, "train_top1_error": 3.21})
        assert epoch.completed == 2
    out = buffer.getvalue()
    assert (
        "epoch 2  val_top1_error 12.35  val_loss 0.5123  train_top1_error 3.21\n" in out
    )  # not wrapped at 60
    assert (
        "4/5" in out and "2/3" in out and " loss 0.123  lr 0.1  1,234 img/s " in out
    )  # the stats as they are
    assert "epoch ━" in out and "step  ━" in out  # each bar is led by its name


def test_without_a_terminal_the_training_bars_are_off_and_only_the_epoch_lines_are_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with console.TrainProgress(epochs=2, steps_per_epoch=5) as bars:
        bars.start_epoch(0, step_in_epoch=0)
        bars.steps(5, loss=1.0, lr=0.1, images_per_s=10.0)
        bars.end_epoch(0, {"val_loss": 1.5})
    assert not bars.enabled
    assert capsys.readouterr().out == "epoch 1  val_loss 1.5\n"


def test_on_a_narrow_terminal_a_long_metric_name_wraps_and_is_never_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = terminal(monkeypatch, width=40)
    key = "final_test_top1_error_of_the_dense_view_" * 2  # 80 characters, no space to break at
    console.summary("resnet20 — finished", {key: 1.5})
    rows = [line.split("│") for line in buffer.getvalue().splitlines() if line.startswith("│")]
    assert "".join(row[1].strip() for row in rows) == key and rows[0][2].strip() == "1.5"


def test_on_a_colour_terminal_the_summarys_metric_names_are_cyan_and_its_values_plain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(
        console, "console", Console(file=buffer, force_terminal=True, color_system="standard", width=80)
    )
    console.summary("resnet20 — finished", {"epochs": 3})
    row = next(line for line in buffer.getvalue().splitlines() if "epochs" in line)
    assert row == "│\x1b[36m \x1b[0m\x1b[36mepochs\x1b[0m\x1b[36m \x1b[0m│ 3 │"  # ANSI 36: cyan
