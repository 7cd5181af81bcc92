"""The verdict logic on constructed cells (runner/analysis/verdicts.py): no training, no MLflow."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from runner.analysis import verdicts as v
from runner.config import parse_yaml

EXPERIMENTS = Path(__file__).resolve().parents[3] / "runner" / "conf" / "experiment"
PAPER = {"dataset.name": "cifar10", "model.width": 16, "trainer.max_steps": 64000}
SMALL = {"dataset.name": "fashion_mnist", "model.width": 1, "trainer.max_steps": 160}


def spread(mean: float, std: float, n: int) -> list[float]:
    """n values with exactly this mean and sample std (ddof 1)."""
    if n == 1:
        return [mean]
    z = np.linspace(-1, 1, n)
    return list(mean + std * z / z.std(ddof=1))


def cell(label: str, values: Sequence[float], params: dict | None = None, lost: Sequence[str] = ()) -> v.Cell:
    """A cell whose finished seeds end at `values` of test_top1_error (and whose other seeds `lost`)."""
    params = {**PAPER, **(params or {}), "model": label}
    runs = [
        v.Run(f"{label}-{i}", label, "finished", {**params, "seed": str(i)}, {"test_top1_error": x})
        for i, x in enumerate(values)
    ]
    runs += [v.Run(f"{label}-x{i}", label, status, params, {}) for i, status in enumerate(lost)]
    return v.Cell(label, label, runs)


def expected(claims: list[dict], scale: str = "full", numbers: dict | None = None) -> v.Expected:
    return v.Expected.parse(
        {
            "paper": "a paper",
            "dataset": PAPER["dataset.name"],
            "scale": scale,
            "key": ["model"],
            "metrics": ["test_top1_error"],
            "numbers": numbers or {},
            "protocol": {k: x for k, x in PAPER.items() if k != "dataset.name"},
            "claims": claims,
        }
    )


def ordering(rows: list[str], check: str = "increasing", data: str = "any") -> dict:
    return {
        "id": "c",
        "text": "t",
        "data": data,
        "checks": [{"check": check, "metric": "test_top1_error", "rows": rows}],
    }


def verdict(claim: dict, *cells: v.Cell, **kw: object) -> v.Verdict:
    (out,) = v.judge(expected([claim], **kw), cells)
    return out


def test_a_clear_difference_over_five_seeds_is_reproduced_with_its_p_value() -> None:
    out = verdict(ordering(["a", "b"]), cell("a", spread(10, 0.5, 5)), cell("b", spread(12, 0.5, 5)))
    assert out.kind == v.REPRODUCED and out.p == pytest.approx(1.1e-4, rel=0.05)
    # Welch: Δ 2, se √(0.25/5 · 2) = 0.316 on 8 degrees of freedom, t(0.975, 8) = 2.306: ± 0.73
    assert out.headline == (
        "reproduced (Δ(b − a) +2.00 [+1.27, +2.73] vs paper —; p = 0.00011, reverse p = 1; n = 5 + 5)"
    )


def test_a_small_difference_over_three_noisy_seeds_is_inconclusive() -> None:
    out = verdict(ordering(["a", "b"]), cell("a", spread(10, 1, 3)), cell("b", spread(10.2, 1, 3)))
    assert out.kind == v.INCONCLUSIVE and 0.3 < out.p < 0.5 and out.p_reverse == pytest.approx(1 - out.p)
    assert out.headline.startswith(
        "inconclusive (Δ(b − a) +0.20 [-2.07, +2.47] vs paper —; p = 0.41, reverse p = 0.59"
    )


def test_the_opposite_direction_significant_is_contradicted() -> None:
    out = verdict(ordering(["a", "b"]), cell("a", spread(12, 0.5, 5)), cell("b", spread(10, 0.5, 5)))
    assert out.kind == v.CONTRADICTED and out.p > 0.999 and out.p_reverse == pytest.approx(1.1335837e-4)


def test_one_seed_per_row_reads_single_run_never_reproduced() -> None:
    out = verdict(ordering(["a", "b"]), cell("a", [10]), cell("b", [20]))
    assert out.kind == v.SINGLE and out.p is None and "direction holds" in out.detail
    out = verdict(ordering(["a", "b"]), cell("a", [10]), cell("b", spread(20, 1, 5)))
    assert out.kind == v.SINGLE


def test_the_middle_row_out_of_order_is_contradicted() -> None:
    cells = cell("a", spread(10, 0.3, 5)), cell("b", spread(14, 0.3, 5)), cell("c", spread(12, 0.3, 5))
    out = verdict(ordering(["a", "b", "c"]), *cells)
    # a < b holds, b < c is reversed significantly (after Bonferroni over the 2 steps): the first and last rows
    # alone would pass
    assert out.kind == v.CONTRADICTED and out.effect.what == "c − b" and out.effect.delta == pytest.approx(-2)
    assert verdict(ordering(["a", "c"]), cells[0], cells[2]).kind == v.REPRODUCED


def test_decreasing_and_explicit_pairs() -> None:
    cells = cell("a", spread(14, 0.3, 4)), cell("b", spread(12, 0.3, 4)), cell("c", spread(13, 0.3, 4))
    assert verdict(ordering(["a", "b"], "decreasing"), *cells[:2]).kind == v.REPRODUCED
    claim = ordering(["a", "b", "c"], "decreasing")
    claim["checks"][0]["pairs"] = [["a", "b"], ["a", "c"]]  # only these steps: b vs c is not claimed
    assert verdict(claim, *cells).kind == v.REPRODUCED


def test_constant_rows_take_the_exact_test_whose_floor_is_one_over_the_splits() -> None:
    """3 constant seeds against 3 (every ReLU seed at iteration 234, every tanh seed censored): the t-test
    degenerates; the exact permutation test's best is 1 split of C(6, 3) = 20, p = 0.05, never 0, so the
    power gate stops it; 4 against 4: 1/70."""
    out = verdict(ordering(["a", "b"]), cell("a", [10, 10, 10]), cell("b", [11, 11, 11]))
    assert (out.kind, out.p, out.p_reverse) == (v.UNDERPOWERED, pytest.approx(0.05), pytest.approx(1.0))
    assert out.headline == (
        "underpowered (a < b: an exact test of 3 + 3 seeds cannot go below p = 0.05;"
        " about 4 seeds per row would do)"
    )
    four = verdict(ordering(["a", "b"]), cell("a", [10] * 4), cell("b", [11] * 4))
    assert (four.kind, four.p) == (v.REPRODUCED, pytest.approx(1 / 70))
    assert (four.effect.lo, four.effect.hi) == (1.0, 1.0)  # no spread: the interval is the difference itself
    same = verdict(ordering(["a", "b"]), cell("a", [10] * 4), cell("b", [10] * 4))
    assert (same.kind, same.p, same.p_reverse) == (v.INCONCLUSIVE, 1.0, 1.0)  # no difference: neither way


def test_a_smoke_preset_never_reads_reproduced() -> None:
    a, b = cell("a", spread(10, 0.5, 5), SMALL), cell("b", spread(12, 0.5, 5), SMALL)
    out = verdict(ordering(["a", "b"]), a, b, scale="smoke")
    assert out.kind == v.SMOKE and "reproduced" not in out.headline
    assert verdict(ordering(["a", "z"]), a, scale="smoke").kind == v.SMOKE  # even with a row missing


def test_a_protocol_difference_is_named_in_the_verdict() -> None:
    a, b = cell("a", spread(10, 0.5, 5), SMALL), cell("b", spread(12, 0.5, 5), SMALL)
    out = verdict(ordering(["a", "b"]), a, b)
    assert out.kind == v.REDUCED
    assert "fashion_mnist" in out.headline and "width ÷16" in out.headline
    assert "max_steps 160 (paper 64000)" in out.headline
    out = verdict(ordering(["a", "b"], data="paper"), a, b)
    assert out.kind == v.NOT_COMPARABLE and "width ÷16" in out.headline


EQUIVALENCE = {  # "no difference beyond ±0.5" between rows a and b
    "id": "lrn",
    "text": "t",
    "data": "any",
    "checks": [{"check": "equivalent", "metric": "test_top1_error", "tolerance": 0.5, "rows": ["a", "b"]}],
}


def test_equivalence_inside_and_outside_its_tolerance() -> None:
    claim = EQUIVALENCE
    same = verdict(claim, cell("a", spread(29.6, 0.1, 5)), cell("b", spread(29.7, 0.1, 5)))
    assert same.kind == v.REPRODUCED and same.p < 0.05
    apart = verdict(claim, cell("a", spread(29.6, 0.1, 5)), cell("b", spread(31.0, 0.1, 5)))
    assert apart.kind == v.CONTRADICTED
    noisy = verdict(claim, cell("a", spread(29.6, 1.0, 3)), cell("b", spread(29.7, 1.0, 3)))
    assert noisy.kind == v.UNDERPOWERED  # a spread of 1 at 3 seeds cannot resolve ±0.5


def matches_claim(check: str, **extra: object) -> dict:
    spec = {"check": check, "metric": "test_top1_error", "tolerance": 0.3, "rows": ["resnet110"], **extra}
    return {"id": "n", "text": "t", "data": "paper", "checks": [spec]}


def test_paper_number_by_mean_and_interval() -> None:
    numbers = {"resnet110": 6.61}
    near = verdict(matches_claim("matches"), cell("resnet110", spread(6.6, 0.1, 5)), numbers=numbers)
    assert near.kind == v.REPRODUCED and "90% CI" in near.detail
    far = verdict(matches_claim("matches"), cell("resnet110", spread(7.5, 0.1, 5)), numbers=numbers)
    assert far.kind == v.CONTRADICTED
    small = cell("resnet110", spread(6.6, 0.1, 5), SMALL)
    out = verdict(matches_claim("matches"), small, numbers=numbers)
    assert out.kind == v.NOT_COMPARABLE and "fashion_mnist" in out.headline


def test_best_of_n_against_the_papers_best_of_n() -> None:
    # He et al. 2015, Table 6: ResNet-110 6.43 % is the best of 5 runs (mean 6.61 ± 0.16).
    numbers = {"resnet110": 6.43}
    five = cell("resnet110", [6.9, 6.5, 6.7, 6.8, 6.6])
    out = verdict(matches_claim("best_of_n", n=5), five, numbers=numbers)
    assert out.kind == v.REPRODUCED and "best of 5 6.50" in out.detail
    worse = cell("resnet110", [7.2, 7.0, 7.3, 7.1, 7.4])
    assert verdict(matches_claim("best_of_n", n=5), worse, numbers=numbers).kind == v.CONTRADICTED
    three = cell("resnet110", [6.9, 6.5, 6.7])
    assert verdict(matches_claim("best_of_n", n=5), three, numbers=numbers).kind == v.INCONCLUSIVE
    mean = verdict(matches_claim("matches", paper=6.61), cell("resnet110", spread(6.61, 0.16, 5)))
    assert mean.kind == v.REPRODUCED  # 6.61 ± 0.16 over 5 seeds: 90 % CI 6.46–6.76, inside 6.61 ± 0.3
    assert "paper 6.61" in mean.detail


def test_a_failed_seed_is_counted_and_shown() -> None:
    a = cell("a", spread(10, 0.5, 4), lost=["diverged"])
    b = cell("b", spread(12, 0.5, 5))
    assert a.unfinished() == {"diverged": 1} and a.stats("test_top1_error").n == 4
    out = verdict(ordering(["a", "b"]), a, b)
    assert out.kind == v.REPRODUCED and "(4), 1 diverged" in out.detail
    all_lost = cell("a", [], lost=["diverged", "failed"])
    out = verdict(ordering(["a", "b"]), all_lost, b)
    assert out.kind == v.NOT_RUN and "1 diverged, 1 failed" in out.detail


def test_chance_loss_is_ln_of_the_classes_of_the_data_set_that_ran() -> None:
    assert v.chance_loss({"dataset.name": "cifar100"}) == pytest.approx(math.log(100))
    assert v.chance_loss({"dataset.name": "imagenet", "dataset.num_classes": "1000"}) == pytest.approx(
        math.log(1000)
    )
    assert v.chance_loss({"dataset.name": "synthetic", "dataset.num_classes": "100"}) == pytest.approx(
        math.log(100)
    )


def loss_cell(label: str, curves: list[list[float]], dataset: str) -> v.Cell:
    params = {"dataset.name": dataset, "model": label}
    runs = [
        v.Run(
            f"{label}{i}",
            label,
            "finished",
            params,
            {"train_loss": c[-1]},
            {"train_loss": list(enumerate(c))},
        )
        for i, c in enumerate(curves)
    ]
    return v.Cell(label, label, runs)


def test_stalls_and_converges_are_relative_to_the_chance_of_the_data_set() -> None:
    claim = {
        "id": "d30",
        "text": "t",
        "data": "any",
        "families": ["prelu_deep", "plain_deep"],
        "early_training": True,  # about the start of training: no budget gate
        "checks": [
            {"check": "converges", "rows": ["{family}30/kaiming"], "below_chance": 0.87},
            {"check": "stalls", "rows": ["{family}30/xavier"], "within": 0.05},
        ],
    }
    ln100 = math.log(100)
    learns = loss_cell(
        "plain_deep30/kaiming", [[4.5, 2.0, 1.5], [4.5, 2.2, 1.7], [4.4, 2.1, 1.6]], "cifar100"
    )
    stuck = loss_cell(
        "plain_deep30/xavier", [[ln100, ln100 - 0.001], [ln100, ln100], [ln100, ln100 + 0.001]], "cifar100"
    )
    out = verdict(claim, learns, stuck)
    assert out.kind == v.REDUCED and "plain_deep nets" in out.detail and "ln 100 = 4.61" in out.detail
    # The same xavier losses on a 10-class set are far above chance (ln 10 = 2.30): they did not stall there.
    on10 = loss_cell("plain_deep30/xavier", [[2.30, 2.0], [2.31, 2.05], [2.29, 1.9]], "cifar10")
    assert (
        verdict(claim, learns, on10).kind == v.CONTRADICTED
    )  # lowest 1.98 ± 0.08 < 2.25, reverse p = 0.013 (×2)
    assert verdict({**claim, "early_training": False}, learns, stuck).why == (
        "not testable at this budget (plain_deep30/kaiming still improving: −24 % over the last quarter)"
    )  # per seed 2.0 → 1.5, 2.2 → 1.7, 2.1 → 1.6 (at 3/4 of the run → its end): the median drop, 0.5 / 2.1
    missing = verdict(claim, learns)
    assert missing.kind == v.NOT_RUN
    assert missing.detail == (
        "no run of prelu_deep30/kaiming, prelu_deep30/xavier (prelu_deep nets); "
        "no run of plain_deep30/xavier (plain_deep nets)"
    )


def test_every_claim_of_every_preset_parses() -> None:
    """No claim silently missing: each preset's expected block (with what its smoke variant inherits)
    parses, and every check is one the verdicts know."""
    count = 0
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        spec = parse_yaml(path.read_text())
        parent = (spec.get("defaults") or [None])[0]
        inherited = (
            parse_yaml((EXPERIMENTS / f"{parent}.yaml").read_text()) if isinstance(parent, str) else {}
        )
        block = {**(inherited.get("expected") or {}), **(spec.get("expected") or {})}
        ex = v.Expected.parse(block)
        assert [c.id for c in ex.claims] == [c["id"] for c in block["claims"]], path.name
        assert ex.scale == ("smoke" if path.stem.endswith("_smoke") else "full"), path.name
        count += len(ex.claims)
    assert count >= 30


def test_a_malformed_claim_is_refused() -> None:
    def refusal(parse, spec: dict) -> str:
        with pytest.raises(ValueError) as refused:
            parse(spec)
        return str(refused.value)

    known = "increasing, decreasing, equivalent, matches, best_of_n, converges, stalls, reaches_first"
    assert (
        refusal(v.Check.parse, {"check": "bigger", "rows": ["a"]})
        == f"unknown check 'bigger'; known: {known}"
    )
    no_tolerance = {"check": "equivalent", "metric": "m", "rows": ["a", "b"]}
    assert refusal(v.Check.parse, no_tolerance) == (
        "check equivalent takes rows, metric, tolerance; got check, metric, rows"
    )
    extra = {"check": "best_of_n", "metric": "m", "rows": ["a"], "tolerance": 1, "n": 5, "alpha": 0.1}
    assert refusal(v.Check.parse, extra) == (
        "check best_of_n takes rows, metric, n, tolerance (optional: paper); got alpha, check, metric, n, rows, "
        "tolerance"
    )
    good = {
        "id": "x",
        "text": "t",
        "data": "any",
        "checks": [{"check": "converges", "rows": ["a"], "below_chance": 0.5}],
    }
    for broken in ({**good, "note": "?"}, {**good, "data": "some"}, {**good, "checks": []}):
        assert refusal(v.Claim.parse, broken) == (
            f"claim x: needs id, text, data (any|paper), checks; got {broken}"
        )  # each fault alone is enough
    claim = v.Claim.parse({**good, "alpha": 0.01, "families": ["prelu", "plain"]})
    assert claim == v.Claim(
        "x", "t", "any", (v.Check("converges", ("a",), below_chance=0.5),), 0.01, ("prelu", "plain")
    )
    assert v.Claim.parse(good).alpha == v.ALPHA == 0.05


def test_the_curves_band_is_the_mean_with_the_min_and_max_over_a_cells_seeds(tmp_path: Path) -> None:
    """curves.png per cell: the mean line over the seeds that logged each step, the band from the lowest to
    the highest seed; a diverged seed's non-finite point leaves the band, its finite ones stay."""
    from runner.analysis import render

    histories = [
        {"train_error": [(10, 90.0), (20, 60.0)]},
        {"train_error": [(10, 80.0), (20, 40.0)]},
        {"train_error": [(10, 70.0), (20, float("nan"))]},
    ]
    runs = [v.Run(f"r{i}", "c", "finished", {"seed": str(i)}, {}, h) for i, h in enumerate(histories)]
    steps, mean, lo, hi = render._band(v.Cell("kaiming", "c", runs), "train_error")
    assert (steps, mean, lo, hi) == ([10, 20], [80.0, 50.0], [70.0, 40.0], [90.0, 60.0])
    png = tmp_path / "curves.png"
    render.plot_curves([v.Cell("kaiming", "c", runs)], png, "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def chance_cell(label: str, errors: Sequence[float], losses: Sequence[float]) -> v.Cell:
    """A Fashion-MNIST cell whose seeds end at these test errors and final training losses."""
    params = {**SMALL, "model": label}
    runs = [
        v.Run(
            f"{label}-{i}",
            label,
            "finished",
            {**params, "seed": str(i)},
            {"test_top1_error": e, "train_loss": x},
        )
        for i, (e, x) in enumerate(zip(errors, losses, strict=True))
    ]
    return v.Cell(label, label, runs)


def test_an_ordering_of_nets_that_all_learned_nothing_is_not_testable() -> None:
    """Every seed of both rows ends within 0.05 of ln 10 = 2.303: a 'significant' 0.4-point gap between
    chance-level nets is not evidence either way (alexnet_ablations_small, 2026-11-25)."""
    chance = [2.3026, 2.3030, 2.2999]
    out = verdict(
        ordering(["a", "b"]),
        chance_cell("a", [89.6, 89.7, 89.8], chance),
        chance_cell("b", [90.1, 90.0, 90.2], chance),
    )
    assert out.kind == v.NOT_LEARNED and out.p is None and out.gate == "learned"
    assert out.headline == "not testable: a, b did not learn (0/3, 0/3 seeds learned)"
    # one row below the band (2.25 is 0.053 under ln 10): the other row still stops the comparison
    learned = chance_cell("a", [89.6, 89.7, 89.8], [2.25, 2.25, 2.25])
    out = verdict(ordering(["a", "b"]), learned, chance_cell("b", [90.1, 90.0, 90.2], chance))
    assert out.headline == "not testable: b did not learn (0/3 seeds learned)"


def test_tost_p_values_of_equivalence_in_both_directions() -> None:
    """TOST at ±0.5: the larger of the two one-sided p's decides "inside", the smaller opposite one "outside";
    a difference of either sign inside the band is equivalence (values pinned from scipy's Welch test)."""
    claim = EQUIVALENCE

    def judged(a: tuple, b: tuple) -> v.Verdict:
        return verdict(claim, cell("a", spread(*a)), cell("b", spread(*b)))

    below = judged((29.6, 0.1, 5), (29.7, 0.1, 5))
    assert below.kind == v.REPRODUCED and below.p == pytest.approx(1.1335837e-4, rel=1e-6)
    assert below.detail == (
        "test_top1_error: a 29.60 ± 0.10 (5) vs b 29.70 ± 0.10 (5), Δ -0.10 (tolerance ±0.5) (TOST p = 0.00011)"
    )
    above = judged((29.6, 0.1, 5), (29.3, 0.1, 5))
    assert above.kind == v.REPRODUCED and above.p == pytest.approx(6.6745317e-3, rel=1e-6)
    apart = judged((29.6, 0.1, 5), (31.0, 0.1, 5))
    # beyond the tolerance: the smaller one-sided p, doubled (Bonferroni over the two sides)
    assert apart.kind == v.CONTRADICTED and apart.p_reverse == pytest.approx(2 * 2.8966152e-7, rel=1e-6)
    assert apart.detail.endswith("Δ -1.40 (tolerance ±0.5) (TOST p = 1)")
    noisy = judged((29.6, 1.0, 3), (29.7, 1.0, 3))
    assert noisy.kind == v.UNDERPOWERED and noisy.p == pytest.approx(0.32493012, rel=1e-6)
    single = judged((29.6, 0.0, 1), (29.7, 0.0, 1))
    assert single.kind == v.SINGLE and single.p is None


def curve_cell(label: str, curves: list[list[tuple[int, float]]]) -> v.Cell:
    """A Fashion-MNIST cell whose seeds logged these (iteration, train_error) points."""
    params = {**SMALL, "model": label}
    runs = [
        v.Run(f"{label}{i}", label, "finished", params, {"train_error": c[-1][1]}, {"train_error": c})
        for i, c in enumerate(curves)
    ]
    return v.Cell(label, label, runs)


def test_reaches_first_compares_the_iteration_each_seed_gets_below_the_bound() -> None:
    """AlexNet Fig. 1's question: which unit's training error gets under 25 % first. "Below" is strict (a
    seed at exactly 25.0 has not got there); a seed that never does is censored at its last iteration. Every
    ReLU seed gets there before every tanh seed: Gehan's exact test gives 1 split of C(6, 3) = 20, p = 0.05."""

    def claim(rows: list[str]) -> dict:
        check = {"check": "reaches_first", "metric": "train_error", "below": 25, "rows": rows}
        return {"id": "r", "text": "t", "data": "any", "checks": [check]}

    relu = curve_cell(
        "relu", [[(10, 24.0), (20, 20.0), (30, 18.0)], [(10, 24.9), (20, 22.0), (30, 19.0)],
                 [(10, 26.0), (20, 24.0), (30, 24.0)]]
    )  # fmt: skip
    tanh = curve_cell(
        "tanh", [[(10, 60.0), (20, 40.0), (30, 24.0)], [(10, 50.0), (20, 25.0), (30, 24.5)],
                 [(10, 70.0), (20, 30.0), (30, 23.0)]]
    )  # fmt: skip
    out = verdict(claim(["relu", "tanh"]), relu, tanh)
    assert (out.kind, out.p, out.p_reverse) == (v.UNDERPOWERED, pytest.approx(0.05), pytest.approx(1.0))
    assert out.detail.startswith(
        "train_error < 25: relu at iteration 10, 10, 20; tanh at iteration 30, 30, 30, 3.0× sooner (Gehan p = 0.05)"
    )
    assert out.why == (
        "underpowered (an exact test of 3 + 3 seeds cannot go below p = 0.05; about 4 seeds per row would do)"
    )
    backwards = verdict(claim(["tanh", "relu"]), relu, tanh)
    assert (backwards.p, backwards.p_reverse) == (pytest.approx(1.0), pytest.approx(0.05))
    late = curve_cell(
        "tanh", [[(10, 60.0), (20, 40.0), (30, 24.0)], [(10, 50.0), (20, 30.0), (30, 25.0)],
                 [(10, 70.0), (20, 30.0), (30, 26.0)]]
    )  # fmt: skip
    never = verdict(claim(["relu", "tanh"]), relu, late)
    assert never.p == pytest.approx(0.05)  # censored at 30, still after every ReLU seed
    assert "tanh at iteration 30, never (by 30), never (by 30) (Gehan p = 0.05)" in never.detail
    assert "sooner" not in never.detail and str(never.effect).startswith(
        "Δ(median iteration tanh − relu) ≥ +20.00"
    )


def test_t_interval_is_the_two_sided_90_percent_interval_of_the_mean() -> None:
    """t(0.95, n − 1) · s / √n either side: 2.132 · 0.1 / √5 and 6.314 · 0.1414 / √2 (scipy's t quantiles)."""
    assert v.t_interval(spread(6.6, 0.1, 5), 0.05) == pytest.approx((6.5046609, 6.6953391), rel=1e-7)
    assert v.t_interval([6.6, 6.4], 0.05) == pytest.approx((5.8686248, 7.1313752), rel=1e-7)
    with pytest.raises(AssertionError):
        v.t_interval([6.6], 0.05)  # one value has no interval


def test_paper_number_checks_at_their_boundaries() -> None:
    """Tolerance 0.25 around 6.5 (binary-exact numbers): a best of n exactly 0.25 away still matches; two
    seeds are enough for an interval; zero spread makes the interval the mean itself."""
    numbers = {"resnet110": 6.5}

    def judged(check: str, values: list[float], **extra: object) -> v.Verdict:
        return verdict(
            matches_claim(check, tolerance=0.25, **extra), cell("resnet110", values), numbers=numbers
        )

    two = judged("matches", [6.6, 6.4])
    assert two.kind == v.UNDERPOWERED and "(90% CI 5.87–7.13)" in two.detail  # 2 seeds cannot resolve ±0.25
    flat = judged("matches", [6.5, 6.5, 6.5])
    assert flat.kind == v.REPRODUCED and "(90% CI 6.50–6.50)" in flat.detail
    one = judged("matches", [6.75])
    assert one.kind == v.SINGLE and one.detail.endswith("— the paper's direction holds")
    assert judged("matches", [6.875]).detail.endswith("— the paper's direction does not hold")
    edge = judged("best_of_n", [6.75, 7.0], n=2)
    assert edge.kind == v.REPRODUCED and edge.detail.endswith("best of 2 6.75 vs paper's best of 2 6.5")
    assert judged("best_of_n", [6.875, 7.0], n=2).kind == v.CONTRADICTED
    single = judged("best_of_n", [6.75], n=1)
    assert single.kind == v.SINGLE and single.detail.endswith("— the paper's direction holds")
    with pytest.raises(
        ValueError, match=r"^no paper number for resnet110 \(test_top1_error\) in expected.numbers$"
    ):
        verdict(matches_claim("best_of_n", n=2), cell("resnet110", [6.5, 6.6]), numbers={})


# --- converges / stalls: the exact outcome, boundaries included --------------------------------------------
LN10 = math.log(10)
CONVERGES = v.Check("converges", ("c",), below_chance=0.87)
STALLS = v.Check("stalls", ("c",), within=0.05)


def loss_outcome(check: v.Check, curves: list[list[float]]) -> v.Outcome:
    cell = loss_cell("c", curves, "fashion_mnist")
    run = v.check_loss
    return run(check, {"c": cell}, expected([]), 0.05)


def test_converges_judges_each_seeds_final_loss_against_a_share_of_chance() -> None:
    # the final losses (1.2, 1.3, 1.4), not the lowest (1.0, 1.1, 0.9) nor the one before last
    out = loss_outcome(CONVERGES, [[2.3, 1.0, 1.2], [2.3, 1.1, 1.3], [2.3, 0.9, 1.4]])
    p = 0.0033363118568708254  # scipy: ttest_1samp([1.2, 1.3, 1.4], 0.87 · ln 10, alternative="less")
    assert (out.kind, out.holds, out.p, out.p_reverse, out.detail) == (
        v.REPRODUCED,
        True,
        pytest.approx(p, rel=1e-9),
        pytest.approx(1 - p, rel=1e-9),
        "c final train loss 1.30 ± 0.10 (3) < 2.00 (chance ln 10 = 2.30) (p = 0.0033)",
    )
    # Δ = 1.30 − 0.87 ln 10 = −0.703, ± t(0.975, 2) · 0.1 / √3 = 4.303 · 0.0577 = 0.248
    assert (out.effect.delta, out.effect.lo, out.effect.hi) == pytest.approx(
        (-0.7033, -0.9517, -0.4549), abs=1e-3
    )


def test_stalls_judges_each_seeds_lowest_loss_against_chance_minus_within() -> None:
    out = loss_outcome(STALLS, [[2.31, 2.29, 2.32], [2.30, 2.28, 2.33], [2.32, 2.27, 2.31]])
    p = 0.020801531197646977  # scipy: ttest_1samp([2.29, 2.28, 2.27], ln 10 − 0.05, alternative="greater")
    assert (out.kind, out.holds, out.p, out.detail) == (
        v.REPRODUCED,
        True,
        pytest.approx(p, rel=1e-9),
        "c lowest train loss 2.28 ± 0.01 (3) ≥ 2.25 (chance ln 10 = 2.30) (p = 0.021)",
    )


def test_a_loss_exactly_at_the_level_does_not_hold() -> None:
    """Constant seeds on the level: the sign test has no seed on either side, p = 1 both ways; its floor at 3
    seeds (0.5³ = 0.125) is the power gate's numbers."""
    gate = "c: an exact test of 3 seeds cannot go below p = 0.12; about 5 seeds per row would do"
    level = 0.87 * LN10  # as the check computes it
    out = loss_outcome(CONVERGES, [[3.0, level]] * 3)
    assert (out.kind, out.holds, out.p, out.p_reverse, out.underpowered, out.detail) == (
        v.INCONCLUSIVE, False, 1.0, 1.0, gate,
        "c final train loss 2.00 ± 0.00 (3) < 2.00 (chance ln 10 = 2.30) (p = 1)",
    )  # fmt: skip
    level = LN10 - 0.05
    out = loss_outcome(STALLS, [[3.0, level]] * 3)
    assert (out.kind, out.holds, out.p, out.detail) == (
        v.INCONCLUSIVE, False, 1.0, "c lowest train loss 2.25 ± 0.00 (3) ≥ 2.25 (chance ln 10 = 2.30) (p = 1)",
    )  # fmt: skip


def test_one_or_two_seeds_and_no_logged_loss() -> None:
    one = loss_outcome(CONVERGES, [[2.3, 1.0]])
    assert (one.kind, one.holds, one.p, one.detail) == (
        v.SINGLE, True, None, "c final train loss 1.00 ± 0.00 (1) < 2.00 (chance ln 10 = 2.30)"
    )  # fmt: skip
    two = loss_outcome(CONVERGES, [[2.3, 1.0], [2.3, 1.2]])
    assert (two.kind, two.p) == (
        v.REPRODUCED,
        pytest.approx(0.035097613849681616, rel=1e-9),
    )  # t-test with n = 2
    nothing = v.Cell("c", "c", [v.Run("r0", "c", "finished", {"dataset.name": "fashion_mnist"}, {})])
    outcome = v.check_loss(CONVERGES, {"c": nothing}, expected([]), 0.05)
    assert outcome == v.Outcome(v.INCONCLUSIVE, False, None, "c: no training loss logged")  # no evidence


def test_one_sample_p_is_one_sided_and_takes_the_sign_test_at_zero_variance() -> None:
    # scipy's one-sided t-test where the values vary (here with a population variance of exactly 1)
    assert v.one_sample_p([0.0, 2.0], 0.5, greater=True) == pytest.approx(0.35241638234956674, rel=1e-12)
    assert v.one_sample_p([0.0, 2.0], 0.5, greater=False) == pytest.approx(0.6475836176504333, rel=1e-12)
    # identical values: the exact sign test, 0.5³ = 0.125 when all 3 lie on the claimed side, 1 otherwise
    cases = [([2.0] * 3, 1.0, True), ([2.0] * 3, 1.0, False), ([0.0] * 3, 1.0, False), ([0.0] * 3, 1.0, True),
             ([1.0] * 3, 1.0, True), ([1.0] * 3, 1.0, False), ([1.5] * 3, 1.0, True), ([1.5] * 3, 1.0, False)]  # fmt: skip
    assert [v.one_sample_p(a, level, greater) for a, level, greater in cases] == [
        0.125, 1, 0.125, 1, 1, 1, 0.125, 1
    ]  # fmt: skip


# --- matches / equivalent / reaches_first at their boundaries ----------------------------------------------
def matches(values: Sequence[float], paper: float, tol: float) -> v.Outcome:
    check = v.Check("matches", ("c",), metric="test_top1_error", tolerance=tol)
    return v._matches_row(check, cell("c", values), paper, 0.05)


def test_matches_reads_the_90_percent_interval_against_paper_plus_minus_tolerance() -> None:
    cases = {  # values, paper, tolerance → kind, holds (the mean within ±tolerance)
        "no spread on the lower edge": ([9.5, 9.5], 10.0, 0.5, v.REPRODUCED, True),
        "no spread on the upper edge": ([10.5, 10.5], 10.0, 0.5, v.REPRODUCED, True),
        "interval ends inside the upper edge": ([9.0, 9.4], 10.0, 0.5, v.INCONCLUSIVE, False),
        "interval starts inside the lower edge": ([10.6, 11.0], 10.0, 0.5, v.INCONCLUSIVE, False),
        "mean exactly at the edge": ([9.25, 9.75], 10.0, 0.5, v.INCONCLUSIVE, True),
        "far below": ([5.0, 5.2], 10.0, 0.5, v.CONTRADICTED, False),
        "one seed within": ([10.5], 10.0, 0.5, v.SINGLE, True),
        "one seed outside": ([10.6], 10.0, 0.5, v.SINGLE, False),
    }
    got = {name: (lambda o: (o.kind, o.holds))(matches(a, p, t)) for name, (a, p, t, *_) in cases.items()}
    assert got == {name: (kind, holds) for name, (*_, kind, holds) in cases.items()}
    lo, hi = v.t_interval([1.0, 2.0], 0.05)  # an interval that touches the paper's number at one end
    assert (matches([1.0, 2.0], hi, 0.0).kind, matches([1.0, 2.0], lo, 0.0).kind) == (v.INCONCLUSIVE,) * 2
    out = matches([9.0, 9.4], 10.0, 0.5)
    assert (out.kind, out.holds, out.p, out.detail) == (
        v.INCONCLUSIVE, False, None, "c 9.20 ± 0.28 (2) vs paper 10 (90% CI 7.94–10.46)"
    )  # fmt: skip
    # Δ −0.80 ± t(0.975, 1) · 0.2 = 12.71 · 0.2; detectable (t(0.95, 1) + t(0.8, 1)) · 0.2 = 1.54 > 0.5
    assert str(out.effect) == "Δ(c − paper 10) -0.80 [-3.34, +1.74] vs paper ±0.5"
    assert out.underpowered == "c: detectable 1.54 vs tolerance 0.50; about 4 seeds per row would do"


def equivalent(a: Sequence[float], b: Sequence[float], tol: float, alpha: float = 0.05) -> v.Outcome:
    check = v.Check("equivalent", ("a", "b"), metric="test_top1_error", tolerance=tol)
    return v.check_equivalent(check, {"a": cell("a", a), "b": cell("b", b)}, expected([]), alpha)


def test_equivalence_needs_two_seeds_a_strict_tolerance_and_p_below_alpha() -> None:
    one = equivalent([1.0], [0.5], 0.5)
    assert (one.kind, one.holds, one.p, one.detail) == (
        v.SINGLE,
        False,
        None,
        "test_top1_error: a 1.00 ± 0.00 (1) vs b 0.50 ± 0.00 (1), Δ +0.50 (tolerance ±0.5)",
    )  # a difference of exactly the tolerance is not inside it
    assert equivalent([1.0, 1.5], [0.5, 1.0], 0.5).holds is False
    close = equivalent([10.0, 10.1, 10.2], [10.05, 10.1, 10.15], 1.0)
    assert (close.kind, close.holds) == (v.REPRODUCED, True)
    two = equivalent([10.0, 10.1], [10.05, 10.15], 1.0)
    assert two.kind != v.SINGLE and two.p is not None  # two seeds a row: TOST, not a single run
    at_alpha = equivalent([10.0, 10.1, 10.2], [10.05, 10.1, 10.15], 1.0, alpha=close.p)
    assert at_alpha.kind == v.INCONCLUSIVE  # p equal to alpha is not below it
    apart = equivalent([10.0, 10.1, 10.2], [15.0, 15.1, 15.2], 1.0)
    assert apart.kind == v.CONTRADICTED
    at_reverse = equivalent([10.0, 10.1, 10.2], [15.0, 15.1, 15.2], 1.0, alpha=apart.p_reverse)
    assert at_reverse.kind == v.INCONCLUSIVE


def test_reaches_first_needs_an_earlier_mean_and_says_when_each_seed_got_there() -> None:
    def reach(a: list[int], b: list[int]) -> v.Outcome:
        check = v.Check("reaches_first", ("a", "b"), metric="train_error", below=80.0)
        curves = {
            name: v.Cell(name, name, [
                v.Run(f"{name}{i}", name, "finished", {"trainer.max_steps": "200"}, {}, {"train_error": [(s, 50.0)]})
                for i, s in enumerate(steps)
            ])
            for name, steps in (("a", a), ("b", b))
        }  # fmt: skip
        return v.check_reaches_first(check, curves, expected([]), 0.05)

    one = reach([40], [80])
    assert (one.kind, one.holds, one.p, one.detail) == (
        v.SINGLE, True, None, "train_error < 80: a at iteration 40; b at iteration 80, 2.0× sooner"
    )  # fmt: skip
    assert reach([40, 40], [40, 40]).holds is False  # the same iteration is not sooner
    two = reach([40, 50], [80, 90])
    # Gehan: a before b in every pair, 1 split of C(4, 2) = 6 as extreme: p = 1/6, the exact test's floor
    assert (two.kind, two.p, two.p_reverse) == (v.INCONCLUSIVE, pytest.approx(1 / 6), pytest.approx(1.0))
    assert (
        two.detail
        == "train_error < 80: a at iteration 40, 50; b at iteration 80, 90, 1.9× sooner (Gehan p = 0.17)"
    )
    assert two.underpowered == (
        "an exact test of 2 + 2 seeds cannot go below p = 0.17; about 4 seeds per row would do"
    )


def test_cells_group_by_label_and_cell_tag_and_a_missing_key_reads_question_mark() -> None:
    runs = [v.Run(f"r{i}", cell_tag, "finished", params, {}) for i, (cell_tag, params) in enumerate([
        ("h1", {"model": "a", "seed": "0"}), ("h2", {"model": "b", "seed": "0"}), ("h1", {"model": "a", "seed": "1"}),
        ("h3", {"seed": "0"}),
    ])]  # fmt: skip
    cells = v.group_cells(runs, ["model"])
    assert [(c.label, c.cell_id, [r.run_id for r in c.runs]) for c in cells] == [
        ("a", "h1", ["r0", "r2"]), ("b", "h2", ["r1"]), ("?", "h3", ["r3"]),
    ]  # fmt: skip
    assert v.label_of({"model": "a"}, ["model", "act"]) == "a/?"


def test_family_claims_fill_rows_and_pairs_and_a_missing_paper_number_is_named() -> None:
    check = v.Check(
        "increasing", ("{family}20", "{family}56"), metric="m", pairs=(("{family}20", "{family}56"),)
    )
    filled = v._fill(check, "plain")
    assert (filled.rows, filled.pairs) == (("plain20", "plain56"), (("plain20", "plain56"),))
    ex = expected([], numbers={"a": (10.0,)})
    short = v.Check("matches", ("a",), metric="test_top5_error", tolerance=0.5)
    ex2 = v.Expected(**{**ex.__dict__, "metrics": ("test_top1_error", "test_top5_error")})
    assert ex2.paper_number(short, "a") is None  # the row gives no top-5 number
    assert ex2.paper_number(v.Check("matches", ("a",), metric="test_top1_error"), "a") == 10.0
    with pytest.raises(ValueError, match=r"^no paper number for b \(test_top1_error\) in expected\.numbers$"):
        v.check_matches(v.Check("matches", ("b",), metric="test_top1_error", tolerance=0.5),
                        {"b": cell("b", [1.0, 2.0])}, ex, 0.05)  # fmt: skip


def test_a_single_seed_ordering_step_carries_no_p_and_a_run_without_the_metric_never_gets_there() -> None:
    out = verdict(ordering(["a", "b"]), cell("a", [10.0]), cell("b", [12.0]))
    assert out.detail == (
        "test_top1_error: a 10.00 ± 0.00 (1) → b 12.00 ± 0.00 (1); a < b — the paper's direction holds"
    )  # no p-value on a step of single runs
    never = v.Run("r", "c", "finished", {"trainer.max_steps": "200"}, {}, {})
    assert v._first_below(never, "train_error", 80.0) == (
        never.iterations,
        False,
    )  # censored where it stopped


def test_a_row_with_one_seed_at_chance_keeps_it_apart_from_its_error_statistics() -> None:
    """Seeds 10, 11 and one at chance (90, final loss ln 10): the row's statistics are 10.50 ± 0.71 (2) and the
    seed at chance is named beside them; two learned seeds are enough to compare."""
    a = chance_cell("a", [10.0, 11.0, 90.0], [0.5, 0.6, 2.3026])
    b = chance_cell("b", [20.0, 21.0, 22.0], [0.4, 0.5, 0.6])
    kept = v.learned_only(a)
    assert (kept.values("test_top1_error"), [r.run_id for r in kept.at_chance]) == ([10.0, 11.0], ["a-2"])
    assert v._row(kept, "test_top1_error") == "a 10.50 ± 0.71 (2), 1 at chance left out (90.00)"
    out = verdict(ordering(["a", "b"]), a, b)
    assert out.kind == v.REDUCED and out.effect.n == (2, 3) and out.effect.delta == pytest.approx(10.5)
    assert "a 10.50 ± 0.71 (2), 1 at chance left out (90.00) → b 21.00 ± 1.00 (3)" in out.detail
    # one learned seed left: not testable, with the counts
    worse = chance_cell("a", [10.0, 90.0, 90.1], [0.5, 2.3026, 2.30])
    assert verdict(ordering(["a", "b"]), worse, b).why == "not testable: a did not learn (1/3 seeds learned)"


# --- whole verdicts, one per branch of judge_claim ---------------------------------------------------------


def logged(c: v.Cell, last: int) -> v.Cell:
    """The cell with a training loss logged by each run up to iteration `last` (what `iterations` reads)."""
    return v.Cell(
        c.label, c.cell_id, [replace(r, history={"train_loss": [(10, 2.0), (last, 1.0)]}) for r in c.runs]
    )


def small_cell(label: str, values: Sequence[float]) -> v.Cell:
    """A cell of the SMALL protocol whose runs logged a training loss up to iteration 160."""
    return logged(cell(label, values, SMALL), 160)


CURVE = "test_top1_error: a 10.00 ± 0.50 (5) → b 12.00 ± 0.50 (5); a < b (p = 0.00011)"
P = pytest.approx(0.0001133583726240016, rel=1e-9)  # scipy: ttest_ind(b, a, equal_var=False, "greater")
SCALE = "fashion_mnist, width ÷16, max_steps 160 (paper 64000), 160 iterations"
EFFECT = v.Effect(
    "b − a", 2.0, pytest.approx(1.2708, abs=1e-4), pytest.approx(2.7292, abs=1e-4), None, (5, 5)
)


def test_each_verdict_of_a_measured_ordering_in_full() -> None:
    a, b = cell("a", spread(10, 0.5, 5)), cell("b", spread(12, 0.5, 5))
    measured = {"p": P, "p_reverse": pytest.approx(1 - 0.0001133583726240016), "effect": EFFECT}
    assert verdict(ordering(["a", "b"]), a, b) == v.Verdict("c", "t", v.REPRODUCED, detail=CURVE, **measured)
    paper_length = logged(a, 64000), logged(b, 64000)
    assert verdict(ordering(["a", "b"]), *paper_length).scale == ""  # the paper's protocol: no scale to name
    unlogged = cell("a", spread(10, 0.5, 5), SMALL), cell("b", spread(12, 0.5, 5), SMALL)  # no curve logged
    assert (
        verdict(ordering(["a", "b"]), *unlogged).scale
        == "fashion_mnist, width ÷16, max_steps 160 (paper 64000)"
    )
    sa, sb = small_cell("a", spread(10, 0.5, 5)), small_cell("b", spread(12, 0.5, 5))
    reduced = verdict(ordering(["a", "b"]), sa, sb)
    assert reduced == v.Verdict("c", "t", v.REDUCED, detail=CURVE, scale=SCALE, **measured)
    assert reduced.headline == (
        f"reproduced at reduced scale ({SCALE}; Δ(b − a) +2.00 [+1.27, +2.73] vs paper —;"
        " p = 0.00011, reverse p = 1; n = 5 + 5)"
    )
    paper_only = verdict(ordering(["a", "b"], data="paper"), sa, sb)
    assert (paper_only.kind, paper_only.gate, paper_only.p) == (v.NOT_COMPARABLE, "data", None)
    assert paper_only.headline == f"different protocol: not comparable ({SCALE})"
    assert paper_only.detail == f"{CURVE} — data: paper"  # no small_scale_reason declared: why it stopped
    assert verdict(ordering(["a", "b"]), sa, sb, scale="smoke") == v.Verdict(
        "c", "t", v.SMOKE, detail=CURVE, scale=SCALE, **measured
    )
    single = verdict(ordering(["a", "b"]), small_cell("a", [10.0]), small_cell("b", [12.0]))
    assert (single.kind, single.p, single.detail) == (
        v.SINGLE, None,
        "test_top1_error: a 10.00 ± 0.00 (1) → b 12.00 ± 0.00 (1); a < b — the paper's direction holds"
        f" (at reduced scale: {SCALE})",
    )  # fmt: skip
    reversed_ = verdict(
        ordering(["a", "b"]), small_cell("b", spread(10, 0.5, 5)), small_cell("a", spread(12, 0.5, 5))
    )
    assert (reversed_.kind, reversed_.p, reversed_.p_reverse, reversed_.detail) == (
        v.CONTRADICTED, pytest.approx(1 - 0.0001133583726240016, rel=1e-9), P,
        "test_top1_error: a 12.00 ± 0.50 (5) → b 10.00 ± 0.50 (5); a < b (p = 1)"
        f" (at reduced scale: {SCALE})",
    )  # fmt: skip


def test_each_verdict_of_rows_that_cannot_be_judged_in_full() -> None:
    a, b = cell("a", spread(10, 0.5, 5)), cell("b", spread(12, 0.5, 5))
    assert verdict(ordering(["a", "z"]), a) == v.Verdict("c", "t", v.NOT_RUN, None, "no run of z")
    assert verdict(ordering(["a", "z"]), a, scale="smoke") == v.Verdict(
        "c", "t", v.SMOKE, None, "no run of z"
    )
    assert verdict(ordering(["a", "b"]), a, b, cell("b", [11.0])) == v.Verdict(
        "c", "t", v.AMBIGUOUS, None, "b ran as several cells (a swept key is missing from expected.key)"
    )
    lost = cell("b", [], lost=["failed", "failed", "diverged"])
    assert verdict(ordering(["a", "b"]), a, lost) == v.Verdict(
        "c", "t", v.NOT_RUN, None, "no finished seed of b (2 failed, 1 diverged)"
    )
    # several rows at once: each named
    assert verdict(ordering(["a", "y", "z"]), a).detail == "no run of y, z"
    assert verdict(ordering(["a", "b"]), a, b, cell("a", [9.0]), cell("b", [11.0])).detail == (
        "a, b ran as several cells (a swept key is missing from expected.key)"
    )
    assert verdict(ordering(["a", "b"]), cell("a", [], lost=["killed"]), lost).detail == (
        "no finished seed of a (1 killed), b (2 failed, 1 diverged)"
    )
    families = {
        "id": "c", "text": "t", "data": "any", "families": ["prelu", "plain"],
        "checks": [{"check": "increasing", "metric": "test_top1_error", "rows": ["{family}20", "{family}56"]}],
    }  # fmt: skip
    assert verdict(families, cell("plain20", [1.0])) == v.Verdict(
        "c", "t", v.NOT_RUN, None, "no run of prelu20, prelu56 (prelu nets); no run of plain56 (plain nets)"
    )
    chance = [2.3026, 2.3030, 2.2999]
    at_chance = chance_cell("a", [89.6, 89.7, 89.8], chance), chance_cell("b", [90.1, 90.0, 90.2], chance)
    stuck = verdict(ordering(["a", "b"]), *at_chance)
    assert (stuck.kind, stuck.gate, stuck.p) == (v.NOT_LEARNED, "learned", None)
    assert stuck.detail.startswith("test_top1_error: a 89.70 ± 0.10 (3) → b 90.10 ± 0.10 (3)")
    assert verdict(ordering(["a", "b"]), *at_chance, scale="smoke").kind == v.SMOKE


def test_protocol_differences_name_each_key_briefly() -> None:
    def differences(paper: dict, ours: dict) -> list[str]:
        return v.protocol_differences(paper, [v.Run("r", "c", "finished", ours, {})])

    assert differences({"dataset.name": "cifar10"}, {"dataset.name": "fashion_mnist"}) == ["fashion_mnist"]
    widths = {"2": "width ÷8", "8": "width ÷2", "3": "width 3 (paper 16)", "0": "width 0 (paper 16)",
              "32": "width 32 (paper 16)"}  # fmt: skip
    for ours, phrase in widths.items():
        assert differences({"model.width": 16}, {"model.width": ours}) == [phrase]
    assert differences({"model.width": 32}, {"model.width": "16"}) == ["width ÷2"]
    assert differences({"trainer.max_steps": 64000}, {"trainer.max_steps": "160"}) == [
        "max_steps 160 (paper 64000)"
    ]
    assert differences({"seed": 0}, {"seed": "1"}) == ["seed 1 (paper 0)"]  # a key without a group
    assert differences({"model.head.dropout": 0.5}, {"model.head.dropout": "0.0"}) == [
        "dropout 0.0 (paper 0.5)"
    ]
    assert differences({"seed": 0}, {}) == ["seed None (paper 0)"]  # a key the run does not have
    assert differences({"model.width": 16}, {"model.width": "16"}) == []


def test_params_compare_as_the_values_they_were_logged_from() -> None:
    assert [v._value(x) for x in ("0.0625", "[256, 256]", "None", "imagenet", None)] == [
        0.0625, [256, 256], None, "imagenet", None
    ]  # fmt: skip
    same = [
        ([256, 256], (256, 256)),
        ([[1, 2], 3], [[1, 2.0], 3]),
        (0.1 + 0.2, 0.3),
        ("a", "a"),
        (True, True),
    ]
    for ours, paper in same:
        assert v._same(ours, paper), (ours, paper)
    differ = [([256, 256], [256, 512]), ([256], [256, 256]), ([256, 256], 256), (256, [256]),
              ([[1, 2], 3], [[1, 3], 3]), (0.3, 0.3001), ("1", 1)]  # fmt: skip
    for ours, paper in differ:
        assert not v._same(ours, paper), (ours, paper)


def test_p_values_print_with_two_digits_down_to_one_in_ten_thousand() -> None:
    assert [v.fmt_p(p) for p in (None, 0.05, 0.00011, 1e-4, 9.9e-5, 0.0)] == [
        "", "p = 0.05", "p = 0.00011", "p = 0.0001", "p < 0.0001", "p < 0.0001"
    ]  # fmt: skip


def test_welch_p_takes_the_exact_test_only_when_both_rows_are_constant() -> None:
    # a population variance of exactly 1 (0, 2) beside a constant row: still the t-test, t = −4 on 1 degree
    # of freedom, whose one-sided p is ½ − atan(4)/π
    p = 0.5 - math.atan(4) / math.pi
    assert v.welch_p([0.0, 2.0], [5.0, 5.0], greater=False) == pytest.approx(p, rel=1e-9)
    assert v.welch_p([5.0, 5.0], [0.0, 2.0], greater=True) == pytest.approx(p, rel=1e-9)
    # 2 constant seeds against 2: 1 split of C(4, 2) = 6 as extreme as the observed one
    limits = [([3.0] * 2, [1.0] * 2, True, 1 / 6), ([3.0] * 2, [1.0] * 2, False, 1.0),
              ([1.0] * 2, [3.0] * 2, True, 1.0), ([1.0] * 2, [3.0] * 2, False, 1 / 6),
              ([1.0] * 2, [1.0] * 2, True, 1.0), ([1.0] * 2, [1.0] * 2, False, 1.0)]  # fmt: skip
    for a, b, greater, p in limits:
        assert v.welch_p(a, b, greater) == pytest.approx(p), (a, b, greater)


def test_decide_combine_and_the_row_summary() -> None:
    assert v.decide(5, True, 0.05, 0.05, "d") == v.Outcome(
        v.INCONCLUSIVE, True, 0.05, "d"
    )  # p = α: not below
    assert v.decide(5, True, 0.0499, 0.05, "d").kind == v.REPRODUCED
    assert (
        v.decide(5, False, 0.97, 0.05, "d", p_reverse=0.03).kind == v.CONTRADICTED
    )  # the reverse significant
    assert (
        v.decide(5, False, 0.9, 0.05, "d", p_reverse=0.1).kind == v.INCONCLUSIVE
    )  # wrong way, not significant
    steps = [v.Outcome(v.REPRODUCED, True, 0.01, "x", 0.99), v.Outcome(v.INCONCLUSIVE, True, 0.2, "y", 0.8),
             v.Outcome(v.SINGLE, True, None, "z")]  # fmt: skip
    # a single run anywhere: direction only; the largest p; the reverse p Bonferroni-adjusted: 2 × 0.8 → 1
    assert v.combine(steps) == v.Outcome(v.SINGLE, True, 0.2, "x; y; z", 1.0)
    reversed_step = v.Outcome(v.CONTRADICTED, False, 0.97, "w", 0.03)
    assert (
        v.combine(steps[:2] + [reversed_step]).kind == v.INCONCLUSIVE
    )  # 3 × 0.03 = 0.09: not after Bonferroni
    assert v.combine(steps[:2] + [replace(reversed_step, p_reverse=0.01)]).kind == v.CONTRADICTED  # 0.03
    lost = cell("a", [10.0, 12.0], lost=["failed", "diverged", "failed"])
    assert v._row(lost, "test_top1_error") == "a 11.00 ± 1.41 (2), 2 failed, 1 diverged"
    assert v._row(cell("b", [], lost=["killed"]), "test_top1_error") == "b —, 1 killed"
    two = verdict(ordering(["a", "b"]), cell("a", [10.0, 11.0]), cell("b", [13.0, 14.0]))
    t = 3 / math.sqrt(0.5)  # two seeds a row: Welch's t on 2 degrees of freedom, p = (1 − t / √(t² + 2)) / 2
    assert two.p == pytest.approx((1 - t / math.sqrt(t * t + 2)) / 2, rel=1e-9)
    assert two.detail.endswith("; a < b (p = 0.026)")


def test_stats_final_values_and_the_chance_band_edge() -> None:
    assert v.Stats.of([1.0, 2.0, 6.0]) == v.Stats(3, 3.0, pytest.approx(2.6457513110645907), 1.0, 6.0)
    run = v.Run("r", "c", "finished", {}, {"a": float("nan"), "b": float("inf"), "c": 1.5})
    assert [run.final(m) for m in "abcd"] == [None, None, 1.5, None]
    edge = math.log(10) - v.CHANCE_BAND
    on_edge, above = (loss_cell("c", [[3.0, x]], "fashion_mnist").runs[0] for x in (edge, edge + 1e-9))
    assert (v.left_chance(on_edge), v.left_chance(above)) == (True, False)  # on the edge: learned
    assert v.left_chance(v.Run("r", "c", "finished", {"dataset.name": "fashion_mnist"}, {})) is None


def test_expected_parse_keeps_each_field_and_refuses_an_unknown_scale() -> None:
    ex = expected([], numbers={"a": 10, "b": [7.5, 2.0]})
    assert (ex.paper, ex.scale, ex.key, ex.metrics) == ("a paper", "full", ("model",), ("test_top1_error",))
    assert ex.numbers == {"a": (10.0,), "b": (7.5, 2.0)}
    assert ex.protocol == {"dataset.name": "cifar10", "model.width": 16, "trainer.max_steps": 64000}
    with pytest.raises(ValueError, match=r"^expected\.scale=tiny: full or smoke$"):
        expected([], scale="tiny")


# --- the full preset's differences, the trend's slope and its permutation p ------------------------------


def test_preset_differences_name_each_scale_key_that_differs_from_the_full_preset_once() -> None:
    rows = {  # a row of expected.key → the full preset's flattened config for it
        (("model", "a"), ("init", "kaiming")): {
            "init.gain": 1.0,  # a protocol key (skip): the paper's fingerprint names it already
            "model": "b",  # a key of the row itself
            "model.width": 16,
            "optim.lr": 0.1,  # the same value, logged as text
            "trainer.batch_size": 128,
            "trainer.log_every": 10,  # not a scale key
            "dataset.root": "/data",  # where the data lives: not a difference
            "dataset.name": "imagenet",
            "schedule.epochs": 90,  # a key the run did not log (a config from before it existed)
        },
        (("model", "a"), ("init", "?")): {"model.width": 16, "trainer.max_steps": 64000},
    }
    asked: list[tuple[tuple[str, str], ...]] = []

    def reference(row: tuple[tuple[str, str], ...]) -> dict | None:
        asked.append(row)
        return rows.get(row)  # a row the full preset cannot compose: None

    common = {"model": "a", "model.width": "8", "dataset.name": "fashion_mnist"}
    first = {**common, "init": "kaiming", "init.gain": "2.0", "optim.lr": "0.1", "trainer.batch_size": "64"}
    first |= {"trainer.log_every": "5", "dataset.root": "/tmp/x"}
    runs = [
        v.Run("r1", "c1", "finished", first, {}),
        v.Run("r2", "c2", "finished", {**common, "trainer.max_steps": "160"}, {}),  # no init logged: "?"
        v.Run("r3", "c3", "finished", {**common, "model": "z", "init": "x"}, {}),  # no reference row
    ]

    out = v.preset_differences(reference, ("model", "init"), runs, skip={"init.gain"})

    # width ÷2 once for both runs; the data set by its name; the rest against the full preset's value
    assert out == ["width ÷2", "batch_size 64 (full 128)", "fashion_mnist", "max_steps 160 (full 64000)"]
    assert asked == [
        (("model", "a"), ("init", "kaiming")),
        (("model", "a"), ("init", "?")),
        (("model", "z"), ("init", "x")),
    ]
    assert v.preset_differences(reference, ("model", "init"), runs[2:]) == []


def test_the_slope_is_the_least_squares_fit_of_each_row_along_the_axis() -> None:
    x = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])  # rows' positions, two seeds each (x's mean is not 0)
    y = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 16.0])
    assert v._slope(x, y) == pytest.approx(stats_slope(x, y), rel=1e-12)
    assert float(v._slope(x, y)) == pytest.approx(2.25, rel=1e-12)  # Sxy 9 / Sxx 4
    # A batch of fits (as the permutation test passes them), rows of their own means and slopes: 3 fits of 4
    # points along the last axis, and the same fits stored along the first axis.
    xs = np.array([[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0], [0.0, 2.0, 4.0, 6.0]])
    ys = np.array([[1.0, 3.0, 2.0, 6.0], [5.0, 4.0, 2.0, 1.0], [7.0, 7.0, 8.0, 9.0]])
    want = [stats_slope(a, b) for a, b in zip(xs, ys, strict=True)]
    assert want == pytest.approx([1.4, -1.4, 0.35], rel=1e-12)
    assert v._slope(xs, ys) == pytest.approx(want, rel=1e-12)
    assert v._slope(xs.T, ys.T, axis=0) == pytest.approx(want, rel=1e-12)


