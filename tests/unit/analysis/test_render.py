"""runner/analysis/render.py on constructed cells and verdicts (no MLflow, no training): the report's table,
markdown, CSV and JSON exactly as a reader gets them, the t-interval the parent's metrics use, and what
curves.png draws (the figure inspected just before it is saved)."""

from __future__ import annotations

import csv
import io
import json
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from runner.analysis import render
from runner.analysis.verdicts import Cell, Effect, Expected, Run, Verdict

PAPER = {"dataset.name": "cifar10", "model.width": 16}  # the paper's protocol the runs are compared with


def run(
    name: str,
    top1: float | None = None,
    top5: float | None = None,
    status: str = "finished",
    wall: float | None = None,
    history: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    **params: str,
) -> Run:
    """A run on the paper's protocol (params as MLflow stores them: text) ending at these test errors."""
    metrics = {k: x for k, x in (("test_top1_error", top1), ("test_top5_error", top5)) if x is not None}
    return Run(
        name,
        "c",
        status,
        {"dataset.name": "cifar10", "model.width": "16", **params},
        metrics,
        history or {},
        wall,
    )


def expected(
    numbers: Mapping[str, tuple[float, ...]],
    scale: str = "full",
    metrics: tuple[str, ...] = ("test_top1_error",),
) -> Expected:
    return Expected("He et al. 2016, Table 6", scale, ("model",), metrics, numbers, PAPER, ())


# --- the numbers ----------------------------------------------------------------------------------------


def test_half_interval_is_half_the_two_sided_t_interval_of_the_mean() -> None:
    # t(0.975, 1) = 12.706, t(0.975, 2) = 4.303, t(0.95, 4) = 2.132 (Student's t table)
    assert render.half_interval(2.0, 2, 0.95) == pytest.approx(12.7062 * 2.0 / math.sqrt(2), rel=1e-4)
    assert render.half_interval(1.0, 3, 0.95) == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert render.half_interval(1.0, 5, 0.90) == pytest.approx(2.1318 / math.sqrt(5), rel=1e-4)
    assert render.half_interval(0.0, 4, 0.95) == 0.0


def test_half_interval_of_one_seed_is_none() -> None:
    assert render.half_interval(0.0, 1, 0.95) is None


def test_seeds_cell_counts_the_lost_seeds_by_status_instead_of_dropping_them() -> None:
    finished = [run("a", 1.0), run("b", 2.0), run("c", 3.0)]
    assert render.seeds_cell(Cell("x", "c", finished)) == "3"
    lost = [run("d", status="diverged"), run("e", status="failed"), run("f", status="diverged")]
    assert render.seeds_cell(Cell("x", "c", finished[:2] + lost)) == "2/5 (2 diverged, 1 failed)"


# --- the paper's columns --------------------------------------------------------------------------------


def test_paper_columns_are_dashes_without_a_preset_or_a_paper_number_for_the_row() -> None:
    cell = Cell("resnet20", "c", [run("a", 8.0)])
    assert render._paper_columns(cell, None, ["test_top1_error"]) == ["—", "—"]
    assert render._paper_columns(cell, expected({"resnet56": (6.97,)}), ["test_top1_error"]) == ["—", "—"]


def test_paper_columns_show_our_mean_minus_the_papers_number_per_metric() -> None:
    """ResNet-20's 8.75 % (He et al. 2016, Table 6) against seeds ending at 9 and 10: Δ +0.75."""
    ex = expected({"resnet20": (8.75, 1.5)}, metrics=("test_top1_error", "test_top5_error"))
    cell = Cell("resnet20", "c", [run("a", 9.0, 1.0), run("b", 10.0, 1.0)])
    assert render._paper_columns(cell, ex, ex.metrics) == ["8.75 / 1.5", "+0.75 / -0.50"]
    no_top5 = Cell("resnet20", "c", [run("a", 9.0), run("b", 10.0)])
    assert render._paper_columns(no_top5, ex, ex.metrics) == ["8.75 / 1.5", "+0.75 / —"]


def test_paper_columns_compare_only_the_metrics_the_paper_gives_a_number_for() -> None:
    ex = expected({"resnet20": (8.75,)}, metrics=("test_top1_error", "test_top5_error"))
    cell = Cell("resnet20", "c", [run("a", 9.0, 1.0)])
    assert render._paper_columns(cell, ex, ex.metrics) == ["8.75", "+0.25"]


def test_paper_columns_say_why_another_protocol_is_not_compared() -> None:
    ex = expected({"resnet20": (8.75,)})
    other = [run("a", 9.0, **{"dataset.name": "fashion_mnist", "model.width": "4"})]
    assert render._paper_columns(Cell("resnet20", "c", other), ex, ex.metrics) == [
        "8.75",
        "not comparable (fashion_mnist, width ÷4)",
    ]


