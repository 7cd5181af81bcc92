"""runner/analysis/budget_curves.py: a claim's Δ between its rows at every epoch of the same runs, with its 95 %
interval, checked against numbers computed by hand; the seeds it counts; the claims that get a curve."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import FillBetweenPolyCollection, LineCollection
from matplotlib.colors import to_rgba
from scipy import stats

from runner.analysis import budget_curves, render
from runner.analysis.budget_curves import Comparison, DeltaCurve, Point
from runner.analysis.verdicts import Cell, Check, Expected, Run

LN10 = math.log(10)
STEPS = (100, 200, 300)


def run(run_id: str, val: list[float], test: float, loss: float = 0.5) -> Run:
    """A finished seed: its validation error at STEPS (and a training error the curve must not read), its
    final test error and training loss."""
    history = {"val_top1_error": list(zip(STEPS, val, strict=True)), "train_loss": [(STEPS[-1], loss)]}
    history["train_error"] = [(s, 0.0) for s in STEPS]
    metrics = {"test_top1_error": test, "train_loss": loss}
    return Run(run_id, "c", "finished", {"dataset.name": "fashion_mnist"}, metrics, history)


def cell(label: str, runs: list[Run]) -> Cell:
    return Cell(label, label, runs)


def expected(numbers: dict[str, float], check: dict) -> tuple[Expected, tuple[Check, ...]]:
    ex = Expected.parse(
        {
            "paper": "p",
            "scale": "full",
            "dataset": "imagenet",
            "protocol": {},
            "key": ["model"],
            "metrics": ["test_top1_error"],
            "numbers": numbers,
            "claims": [{"id": "c", "text": "t", "data": "any", "checks": [check]}],
        }
    )
    return ex, ex.claims[0].checks


def test_the_delta_and_its_welch_interval_at_each_epoch_by_hand() -> None:
    # a: 10, 12, 14 (mean 12, variance 4); b: 16, 18, 20 (mean 18, variance 4) at step 200.
    # Δ = 6; se = √(4/3 + 4/3) = √(8/3); Welch df = (8/3)² / ((4/3)²/2 + (4/3)²/2) = 4.
    a = [run(f"a{i}", [30.0, 10.0 + 2 * i, 9.0], test=20.0 + i) for i in range(3)]
    b = [run(f"b{i}", [31.0, 16.0 + 2 * i, 9.5], test=25.0 + 2 * i) for i in range(3)]
    ex, checks = expected(
        {"a": 30.0, "b": 31.5}, {"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"}
    )

    curve = budget_curves.delta_curve(checks, ex, {"a": cell("a", a), "b": cell("b", b)})

    assert curve is not None and curve.metric == "val_top1_error"
    assert [p.step for p in curve.points] == list(STEPS)
    at = curve.points[1]
    half = stats.t.ppf(0.975, 4) * math.sqrt(8 / 3)  # 2.776 × 1.633 = 4.534
    assert at.delta == pytest.approx(6.0)
    assert (at.lo, at.hi) == pytest.approx((6.0 - half, 6.0 + half))
    assert at.n == (3, 3)
    assert curve.points[0].delta == pytest.approx(1.0) and curve.points[2].delta == pytest.approx(0.5)
    # The last point: the test set, as the verdict reads it. a: 20, 21, 22 (var 1); b: 25, 27, 29 (var 4).
    # Δ = 27 − 21 = 6; se = √(1/3 + 4/3) = √(5/3); df = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 50/17.
    se, df = math.sqrt(5 / 3), (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)
    final = curve.final
    assert final is not None and final.step == 300 and final.delta == pytest.approx(6.0)
    assert (final.lo, final.hi) == pytest.approx(
        (6 - stats.t.ppf(0.975, df) * se, 6 + stats.t.ppf(0.975, df) * se)
    )
    assert curve.comparison.paper == pytest.approx(1.5) and curve.comparison.what == "b − a"


def test_a_trend_ordering_follows_the_slope_and_its_t_interval_by_hand() -> None:
    # Rows at positions 0, 1, 2 hold 1, 2, 3 / 3, 4, 5 / 5, 6, 7 at step 100: slope 2; the residuals −1, 0, 1
    # in each row: SSE = 6, n = 9, s² = 6/7, Sxx = 3 × (1 + 0 + 1) = 6, so se(slope) = √(1/7), df = 7.
    rows = {
        name: cell(name, [run(f"{name}{i}", [base + i, 50.0, 50.0], test=base + i) for i in range(3)])
        for name, base in (("x", 1.0), ("y", 3.0), ("z", 5.0))
    }
    check = {"check": "decreasing", "rows": ["x", "y", "z"], "metric": "test_top1_error", "trend": True}
    ex, checks = expected({"x": 30.0, "y": 29.0, "z": 27.0}, check)

    curve = budget_curves.delta_curve(checks, ex, rows)

    assert curve is not None and curve.comparison.trend
    half = stats.t.ppf(0.975, 7) * math.sqrt(1 / 7)
    at = curve.points[0]
    assert (at.delta, at.lo, at.hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert curve.points[1].delta == pytest.approx(0.0)  # every row at 50: no slope
    assert curve.comparison.paper == pytest.approx(-1.5)  # the paper's numbers 30, 29, 27: slope −1.5


def test_an_ordering_over_several_rows_without_a_trend_compares_the_last_row_with_the_first() -> None:
    # x, y, z hold 1, 2, 3 / 3, 4, 5 / 8, 9, 10 at step 100 (means 2, 4, 9): Δ = 9 − 2 = 7, not y's 4 − 2.
    rows = {
        name: cell(name, [run(f"{name}{i}", [base + i, 50.0, 50.0], test=base + i) for i in range(3)])
        for name, base in (("x", 1.0), ("y", 3.0), ("z", 8.0))
    }
    ex, checks = expected(
        {"x": 30.0, "y": 29.0, "z": 27.0},
        {"check": "decreasing", "rows": ["x", "y", "z"], "metric": "test_top1_error"},
    )

    curve = budget_curves.delta_curve(checks, ex, rows)

    assert curve is not None and not curve.comparison.trend
    assert curve.comparison.rows == ("x", "z") and curve.comparison.what == "z − x"
    assert curve.comparison.paper == pytest.approx(-3.0)  # the paper's 27 − 30
    assert curve.points[0].delta == pytest.approx(7.0) and curve.points[0].n == (3, 3)
    assert curve.final is not None and curve.final.delta == pytest.approx(7.0)


def test_seeds_at_chance_are_left_out_unless_the_learned_gate_stopped_the_claim() -> None:
    a = [run(f"a{i}", [30.0 + i, 10.0 + 2 * i, 9.0 + i], test=20.0 + i) for i in range(3)]
    stuck = run("a3", [90.0, 90.0, 90.0], test=90.0, loss=LN10)  # never left chance
    b = [run(f"b{i}", [31.0 + i, 16.0 + 2 * i, 9.5 + i], test=25.0 + i) for i in range(3)]
    ex, checks = expected({}, {"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"})
    cells = {"a": cell("a", [*a, stuck]), "b": cell("b", b)}

    kept = budget_curves.delta_curve(checks, ex, cells)
    every = budget_curves.delta_curve(checks, ex, cells, gate="learned")

    assert kept is not None and kept.points[1].delta == pytest.approx(6.0) and kept.points[1].n == (3, 3)
    assert every is not None and every.points[1].n == (4, 3)
    assert every.points[1].delta == pytest.approx(18.0 - (10 + 12 + 14 + 90) / 4)


def test_equivalent_reads_first_minus_second_and_train_error_stands_in_without_a_validation_split() -> None:
    def seed(run_id: str, errors: list[float]) -> Run:
        history = {"train_error": list(zip(STEPS, errors, strict=True))}
        return Run(run_id, "c", "finished", {}, {"test_top1_error": errors[-1]}, history)

    first = cell("a", [seed("a0", [5.0, 4.0, 3.0]), seed("a1", [7.0, 6.0, 5.0])])
    second = cell("b", [seed("b0", [1.0, 1.0, 1.0]), seed("b1", [3.0, 3.0, 3.0])])
    check = {"check": "equivalent", "rows": ["a", "b"], "metric": "test_top1_error", "tolerance": 0.5}
    ex, checks = expected({}, check)

    curve = budget_curves.delta_curve(checks, ex, {"a": first, "b": second})

    assert curve is not None and curve.metric == "train_error" and curve.comparison.what == "a − b"
    assert [p.delta for p in curve.points] == pytest.approx([4.0, 3.0, 2.0])


def test_reaches_first_draws_each_rows_median_curve_and_other_claims_draw_nothing(tmp_path: Path) -> None:
    def seed(run_id: str, errors: list[float]) -> Run:
        return Run(run_id, "c", "finished", {}, {}, {"train_error": list(zip(STEPS, errors, strict=True))})

    relu = cell(
        "relu",
        [seed("r0", [50.0, 20.0, 10.0]), seed("r1", [60.0, 30.0, 20.0]), seed("r2", [90.0, 80.0, 70.0])],
    )
    tanh = cell("tanh", [seed("t0", [90.0, 90.0, 89.0]), seed("t1", [90.0, 88.0, 80.0])])
    check = {"check": "reaches_first", "rows": ["relu", "tanh"], "metric": "train_error", "below": 25}
    ex, checks = expected({}, check)
    cells = {"relu": relu, "tanh": tanh}

    curve = budget_curves.threshold_curve(checks, cells)

    assert curve is not None and curve.below == 25 and curve.metric == "train_error"
    assert curve.medians["relu"] == (list(STEPS), [60.0, 30.0, 20.0])
    assert curve.medians["tanh"] == (list(STEPS), [90.0, 89.0, 84.5])
    assert curve.seeds == {"relu": 3, "tanh": 2}
    assert (
        budget_curves.delta_curve(checks, ex, cells) is None
    )  # a time to threshold has no Δ of final values
    png = tmp_path / "curves" / "c.png"
    assert budget_curves.draw(checks, ex, cells, "", png, "t", 50)
    assert png.read_bytes()[:4] == b"\x89PNG"

    one_row, one_check = expected({}, {"check": "converges", "rows": ["relu"], "below_chance": 0.87})
    # only a claim of one reaches_first check has a threshold curve
    assert budget_curves.threshold_curve(one_check, cells) is None
    assert budget_curves.threshold_curve([*checks, *one_check], cells) is None
    assert budget_curves.threshold_curve([*checks, *checks], cells) is None
    assert not budget_curves.draw(one_check, one_row, cells, "", tmp_path / "none.png", "t", 50)
    assert not (tmp_path / "none.png").exists()


def test_no_interval_where_a_row_has_a_single_seed() -> None:
    # Trend: rows 1 / 3 / 5 at positions 0, 1, 2 lie on a line of slope 2; a row of one seed gives no
    # interval (as for two rows, where a single seed has no variance). Two rows: mean(4, 6) − 1 = 4.
    assert budget_curves.delta([[1.0], [3.0], [5.0]], True) == (pytest.approx(2.0), None, None)
    assert budget_curves.delta([[1.0, 2.0], [3.0], [5.0, 6.0]], True)[1:] == (None, None)
    assert budget_curves.delta([[1.0], [4.0, 6.0]], False) == (4.0, None, None)
    assert budget_curves.delta([[1.0, 3.0], [4.0]], False) == (2.0, None, None)


def test_the_epoch_metric_is_the_validation_error_where_any_run_logged_it_else_the_training_error() -> None:
    def seed(run_id: str, history: dict[str, list[tuple[int, float]]]) -> Run:
        return Run(run_id, "c", "finished", {}, {}, history)

    val, train = {"val_top1_error": [(100, 5.0)]}, {"train_error": [(100, 6.0)]}
    one_with_val = {"a": cell("a", [seed("a0", train)]), "b": cell("b", [seed("b0", train | val)])}
    assert budget_curves.epoch_metric(one_with_val) == "val_top1_error"
    assert budget_curves.epoch_metric({"a": cell("a", [seed("a0", train)])}) == "train_error"
    # Nothing logged per epoch (or an empty history): the training error still names the curve's metric.
    assert budget_curves.epoch_metric({"a": cell("a", [seed("a0", {"val_top1_error": []})])}) == "train_error"
    assert budget_curves.epoch_metric({"a": cell("a", [seed("a0", {})])}) == "train_error"
    assert budget_curves.epoch_metric({}) == "train_error"


def test_rows_without_a_finished_seed_give_an_empty_curve_and_draw_nothing(tmp_path: Path) -> None:
    def failed(run_id: str) -> Run:
        history = {"val_top1_error": [(100, 50.0)]}
        metrics = {"test_top1_error": 50.0}
        return Run(run_id, "c", "failed", {"dataset.name": "fashion_mnist"}, metrics, history)

    ex, checks = expected({}, {"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"})
    cells = {"a": cell("a", [failed("a0")]), "b": cell("b", [failed("b0"), failed("b1")])}

    curve = budget_curves.delta_curve(checks, ex, cells)

    assert curve is not None and curve.points == [] and curve.final is None
    assert not budget_curves.draw(checks, ex, cells, "", tmp_path / "c.png", "t", 50)
    assert not (tmp_path / "c.png").exists()
    assert budget_curves.delta_curve(checks, ex, {"a": cells["a"]}) is None  # a row that did not run at all


def test_draw_writes_a_compared_claims_delta_curve_to_its_path(tmp_path: Path) -> None:
    a = [run(f"a{i}", [30.0 + i, 10.0 + 2 * i, 9.0 + i], test=20.0 + i) for i in range(3)]
    b = [run(f"b{i}", [31.0 + i, 16.0 + 2 * i, 9.5 + i], test=25.0 + 2 * i) for i in range(3)]
    ex, checks = expected({}, {"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"})
    png = tmp_path / "curves" / "c.png"

    assert budget_curves.draw(checks, ex, {"a": cell("a", a), "b": cell("b", b)}, "", png, "t", 50)

    assert png.read_bytes()[:4] == b"\x89PNG"


def test_draw_counts_the_seeds_at_chance_where_the_learned_gate_stopped_the_claim(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Every seed of a stayed at chance: the learned gate stopped the claim, and its curve counts every seed
    # (as its line does); under any other gate those seeds are left out, so a has none and nothing is drawn.
    stuck = [run(f"a{i}", [90.0 + i, 90.0 - i, 90.0 + 2 * i], test=90.0 + i, loss=LN10) for i in range(2)]
    b = [run(f"b{i}", [31.0 + i, 16.0 + 2 * i, 9.5 + i], test=25.0 + i) for i in range(2)]
    ex, checks = expected({}, {"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"})
    cells = {"a": cell("a", stuck), "b": cell("b", b)}
    plotted: list[tuple[Any, ...]] = []
    monkeypatch.setattr(budget_curves, "plot_delta", lambda *args: plotted.append(args))

    assert budget_curves.draw(checks, ex, cells, "learned", tmp_path / "learned.png", "t", 50)
    ((curve, path, title, dpi),) = plotted
    assert (path, title, dpi) == (tmp_path / "learned.png", "t", 50)
    assert [p.n for p in curve.points] == [(2, 2)] * 3 and curve.final is not None
    assert [p.delta for p in curve.points] == pytest.approx([31.5 - 90.5, 17.0 - 89.5, 10.0 - 91.0])
    assert not budget_curves.draw(checks, ex, cells, "power", tmp_path / "power.png", "t", 50)
    assert len(plotted) == 1


# --- plot_delta: what the figure holds, read off its Axes (render.save replaced: the figure kept open) ------


Plot = Callable[[DeltaCurve], Any]
Drawn = Callable[[Callable[..., None], Any], Any]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Drawn]:
    """plot(curve, "out/c.png", "ResNet depth", 50) → its Axes; checks it saved that figure there."""
    figures: list[Any] = []

    def draw(plot: Callable[..., None], curve: Any) -> Any:
        saved: list[tuple] = []
        monkeypatch.setattr(render, "save", lambda fig, path, dpi: saved.append((fig, path, dpi)))
        plot(curve, Path("out/c.png"), "ResNet depth", 50)
        ((fig, path, dpi),) = saved
        figures.append(fig)
        assert (path, dpi) == (Path("out/c.png"), 50)
        assert len(fig.axes) == 1
        return fig.axes[0]

    yield draw
    for fig in figures:
        plt.close(fig)


@pytest.fixture
def plotted(drawn: Drawn) -> Plot:
    """plot_delta(curve, "out/c.png", "ResNet depth", 50) → its Axes."""
    return lambda curve: drawn(budget_curves.plot_delta, curve)


def check_of(check: dict) -> Any:
    return expected({}, check)[1][0]


def horizontal_lines(ax: Any) -> dict[float, Any]:
    """axhline's lines (x across the axes, 0 → 1) by their height."""
    return {float(line.get_ydata()[0]): line for line in ax.lines if list(line.get_xdata()) == [0, 1]}