def stats_slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(stats.linregress(x, y).slope)


def brute_force_slope_p(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """The exact one-sided p values of the slope over every pairing of y with x: (≥ observed, ≤ observed)."""
    xc = np.asarray(x) - np.mean(x)  # the least-squares slope, written out here: Σ xc·y / Σ xc²
    pairings = np.array(list(itertools.permutations(y)))
    slopes, observed = pairings @ xc / (xc @ xc), np.asarray(y) @ xc / (xc @ xc)
    return float(np.mean(slopes >= observed - 1e-9)), float(np.mean(slopes <= observed + 1e-9))


@pytest.mark.parametrize(
    "per_row",
    [
        [[10.0] * 2, [12.0] * 2],  # 1/6
        [[10.0] * 3, [12.0] * 3],  # 0.05: the two-row step's exact floor
        [[5.0] * 2, [4.0] * 2, [3.0] * 3],  # decreasing, unequal seeds: 2!·2!·3!/7! = 1/210
        [[1.0] * 2, [1.0] * 2, [1.0] * 2],  # flat: every pairing ties
    ],
)
def test_the_in_line_trend_p_is_the_permutation_tests_exact_p_over_every_pairing(per_row) -> None:
    # The degenerate trend (constant rows exactly in line): brute force over every pairing of y with x.
    x = np.concatenate([[i] * len(r) for i, r in enumerate(per_row)]).astype(float)
    y = np.concatenate(per_row)
    up, down = brute_force_slope_p(x, y)
    assert v._inline_trend_p(x, y, greater=True) == pytest.approx(up, rel=1e-12)
    assert v._inline_trend_p(x, y, greater=False) == pytest.approx(down, rel=1e-12)


def test_constant_rows_in_line_are_judged_by_the_exact_floor_as_the_step_test_judges_them() -> None:
    # 2 rows of 3 constant seeds: exact p = 36/720 = 0.05, not below alpha = 0.05. A sampled permutation
    # test gave 0.0476 here and called the trend reproduced where the two-row step test says inconclusive.
    x, y = np.array([0.0] * 3 + [1.0] * 3), np.array([10.0] * 3 + [12.0] * 3)
    assert v._inline_trend_p(x, y, greater=True) == 0.05
    assert v._inline_trend_p(x, y, greater=False) == 1.0
    assert v.exact_p([12.0] * 3, [10.0] * 3, greater=True) == pytest.approx(0.05)


# --- the trend on constant rows, the exact tests by hand, the budget curve, best-of-n and the full preset -------


def trend(rows: dict[str, list[float]], check: str = "increasing", **kw: object) -> v.Verdict:
    """The verdict of a `trend: true` ordering over these rows (label → final test errors), in this order."""
    claim = ordering(list(rows), check)
    claim["checks"][0]["trend"] = True
    return verdict(claim, *(cell(label, values) for label, values in rows.items()), **kw)


def test_a_trend_of_constant_rows_exactly_in_line_takes_the_exact_permutation_p() -> None:
    """Every row constant and in line: linregress's standard error is 0 (its p, 1e-40, means nothing), so the
    permutation test over every pairing of errors with rows decides: p = ∏ n_i! / n!, 1 the other way."""
    rising = {"a": [10.0] * 2, "b": [12.0] * 2, "c": [14.0] * 2}  # 2!·2!·2! / 6! = 1/90
    assert trend(rising) == v.Verdict(
        "c", "t", v.REPRODUCED, pytest.approx(1 / 90, rel=1e-12),
        "test_top1_error: a 10.00 ± 0.00 (2) → b 12.00 ± 0.00 (2) → c 14.00 ± 0.00 (2); trend over 3 rows"
        " (p = 0.011)",
        p_reverse=1.0, effect=v.Effect("slope per row, a → c", 2.0, 2.0, 2.0, None, (2, 2, 2)),
    )  # fmt: skip
    # decreasing: the same exact test the other way round, its reverse direction 1
    down = trend({"a": [14.0] * 2, "b": [12.0] * 2, "c": [10.0] * 2}, "decreasing")
    assert (down.kind, down.p, down.p_reverse) == (v.REPRODUCED, pytest.approx(1 / 90, rel=1e-12), 1.0)
    assert (down.effect.delta, down.effect.lo, down.effect.hi) == (-2.0, -2.0, -2.0)
    wrong_way = trend(
        rising, "decreasing"
    )  # rising rows against a claimed decrease: the reverse is significant
    assert (wrong_way.kind, wrong_way.p, wrong_way.p_reverse) == (
        v.CONTRADICTED, 1.0, pytest.approx(1 / 90, rel=1e-12)
    )  # fmt: skip
    # two rows of 3: 3!·3! / 6! = 0.05, exactly the two-row step test's floor: not below alpha
    two = trend({"a": [10.0] * 3, "b": [12.0] * 3})
    assert (two.kind, two.p, two.p_reverse) == (v.INCONCLUSIVE, 0.05, 1.0)
    flat = trend({"a": [10.0] * 3, "b": [10.0] * 3})  # no slope: every pairing ties, 1 both ways
    assert (flat.kind, flat.p, flat.p_reverse) == (v.INCONCLUSIVE, 1.0, 1.0)


def test_a_trend_with_spread_reads_linregress_and_its_power_gate_by_hand() -> None:
    """Rows 0, 1, 2 with seeds (10, 11), (12, 13), (13, 15): slope Σxc·y / Σxc² = 7 / 4 = 1.75, SSE 37/12 on
    4 degrees of freedom, se = √(37/48 / 4). The paper's numbers 10, 10.5, 11: slope 0.5, which
    (t(0.95, 4) + t(0.8, 4)) · se = 1.35 cannot resolve; at k seeds a row se shrinks as √(2/k) on 3k − 2
    degrees of freedom: 11 seeds find 0.5, 10 do not."""
    out = trend(
        {"a": [10.0, 11.0], "b": [12.0, 13.0], "c": [13.0, 15.0]}, numbers={"a": 10, "b": 10.5, "c": 11}
    )
    se = math.sqrt(37 / 48 / 4)
    half = stats.t.ppf(0.975, 4) * se
    assert (out.kind, out.gate, out.p, out.p_reverse) == (
        v.UNDERPOWERED, "power", pytest.approx(stats.t.sf(1.75 / se, 4), rel=1e-9),
        pytest.approx(stats.t.cdf(1.75 / se, 4), rel=1e-9),
    )  # fmt: skip
    assert out.effect == v.Effect(
        "slope per row, a → c", pytest.approx(1.75), pytest.approx(1.75 - half), pytest.approx(1.75 + half),
        pytest.approx(0.5), (2, 2, 2),
    )  # fmt: skip
    assert (
        out.why == "underpowered (trend: detectable 1.35 vs expected 0.50; about 11 seeds per row would do)"
    )
    assert out.detail.endswith("; trend over 3 rows (p = 0.0082)")


def test_a_trend_with_a_single_seed_row_gives_the_direction_only() -> None:
    out = trend({"a": [10.0], "b": [12.0, 13.0]})
    assert (out.kind, out.p, out.p_reverse) == (v.SINGLE, None, None)
    assert out.detail == (
        "test_top1_error: a 10.00 ± 0.00 (1) → b 12.50 ± 0.71 (2); slope per row, a → b"
        " — the paper's direction holds"
    )
    assert out.effect == v.Effect("slope per row, a → b", pytest.approx(2.5), None, None, None, (1, 2))
    assert trend({"a": [10.0], "b": [12.0, 13.0]}, "decreasing").detail.endswith("does not hold")


def brute_force_p(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The permutation test over every split of the pooled seeds, written out: (P(Δ ≥ observed), P(Δ ≤ observed))
    for Δ = mean(first group) − mean(the rest)."""
    pooled, k = [*a, *b], len(a)
    observed = np.mean(a) - np.mean(b)
    deltas = []
    for chosen in itertools.combinations(range(len(pooled)), k):
        rest = [x for i, x in enumerate(pooled) if i not in chosen]
        deltas.append(np.mean([pooled[i] for i in chosen]) - np.mean(rest))
    deltas = np.array(deltas)
    return float(np.mean(deltas >= observed - 1e-12)), float(np.mean(deltas <= observed + 1e-12))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 2.0, 3.0], [3.0, 0.0, 0.0, 3.0]),  # ties across the groups
        ([5.0, 6.0, 7.0], [1.0, 2.0, 3.0, 4.0]),  # fully separated: 1 / C(7, 3) = 1/35 one way
        ([2.0, 2.0], [2.0, 2.0, 2.0]),  # all equal: every split ties, 1 both ways
        ([0.5, 4.0, 1.5, 2.5], [1.0, 3.0, 2.0]),
    ],
)
def test_exact_p_is_the_permutation_tests_p_over_every_split(a: list[float], b: list[float]) -> None:
    greater, less = brute_force_p(a, b)
    assert v.exact_p(a, b, greater=True) == pytest.approx(greater, rel=1e-12)
    assert v.exact_p(a, b, greater=False) == pytest.approx(less, rel=1e-12)


def test_gehan_scores_count_who_surely_got_there_first_ties_and_censoring_included() -> None:
    """A and B reach the threshold at 10, C is censored at 10, D at 20, E at 5, F reaches it at 15.
    Surely before: A and B before C (C was still above at its last iteration 10), D and F; F before D. A vs B
    (both at 10) and anyone vs E (censored at 5: it may still get there) are unknown. Scores, before − after:
    A 3, B 3, C −2, D −3, E 0, F 1 − 2 = −1."""
    times = [10, 10, 10, 20, 5, 15]
    reached = [True, True, False, False, False, True]
    assert v.gehan_scores(times, reached).tolist() == [3, 3, -2, -3, 0, -1]
    # a seed censored exactly where another got there is later than it; two censored seeds say nothing
    assert v.gehan_scores([30, 30], [True, False]).tolist() == [1, -1]
    assert v.gehan_scores([30, 30], [False, False]).tolist() == [0, 0]


def test_reaches_first_against_seeds_censored_at_the_iteration_the_others_got_there() -> None:
    """Four seeds get below 80 at their last logged iteration 30; four never do by 30. Every first-row seed is
    surely earlier: Gehan scores +4 against −4, 1 split of C(8, 4) = 70 as extreme, p = 1/70."""

    def row(name: str, last: float) -> v.Cell:
        runs = [
            v.Run(f"{name}{i}", name, "finished", {}, {}, {"train_error": [(10, 90.0), (30, last)]})
            for i in range(4)
        ]
        return v.Cell(name, name, runs)

    check = v.Check("reaches_first", ("a", "b"), metric="train_error", below=80.0)
    out = v.check_reaches_first(check, {"a": row("a", 70.0), "b": row("b", 85.0)}, expected([]), 0.05)
    assert (out.kind, out.holds, out.p, out.p_reverse, out.underpowered) == (
        v.REPRODUCED, True, pytest.approx(1 / 70), pytest.approx(1.0), ""
    )  # fmt: skip
    assert out.detail == (
        "train_error < 80: a at iteration 30, 30, 30, 30; b at iteration never (by 30), never (by 30),"
        " never (by 30), never (by 30) (Gehan p = 0.014)"
    )
    assert str(out.effect) == "Δ(median iteration b − a) ≥ +0.00 vs paper —"


def loss_run(curve: Sequence[tuple[int, float]], key: str = "train_loss", **more: object) -> v.Run:
    return v.Run("r", "c", "finished", {}, {}, {key: list(curve), **more})


def test_last_quarter_drop_compares_the_mean_around_three_quarters_with_the_last_tenth() -> None:
    """Iterations 0…100 every 10: the window 70–80 holds 2.2 and 1.8 (mean 2.0), the last tenth 90–100 holds
    1.6 and 1.4 (mean 1.5): the loss fell by 0.5 / 2.0 = 25 %. A non-finite point (a diverged last log) is
    dropped first; the iteration-resolution curve is read where logged, the per-epoch one otherwise."""
    values = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.2, 1.8, 1.6, 1.4]
    interval = [*((10 * i, x) for i, x in enumerate(values)), (110, float("nan"))]
    assert v.last_quarter_drop(loss_run(interval, "train_loss_interval")) == pytest.approx(0.25)
    epochs = [(0, 5.0), (100, 5.0)]  # flat per-epoch curve beside it: not the one read
    both = loss_run(epochs, train_loss_interval=interval)
    assert v.last_quarter_drop(both) == pytest.approx(0.25)
    assert v.last_quarter_drop(loss_run(epochs)) == 0.0
    # no point inside a window: the one nearest to 3/4 of the run (25 for 30), its end
    assert v.last_quarter_drop(loss_run([(10, 3.0), (25, 2.0), (40, 1.0)])) == pytest.approx(0.5)


def test_last_quarter_drop_needs_two_points_and_a_positive_loss_to_divide_by() -> None:
    assert v.last_quarter_drop(loss_run([(30, 2.0), (40, 1.0)])) == pytest.approx(0.5)  # two points do
    assert v.last_quarter_drop(loss_run([(40, 1.0)])) is None
    assert v.last_quarter_drop(loss_run([(30, float("inf")), (40, 1.0)])) is None  # one finite point
    assert v.last_quarter_drop(v.Run("r", "c", "finished", {}, {})) is None  # no curve at all
    assert v.last_quarter_drop(loss_run([(30, 1.0), (40, 0.75)])) == pytest.approx(0.25)  # a loss below 1
    assert v.last_quarter_drop(loss_run([(30, 0.5), (40, 0.25)])) == pytest.approx(0.5)
    assert v.last_quarter_drop(loss_run([(30, 0.0), (40, 0.0)])) is None  # nothing to fall from
    assert v.last_quarter_drop(loss_run([(30, 1.0), (40, 1.25)])) == pytest.approx(-0.25)  # it rose


def test_the_budget_gate_reads_the_median_drop_of_a_rows_seeds_strictly_above_ten_percent() -> None:
    """1.25 → 1.125 is a drop of exactly 0.10 (binary-exact numbers): not still improving. A row's median over
    its seeds decides, one seed falling fast does not."""

    def row(name: str, finals: Sequence[float]) -> v.Cell:
        runs = [
            v.Run(f"{name}{i}", name, "finished", {"dataset.name": "cifar10"}, {"train_loss": x},
                  {"train_loss": [(30, 1.25), (40, x)]})
            for i, x in enumerate(finals)
        ]  # fmt: skip
        return v.Cell(name, name, runs)

    assert v.budget_gate({"a": row("a", [1.125] * 3)}) == ""
    assert v.budget_gate({"a": row("a", [1.125, 1.125, 0.5])}) == ""  # median 0.10
    assert v.budget_gate({"a": row("a", [1.125, 1.0, 0.5]), "b": row("b", [1.25] * 2)}) == (
        "not testable at this budget (a still improving: −20 % over the last quarter)"
    )


def test_best_of_n_takes_the_first_n_seeds_and_reports_the_difference_from_the_papers_best() -> None:
    """He et al. 2015, Table 6: ResNet-110 6.43 % is the best of 5 runs. A sixth seed (6.0) is not one of the
    paper's 5 runs: the best of the first 5 is 6.50, +0.07 from the paper's, inside ±0.3."""
    six = cell("resnet110", [6.9, 6.5, 6.7, 6.8, 6.6, 6.0])
    out = verdict(matches_claim("best_of_n", n=5), six, numbers={"resnet110": 6.43})
    assert out == v.Verdict(
        "n", "t", v.REPRODUCED, None,
        "test_top1_error within ±0.3: resnet110 best of 5 6.50 vs paper's best of 5 6.43",
        effect=v.Effect("best − paper 6.43", pytest.approx(0.07), None, None, None, (5,), paper_text="±0.3"),
    )  # fmt: skip
    assert out.headline == "reproduced (Δ(best − paper 6.43) +0.07 vs paper ±0.3; n = 5)"
    few = verdict(
        matches_claim("best_of_n", n=5), cell("resnet110", [6.9, 6.5, 6.7]), numbers={"resnet110": 6.43}
    )
    assert few.effect.n == (3,) and few.detail.endswith(
        "best of 3 6.50 vs paper's best of 5 6.43 (only 3 of 5 seeds)"
    )


def test_equivalence_of_constant_rows_takes_the_exact_test_both_ways() -> None:
    """Four constant seeds a row, ±0.5: 10 vs 10.25 lies inside (each one-sided exact test at its floor 1/70);
    10 vs 11 lies outside (the exact p 1/70 on the far side, doubled over the two sides: 2/70)."""
    inside = equivalent([10.0] * 4, [10.25] * 4, 0.5)
    assert inside == v.Outcome(
        v.REPRODUCED, True, pytest.approx(1 / 70),
        "test_top1_error: a 10.00 ± 0.00 (4) vs b 10.25 ± 0.00 (4), Δ -0.25 (tolerance ±0.5) (TOST p = 0.014)",
        1.0, v.Effect("a − b", -0.25, -0.25, -0.25, None, (4, 4)),
    )  # fmt: skip
    outside = equivalent([10.0] * 4, [11.0] * 4, 0.5)
    assert (outside.kind, outside.holds, outside.p, outside.p_reverse) == (
        v.CONTRADICTED, False, 1.0, pytest.approx(2 / 70)
    )  # fmt: skip


def test_equivalence_gates_on_the_tolerance_less_the_papers_or_the_declared_difference() -> None:
    """a 10.0, 10.2, 10.4 vs b 10.1, 10.3, 10.5: Δ −0.1, se = √(2 · 0.04 / 3) on 4 degrees of freedom. TOST's
    deciding side is t = (−0.1 + 0.5) / se; the paper's Δ (a − b) = 10 − 10.25 leaves a margin of 0.25 to find,
    (t(0.95, 4) + t(0.8, 4)) · se = 0.50 cannot; a declared effect of 0.1 leaves 0.4."""
    check = v.Check("equivalent", ("a", "b"), metric="test_top1_error", tolerance=0.5)
    ex = expected([], numbers={"a": 10.0, "b": 10.25})
    cells = {"a": cell("a", [10.0, 10.2, 10.4]), "b": cell("b", [10.1, 10.3, 10.5])}
    se = math.sqrt(2 * 0.04 / 3)
    out = v.check_equivalent(check, cells, ex, 0.05)
    assert (out.kind, out.holds, out.p, out.p_reverse) == (
        v.REPRODUCED, True, pytest.approx(stats.t.sf(0.4 / se, 4), rel=1e-6), 1.0
    )  # fmt: skip
    half = stats.t.ppf(0.975, 4) * se
    assert out.effect == v.Effect(
        "a − b", pytest.approx(-0.1), pytest.approx(-0.1 - half), pytest.approx(-0.1 + half),
        pytest.approx(-0.25), (3, 3),
    )  # fmt: skip
    assert (
        out.underpowered == "detectable 0.50 vs the tolerance's margin 0.25; about 9 seeds per row would do"
    )
    declared = v.check_equivalent(check, cells, ex, 0.05, 0.1)
    assert declared.underpowered == (
        "detectable 0.50 vs the tolerance's margin 0.40; about 5 seeds per row would do"
    )


def test_judge_names_the_differences_from_the_full_preset_it_is_given() -> None:
    """The runs match the paper's protocol but not the full preset's batch size: at reduced scale, named."""
    a = cell("a", spread(10, 0.5, 5), {"trainer.batch_size": "64"})
    b = cell("b", spread(12, 0.5, 5), {"trainer.batch_size": "64"})
    asked: list[tuple[tuple[str, str], ...]] = []

    def reference(row: tuple[tuple[str, str], ...]) -> dict:
        asked.append(row)
        return {"trainer.batch_size": 128}

    ex = expected([ordering(["a", "b"])])
    (out,) = v.judge(ex, [a, b], reference)
    assert (out.kind, out.scale) == (v.REDUCED, "batch_size 64 (full 128)")
    assert set(asked) == {(("model", "a"),), (("model", "b"),)}
    (without,) = v.judge(ex, [a, b])
    assert (without.kind, without.scale) == (v.REPRODUCED, "")


def test_welch_standard_error_and_degrees_of_freedom_by_hand() -> None:
    """a 1, 2, 3 (variance 1, /3) and b 2, 4, 6, 8 (variance 20/3, /4): se = √(1/3 + 5/3) = √2, and
    Welch–Satterthwaite df = 2² / ((1/3)²/2 + (5/3)²/3), as scipy's Welch test counts them. A constant row adds
    nothing: df = the other row's n − 1; both constant: the pooled n − 2 (no spread to weigh)."""
    se, df = v.welch_se_df([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    assert (se, df) == (pytest.approx(math.sqrt(2)), pytest.approx(4 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)))
    assert df == pytest.approx(stats.ttest_ind([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0], equal_var=False).df)
    assert v.welch_se_df([1.0] * 3, [2.0, 4.0, 6.0, 8.0]) == (
        pytest.approx(math.sqrt(5 / 3)),
        pytest.approx(3.0),
    )
    assert v.welch_se_df([1.0] * 3, [2.0] * 4) == (0.0, 5.0)
    assert v._se_at(0.0, 0.0, 3) == (0.0, 4.0)  # the power at k seeds of two constant rows: 2k − 2, no 0/0
    # many rows at once (seeds along the last axis): each row's own numbers
    se_rows, df_rows = v.welch_se_df(
        np.array([[1.0, 2.0, 3.0], [1.0] * 3]), np.array([[2.0, 4.0, 6.0, 8.0]] * 2)
    )
    assert se_rows.tolist() == pytest.approx([math.sqrt(2), math.sqrt(5 / 3)])
    assert df_rows.tolist() == pytest.approx([df, 3.0])


def test_the_exact_floor_is_one_over_the_splits_until_a_float_cannot_hold_it() -> None:
    assert [v.exact_floor(*n) for n in ((3, 3), (4, 4), (2, 5))] == [0.05, 1 / 70, 1 / 21]
    assert v.exact_floor(1000, 1000) == 0.0  # C(2000, 1000) ≈ 2e600: no floor worth the name