def test_paper_columns_of_a_smoke_preset_show_the_number_but_no_difference() -> None:
    ex = expected({"resnet20": (8.75,)}, scale="smoke")
    other = [run("a", 90.0, **{"dataset.name": "fashion_mnist"})]
    assert render._paper_columns(Cell("resnet20", "c", other), ex, ex.metrics) == ["8.75", "smoke"]


# --- the table and its three files ----------------------------------------------------------------------


def cells() -> list[Cell]:
    """Two rows of a sweep over init: three finished seeds (one without a wall time), and a row whose one
    seed diverged before it logged anything."""
    kaiming = [
        run("k0", 7.0, 1.0, wall=10.0, init="kaiming", seed="0"),
        run("k1", 8.0, 2.0, wall=20.0, init="kaiming", seed="1"),
        run("k2", 9.0, 6.0, init="kaiming", seed="2"),
    ]
    xavier = [run("x0", status="diverged", init="xavier", seed="0")]
    return [Cell("kaiming", "cell-k", kaiming), Cell("xavier", "cell-x", xavier)]


HEADER = ["init", "depth", "seeds"]
HEADER += ["test_top1_error", "±", "min–max", "best", "test_top5_error", "±", "min–max", "best"]
HEADER += ["wall s", "paper", "Δ vs paper"]
ROWS = [
    ["kaiming", "?", "3", "8.00", "1.00", "7.00–9.00", "7.00", "3.00", "2.65", "1.00–6.00", "1.00", "15"],
    ["xavier", "?", "0/1 (1 diverged)", "—", "—", "—", "—", "—", "—", "—", "—", "—"],
]


def test_the_table_without_a_preset_shows_top1_and_top5_per_cell_and_marks_what_is_missing() -> None:
    """A key the runs did not log reads "?", a metric no seed logged "—" in all four columns."""
    header, rows = render.table(cells(), ["init", "depth"], None)
    assert header == HEADER
    assert rows == [[*row, "—", "—"] for row in ROWS]


def test_the_table_with_a_preset_shows_its_metrics_and_the_papers_number() -> None:
    ex = expected({"kaiming": (8.5,)})
    header, rows = render.table(cells(), ["init"], ex)
    assert header == [
        "init",
        "seeds",
        "test_top1_error",
        "±",
        "min–max",
        "best",
        "wall s",
        "paper",
        "Δ vs paper",
    ]
    assert rows == [
        ["kaiming", "3", "8.00", "1.00", "7.00–9.00", "7.00", "15", "8.5", "-0.50"],
        ["xavier", "0/1 (1 diverged)", "—", "—", "—", "—", "—", "—", "—"],
    ]


def test_md_row_keeps_a_pipe_or_a_line_break_inside_a_cell_from_breaking_the_table() -> None:
    assert render.md_row(["a|b", "two\nlines", 3]) == "| a/b | two lines | 3 |"


def verdict(**kw: Any) -> Verdict:
    """A judged claim with its effect, Holm's p and the gate's own headline (`why`)."""
    fields = dict(
        claim="deeper",
        text="deeper plain nets train worse",
        kind="reproduced",
        p=0.001,
        detail="56 layers vs 20",
        scale="width ÷4",
        p_reverse=0.999,
        gate="",
        why="",
        effect=Effect("b − a", 2.0, 1.25, 2.75, 1.5, (5, 5)),
        p_holm=0.002,
        p_reverse_holm=1.0,
    )
    return Verdict(**{**fields, **kw})  # type: ignore[arg-type]


def test_markdown_is_the_title_the_paper_the_table_and_the_verdicts() -> None:
    stalled = verdict(
        claim="x",
        text="xavier | stalls",
        kind="underpowered",
        why="underpowered (n = 2)",
        detail="too few seeds",
    )
    text = render.markdown("toy (3 jobs)", ["a", "b"], [["1", "2"], ["3", "4"]], [stalled], "He et al. 2015")
    assert text == (
        "# toy (3 jobs)\n"
        "\n"
        "Paper: He et al. 2015\n"
        "\n"
        "| a | b |\n"
        "| --- | --- |\n"
        "| 1 | 2 |\n"
        "| 3 | 4 |\n"
        "\n"
        "Mean ± sample std over the finished seeds of each cell; best = the lowest error.\n"
        "\n"
        "## Verdicts\n"
        "\n"
        "- **xavier | stalls**: underpowered (n = 2) — too few seeds\n"
    )


def test_markdown_without_a_paper_or_verdicts_leaves_those_sections_out() -> None:
    assert render.markdown("toy", ["a"], [["1"]], [], "") == (
        "# toy\n\n| a |\n| --- |\n| 1 |\n\n"
        "Mean ± sample std over the finished seeds of each cell; best = the lowest error.\n\n"
    )