def corners(collection: Any) -> set[tuple[float, float]]:
    return {(float(x), float(y)) for path in collection.get_paths() for x, y in path.vertices}


def test_plot_delta_draws_the_delta_its_band_the_verdicts_final_point_zero_and_the_paper(
    plotted: Plot,
) -> None:
    check = check_of({"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"})
    points = [
        Point(100, 1.0, None, None, (1, 1)),  # a row with one seed: no interval, so outside the band
        Point(200, 2.0, 0.5, 3.5, (2, 2)),
        Point(300, 3.0, 1.0, 6.0, (2, 2)),
    ]
    final = Point(400, 4.0, 2.0, 7.0, (2, 2))  # asymmetric: 2 below, 3 above
    ax = plotted(DeltaCurve(Comparison(check, ("a", "b"), False, 1.5), "val_top1_error", points, final))

    line = ax.lines[0]
    assert line.get_label() == "val_top1_error, mean over seeds" and line.get_marker() == "o"
    assert list(line.get_xdata()) == [100, 200, 300] and list(line.get_ydata()) == [1.0, 2.0, 3.0]

    (band,) = [c for c in ax.collections if isinstance(c, FillBetweenPolyCollection)]
    assert corners(band) == {(200, 0.5), (200, 3.5), (300, 1.0), (300, 6.0)}
    assert band.get_label() == "95 % interval" and band.get_alpha() == pytest.approx(0.2)
    # the band in the curve's own colour, faded
    assert tuple(band.get_facecolor()[0]) == pytest.approx(to_rgba(line.get_color(), 0.2))

    (end,) = ax.containers
    assert end.get_label() == "test_top1_error at the end: the verdict's +4.00"
    marker, caps, (bar,) = end.lines
    assert list(marker.get_xdata()) == [400] and list(marker.get_ydata()) == [4.0]
    assert marker.get_marker() == "D" and to_rgba(marker.get_color()) == to_rgba("C3")
    assert [s.tolist() for s in bar.get_segments()] == [[[400.0, 2.0], [400.0, 7.0]]]  # the interval itself
    assert tuple(bar.get_color()[0]) == pytest.approx(to_rgba("C3"))
    assert sorted(float(c.get_ydata()[0]) for c in caps) == [2.0, 7.0]
    assert [c.get_markersize() for c in caps] == [8.0, 8.0]  # capsize 4 → caps 8 points wide

    lines = horizontal_lines(ax)
    assert sorted(lines) == [0.0, 1.5]
    zero, paper = lines[0.0], lines[1.5]
    assert to_rgba(zero.get_color()) == to_rgba("black") and zero.get_linewidth() == pytest.approx(0.8)
    assert to_rgba(paper.get_color()) == to_rgba("C2") and paper.get_linestyle() == "--"
    assert paper.get_label() == "the paper's +1.50"

    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "val_top1_error, mean over seeds",
        "95 % interval",
        "the paper's +1.50",
        "test_top1_error at the end: the verdict's +4.00",
    ]
    assert {t.get_fontsize() for t in legend.get_texts()} == {7.0}
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "Δ (b − a), %-points"
    assert ax.get_title() == "ResNet depth\nΔ = mean(last row) − mean(first row), 95 % Welch interval"
    assert ax.title.get_fontsize() == 9.0
    grid = [*ax.xaxis.get_gridlines(), *ax.yaxis.get_gridlines()]
    assert all(g.get_visible() for g in grid) and {g.get_alpha() for g in grid} == {0.3}