def test_csv_adds_each_rows_cell_id_and_its_run_ids() -> None:
    header, rows = render.table(cells(), ["init"], None)
    parsed = list(csv.reader(io.StringIO(render.csv_text(header, rows, cells()))))
    assert parsed[0] == [*header, "cell", "run_ids"]
    assert parsed[1] == [*rows[0], "cell-k", "k0 k1 k2"]
    assert parsed[2] == [*rows[1], "cell-x", "x0"]
    assert len(parsed) == 3


def test_json_holds_each_cells_statistics_seeds_and_runs_and_each_verdict() -> None:
    ex = expected({"kaiming": (8.5,)})
    text = render.json_text("toy", ex, cells(), [verdict()])
    assert text.startswith('{\n  "title": "toy",\n  "paper": ')  # indented: report.json is read by people
    data = json.loads(text)
    assert data["title"] == "toy" and data["paper"] == "He et al. 2016, Table 6"
    kaiming, xavier = data["cells"]
    assert kaiming == {
        "label": "kaiming",
        "cell": "cell-k",
        "seeds": {"finished": 3},
        "stats": {"test_top1_error": {"n": 3, "mean": 8.0, "std": 1.0, "min": 7.0, "max": 9.0, "best": 7.0}},
        "runs": [
            {"run_id": "k0", "status": "finished", "seed": "0"},
            {"run_id": "k1", "status": "finished", "seed": "1"},
            {"run_id": "k2", "status": "finished", "seed": "2"},
        ],
    }
    assert xavier["seeds"] == {"finished": 0, "diverged": 1} and xavier["stats"] == {"test_top1_error": None}
    (v,) = data["verdicts"]
    assert v == {
        "claim": "deeper",
        "text": "deeper plain nets train worse",
        "verdict": "reproduced",
        "headline": verdict().headline,
        "p": 0.001,
        "p_reverse": 0.999,
        "p_holm": 0.002,
        "p_reverse_holm": 1.0,
        "after_holm": "reproduced",
        "gate": "",
        "detail": "56 layers vs 20",
        "scale": "width ÷4",
        "effect": {
            "what": "b − a",
            "delta": 2.0,
            "lo": 1.25,
            "hi": 2.75,
            "paper": 1.5,
            "n": [5, 5],
            "bound": "",
            "paper_text": "",
            "text": "Δ(b − a) +2.00 [+1.25, +2.75] vs paper +1.50",
        },
    }


def test_json_without_a_preset_has_no_paper_and_both_test_errors() -> None:
    gated = verdict(effect=None, kind="not testable: did not learn", gate="learned", why="not testable")
    data = json.loads(render.json_text("toy", None, cells()[:1], [gated]))
    assert data["paper"] is None
    assert set(data["cells"][0]["stats"]) == {"test_top1_error", "test_top5_error"}
    assert data["cells"][0]["stats"]["test_top5_error"]["mean"] == pytest.approx(3.0)
    assert data["verdicts"][0]["effect"] is None and data["verdicts"][0]["gate"] == "learned"
    assert data["verdicts"][0]["headline"] == "not testable"


def test_verdict_line_is_the_claim_in_bold_its_headline_and_detail() -> None:
    line = render.verdict_line(verdict(why="underpowered (n = 2)"))
    assert line == "[bold]deeper plain nets train worse[/]: underpowered (n = 2) — 56 layers vs 20"


# --- the curves -----------------------------------------------------------------------------------------


def test_values_by_step_keeps_the_finite_values_each_run_logged_at_each_step() -> None:
    runs = [
        run("a", history={"train_loss": [(10, 2.0), (20, float("nan"))]}),
        run("b", history={"train_loss": [(10, 1.0), (20, 0.5), (30, float("inf"))]}),
        run("c", history={"train_error": [(10, 50.0)]}),
    ]
    assert render.values_by_step(runs, "train_loss") == {10: [2.0, 1.0], 20: [0.5]}
    assert render.values_by_step(runs, "test_top1_error") == {}


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The figures plot_curves hands to `save`, kept (instead of written) for the test to look at."""
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    monkeypatch.setattr(render, "save", lambda fig, path, dpi: figures.append(fig))
    yield figures
    for fig in figures:
        plt.close(fig)


def history(*points: tuple[int, float]) -> dict[str, list[tuple[int, float]]]:
    """The same points for every default curve."""
    return {metric: list(points) for metric in render.CURVES}


def test_each_curve_is_the_seeds_mean_against_iteration_with_a_min_max_band(drawn: list[Any]) -> None:
    from matplotlib.colors import to_rgb

    runs = [
        run("a", history=history((100, 80.0), (200, 40.0))),
        run("b", history=history((100, 60.0), (200, 30.0))),
        run("c", status="diverged", history=history((100, 70.0))),
    ]
    render.plot_curves([Cell("kaiming", "c", runs)], Path("curves.png"), "toy")
    (fig,) = drawn
    assert fig._suptitle.get_text() == "toy — mean over seeds, band: min–max"
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["train_error (%)", "test_top1_error (%)", "train_loss"]
    assert [ax.get_xlabel() for ax in axes] == ["iteration"] * 3
    for ax in axes:
        (line,) = ax.get_lines()
        assert list(line.get_xdata()) == [100, 200] and list(line.get_ydata()) == [70.0, 35.0]
        assert line.get_label() == "kaiming (2/3 (1 diverged) seeds)"
        (band,) = ax.collections  # the band from the lowest to the highest seed, no outline
        assert band.get_alpha() == 0.2 and list(band.get_linewidth()) == [0.0]
        assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(to_rgb(line.get_color()))
        ys = band.get_paths()[0].vertices[:, 1]
        assert (ys.min(), ys.max()) == (30.0, 80.0)
    legend = axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["kaiming (2/3 (1 diverged) seeds)"]
    assert axes[1].get_legend() is None


def test_a_single_seed_is_drawn_as_a_line_without_a_band(drawn: list[Any]) -> None:
    one = Cell("kaiming", "c", [run("a", history=history((100, 80.0), (200, 40.0)))])
    render.plot_curves([one], Path("curves.png"), "toy")
    for ax in drawn[0].axes:
        assert len(ax.get_lines()) == 1 and list(ax.collections) == []


def test_seeds_with_one_point_each_get_their_spread_as_an_error_bar(drawn: list[Any]) -> None:
    """One epoch, one point per seed: no band to fill, a vertical bar from the lowest to the highest seed."""
    from matplotlib.colors import to_rgba

    runs = [run("a", history=history((390, 50.0))), run("b", history=history((390, 40.0)))]
    other = [run("c", history=history((390, 20.0))), run("d", history=history((390, 30.0)))]
    render.plot_curves([Cell("kaiming", "c", runs), Cell("xavier", "c", other)], Path("curves.png"), "toy")
    for ax in drawn[0].axes:
        bars = ax.collections
        assert [bar.get_alpha() for bar in bars] == [0.5, 0.5]
        assert [[seg.tolist() for seg in bar.get_segments()] for bar in bars] == [
            [[[390.0, 40.0], [390.0, 50.0]]],
            [[[390.0, 20.0], [390.0, 30.0]]],
        ]
        # each bar in its cell's line colour (the second cell's is C1, not the default C0)
        colours = [tuple(bar.get_color()[0]) for bar in bars]
        assert colours == [to_rgba(line.get_color(), 0.5) for line in ax.get_lines()]
        assert colours[1] == to_rgba("C1", 0.5)


def test_the_curves_at_iteration_resolution_are_drawn_where_the_runs_logged_them(drawn: list[Any]) -> None:
    """train_error_interval (every log_every steps) replaces train_error; test error has no finer curve."""
    fine = {"train_error_interval": [(10, 90.0), (20, 80.0), (30, 70.0)], "test_top1_error": [(30, 75.0)]}
    render.plot_curves([Cell("kaiming", "c", [run("a", history=fine)])], Path("curves.png"), "toy")
    err, test, loss = drawn[0].axes
    assert err.get_ylabel() == "train_error_interval (%)"
    assert list(err.get_lines()[0].get_xdata()) == [10, 20, 30]
    assert test.get_ylabel() == "test_top1_error (%)" and list(test.get_lines()[0].get_xdata()) == [30]
    assert loss.get_ylabel() == "train_loss" and loss.get_lines() == []
    assert err.get_legend() is None  # no cell logged train_error itself


def test_the_preset_chooses_the_curves_and_a_cell_without_points_is_left_out(drawn: list[Any]) -> None:
    drawn_cell = Cell("kaiming", "c", [run("a", history={"test_top5_error": [(5, 20.0), (10, 10.0)]})])
    empty = Cell("xavier", "c", [run("b")])
    render.plot_curves([empty, drawn_cell], Path("curves.png"), "toy", curves=("test_top5_error",))
    (ax,) = drawn[0].axes
    assert [line.get_label() for line in ax.get_lines()] == ["kaiming (1 seeds)"]
    assert ax.get_ylabel() == "test_top5_error (%)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["kaiming (1 seeds)"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_save_writes_the_png_at_the_dpi_asked_into_a_new_folder(tmp_path: Path) -> None:
    fig, _ = render.figure(2)  # 5 × 4 inches per column
    path = tmp_path / "docs" / "results" / "curves.png"
    render.save(fig, path, 20)
    assert png_size(path) == (200, 80)