def test_plot_delta_of_a_trend_labels_the_slope_per_row_and_its_t_interval(plotted: Plot) -> None:
    check = check_of(
        {"check": "decreasing", "rows": ["x", "y", "z"], "metric": "test_top1_error", "trend": True}
    )
    points = [Point(100, -0.5, None, None, (1, 1, 1)), Point(200, -1.25, None, None, (1, 1, 1))]
    ax = plotted(DeltaCurve(Comparison(check, ("x", "y", "z"), True, None), "train_error", points, None))

    assert list(ax.lines[0].get_ydata()) == [-0.5, -1.25]
    # one seed per row: no band; no final point; no paper's number: zero is the only reference line
    assert len(ax.collections) == 0 and ax.containers == []
    assert sorted(horizontal_lines(ax)) == [0.0] and len(ax.lines) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train_error, mean over seeds"]
    assert ax.get_ylabel() == "Δ (slope per row, x → z), %-points per row"
    assert ax.get_title() == "ResNet depth\nΔ = slope of the metric on the row's position, 95 % t interval"


def test_plot_delta_leaves_out_the_band_and_error_bar_where_an_interval_lacks_an_end(plotted: Plot) -> None:
    check = check_of({"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"})
    points = [
        Point(100, 1.0, 0.0, None, (2, 2)),
        Point(200, 2.0, None, 3.0, (2, 2)),
        Point(300, 3.0, 2.5, 3.5, (2, 2)),  # the only point with both ends
    ]
    final = Point(400, -4.0, None, 5.0, (2, 1))
    ax = plotted(DeltaCurve(Comparison(check, ("a", "b"), False, None), "val_top1_error", points, final))

    (band,) = ax.collections  # the band, and no error bar's LineCollection
    assert isinstance(band, FillBetweenPolyCollection)
    assert corners(band) == {(300, 2.5), (300, 3.5)}
    (end,) = ax.containers
    assert not end.has_yerr and end.lines[2] == ()
    assert not any(isinstance(c, LineCollection) for c in ax.collections)
    assert list(end.lines[0].get_ydata()) == [-4.0]
    assert end.get_label() == "test_top1_error at the end: the verdict's -4.00"


def test_plot_delta_shades_the_band_in_the_curves_own_colour(
    monkeypatch: pytest.MonkeyPatch, plotted: Plot
) -> None:
    # The colour cycle of lines and of fills start alike: a line drawn first moves the curve to the next colour,
    # so a band that took the next fill colour instead of the curve's would show.
    figure = render.figure

    def moved_on(columns: int) -> Any:
        fig, axes = figure(columns)
        axes[0][0].plot([], [])
        return fig, axes

    monkeypatch.setattr(render, "figure", moved_on)
    check = check_of({"check": "increasing", "rows": ["a", "b"], "metric": "test_top1_error"})
    points = [Point(100, 1.0, 0.0, 2.0, (2, 2)), Point(200, 2.0, 1.0, 3.0, (2, 2))]
    ax = plotted(DeltaCurve(Comparison(check, ("a", "b"), False, None), "val_top1_error", points, None))

    (line,) = [line for line in ax.lines if line.get_label() == "val_top1_error, mean over seeds"]
    assert to_rgba(line.get_color()) == to_rgba("C1")
    (band,) = ax.collections
    assert tuple(band.get_facecolor()[0]) == pytest.approx(to_rgba("C1", 0.2))


def test_plot_threshold_draws_each_rows_median_and_the_dashed_threshold(drawn: Drawn) -> None:
    medians = {"relu": ([100, 200], [60.0, 30.0]), "tanh": ([100, 200, 300], [90.0, 89.0, 84.5])}
    curve = budget_curves.ThresholdCurve("train_error_interval", 25.0, medians, {"relu": 3, "tanh": 2})

    ax = drawn(budget_curves.plot_threshold, curve)

    relu, tanh = ax.lines[:2]
    assert (list(relu.get_xdata()), list(relu.get_ydata())) == ([100, 200], [60.0, 30.0])
    assert (list(tanh.get_xdata()), list(tanh.get_ydata())) == ([100, 200, 300], [90.0, 89.0, 84.5])
    (threshold,) = horizontal_lines(ax).values()
    assert threshold.get_ydata()[0] == 25.0 and to_rgba(threshold.get_color()) == to_rgba("black")
    assert threshold.get_linestyle() == "--" and threshold.get_linewidth() == pytest.approx(0.8)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "relu, median over 3 seeds",
        "tanh, median over 2 seeds",
        "threshold 25",
    ]
    assert {t.get_fontsize() for t in ax.get_legend().get_texts()} == {7.0}
    # the metric logged every few iterations is named as the metric itself; an error reads in %
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "train_error (%)"
    assert ax.get_title() == "ResNet depth\nwhich row gets below the threshold first"
    assert ax.title.get_fontsize() == 9.0


def test_plot_threshold_of_a_loss_has_no_percent_sign_and_prints_the_threshold_short(drawn: Drawn) -> None:
    curve = budget_curves.ThresholdCurve("train_loss", 0.25, {"a": ([10], [0.5])}, {"a": 1})

    ax = drawn(budget_curves.plot_threshold, curve)

    assert ax.get_ylabel() == "train_loss"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a, median over 1 seeds", "threshold 0.25"]
