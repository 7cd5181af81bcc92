"""The verdict rule calibrated on simulated claims (numpy draws, no training, fixed seed), and the gates and
Holm's adjustment on hand-computed numbers (runner/analysis/verdicts.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runner.analysis import verdicts as v

SIMS = 4000  # simulated claims per case: the standard error of a rate near 0.05 is 0.0034
ALPHA = v.ALPHA


def margin(rate: float) -> float:
    """Three standard errors of a simulated rate: the simulation error the assertions allow."""
    return 3 * math.sqrt(rate * (1 - rate) / SIMS)


def kinds_of_steps(rows: np.ndarray) -> np.ndarray:
    """The verdict of an increasing ordering over rows[:, i, :] (claims × rows × seeds), every adjacent step by
    Welch, combined as verdicts.combine does: the largest p, the reverse p Bonferroni-adjusted."""
    steps = range(rows.shape[1] - 1)
    p = np.max([v.welch_p(rows[:, i + 1], rows[:, i], True) for i in steps], axis=0)
    reverse = v.bonferroni([v.welch_p(rows[:, i + 1], rows[:, i], False) for i in steps])
    return v.rule(p, reverse, ALPHA)


@pytest.mark.parametrize(("rows", "seeds"), [(2, 3), (2, 5), (4, 5)])
def test_with_no_true_effect_contradicted_and_reproduced_each_stay_at_most_alpha(
    rows: int, seeds: int
) -> None:
    draws = np.random.default_rng(27).normal(size=(SIMS, rows, seeds))
    kinds = kinds_of_steps(draws)
    for kind in (v.REPRODUCED, v.CONTRADICTED):
        rate = float(np.mean(kinds == kind))
        assert rate <= ALPHA + margin(ALPHA), (kind, rate)
    if rows == 2:  # one step: both directions are exactly at alpha (the old rule read "not reproduced" ~50 %)
        assert float(np.mean(kinds == v.CONTRADICTED)) >= ALPHA - margin(ALPHA)


def test_a_true_effect_of_3_seed_sds_at_5_seeds_reproduces_at_the_power_the_gate_predicts() -> None:
    """Δ = 3 σ, 5 seeds a row, the claim expecting 3: the power gate stops the draws whose observed spread
    could not find 3 (rare), the rest read reproduced as often as the noncentral t predicts."""
    rng = np.random.default_rng(2027)
    first, second = rng.normal(size=(SIMS, 5)), rng.normal(3.0, 1.0, size=(SIMS, 5))
    p = v.welch_p(second, first, True)
    reverse = v.welch_p(second, first, False)
    se, df = v.welch_se_df(second, first)
    stopped = v.detectable(se, df, ALPHA) > 3.0  # the power gate, on each draw's own spread
    reproduced = float(np.mean((v.rule(p, reverse, ALPHA) == v.REPRODUCED) & ~stopped))
    predicted = v.power(3.0, math.sqrt(2 / 5), 8, ALPHA)  # the gate's prediction at the true spread
    assert predicted == pytest.approx(0.996, abs=1e-3)
    assert abs(reproduced - predicted) <= margin(predicted) + float(np.mean(stopped)), (reproduced, predicted)
    # where the power is far from 1 (Δ = 1.5 σ, no expected effect: no gate), the prediction still holds
    weaker = rng.normal(1.5, 1.0, size=(SIMS, 5))
    rate = float(np.mean(v.rule(v.welch_p(weaker, first, True), 1.0, ALPHA) == v.REPRODUCED))
    predicted = v.power(1.5, math.sqrt(2 / 5), 8, ALPHA)
    assert 0.5 < predicted < 0.8 and abs(rate - predicted) <= margin(predicted) + 0.02, (rate, predicted)


def test_the_power_gate_numbers_by_hand() -> None:
    """Spreads 1 and 1, 3 seeds each: se = √(2/3) = 0.816 on 4 degrees of freedom; detectable = (t(0.95, 4) +
    t(0.8, 4)) · se = (2.132 + 0.941) · 0.816 = 2.51 (the issue's "about 2.5 seed SDs at n = 3")."""
    se, df = v.welch_se_df([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0])
    assert (se, df) == (pytest.approx(math.sqrt(2 / 3)), pytest.approx(4.0))
    assert v.detectable(se, df, ALPHA) == pytest.approx(2.509, abs=1e-3)
    # expecting 1.18 (PReLU, Table 2): k seeds a row with (t(0.95, 2k − 2) + t(0.8, 2k − 2)) · √(2/k) ≤ 1.18 → 10
    gate = v.t_gate(1.18, (se, df), lambda k: v._se_at(1.0, 1.0, k), ALPHA)
    assert gate == "detectable 2.51 vs expected 1.18; about 10 seeds per row would do"
    assert v.t_gate(2.6, (se, df), lambda k: v._se_at(1.0, 1.0, k), ALPHA) == ""  # 2.51 ≤ 2.6: testable
    assert v.t_gate(None, (se, df), lambda k: v._se_at(1.0, 1.0, k), ALPHA) == ""  # nothing expected: no gate


def claim(rows: list[str], **extra: object) -> dict:
    check = {"check": "increasing", "metric": "test_top1_error", "rows": rows}
    return {"id": "c", "text": "t", "data": "any", "checks": [check], **extra}


def expected(claims: list[dict], numbers: dict | None = None, protocol: dict | None = None) -> v.Expected:
    return v.Expected.parse({
        "paper": "p", "dataset": "fashion_mnist", "scale": "full", "key": ["model"],
        "metrics": ["test_top1_error"], "numbers": numbers or {}, "protocol": protocol or {}, "claims": claims,
    })  # fmt: skip


def row(label: str, errors: list[float], losses: list[list[float]] | None = None) -> v.Cell:
    """Fashion-MNIST seeds ending at these errors; each with this training-loss curve (steps 10, 20, …)."""
    runs = []
    for i, error in enumerate(errors):
        curve = losses[i] if losses else [1.0, 1.0]
        history = {"train_loss": [(10 * (k + 1), x) for k, x in enumerate(curve)]}
        params = {"dataset.name": "fashion_mnist", "model": label}
        runs.append(
            v.Run(
                f"{label}{i}",
                label,
                "finished",
                params,
                {"test_top1_error": error, "train_loss": curve[-1]},
                history,
            )
        )
    return v.Cell(label, label, runs)


def test_the_power_gate_stops_a_claim_whose_paper_effect_is_below_what_the_seeds_can_find() -> None:
    ex = expected([claim(["relu", "prelu"])], numbers={"relu": 33.82, "prelu": 35.0})  # paper Δ +1.18
    out = v.judge(ex, [row("relu", [40.0, 41.0, 42.0]), row("prelu", [43.0, 44.0, 45.0])])[0]
    # spreads 1: detectable 2.51 (above); the observed 3-point gap is significant, but 1.18 was expected
    assert (out.kind, out.gate) == (v.UNDERPOWERED, "power") and out.p < ALPHA
    assert (
        out.why
        == "underpowered (relu < prelu: detectable 2.51 vs expected 1.18; about 10 seeds per row would do)"
    )
    declared = expected(
        [claim(["relu", "prelu"], effect=3.0)], {"relu": 33.82, "prelu": 35.0}, protocol={"model.width": 16}
    )
    reduced = [
        replace_params(row("relu", [40.0, 41.0, 42.0])),
        replace_params(row("prelu", [43.0, 44.0, 45.0])),
    ]
    small = v.judge(declared, reduced)[0]  # at reduced scale the declared small-scale effect stands in
    assert small.kind == v.REDUCED and "Δ(prelu − relu) +3.00 [+0.73, +5.27] vs paper +1.18" in small.headline


def replace_params(cell: v.Cell) -> v.Cell:
    """The cell as a run of another protocol (a width the expected block does not have)."""
    runs = [
        v.Run(r.run_id, r.cell, r.status, {**r.params, "model.width": "8"}, r.metrics, r.history)
        for r in cell.runs
    ]
    return v.Cell(cell.label, cell.cell_id, runs)


def test_the_budget_gate_names_the_row_still_improving_and_early_training_claims_skip_it() -> None:
    """Losses at iterations 10…40: 2.0, 1.8, 1.2, 0.9 — around 3/4 of 40 (28–32) the point at 30 is 1.2, the
    last tenth (36–40) is 0.9: a drop of 0.3 / 1.2 = 25 % > 10 %."""
    still = [[2.0, 1.8, 1.2, 0.9]] * 3
    flat = [[2.0, 1.0, 0.95, 0.94]] * 3  # 0.95 → 0.94: 1 %
    cells = [row("a", [10.0, 11.0, 12.0], flat), row("b", [20.0, 21.0, 22.0], still)]
    assert v.last_quarter_drop(cells[1].runs[0]) == pytest.approx(0.25)
    out = v.judge(expected([claim(["a", "b"])]), cells)[0]
    assert (out.kind, out.gate) == (v.UNDER_BUDGET, "budget")
    assert out.headline == "not testable at this budget (b still improving: −25 % over the last quarter)"
    early = v.judge(expected([claim(["a", "b"], early_training=True)]), cells)[0]
    assert early.kind == v.REPRODUCED


def test_a_data_paper_claim_on_other_data_is_never_judged() -> None:
    spec = claim(
        ["a", "b"], data="paper", small_scale="untestable", small_scale_reason="a 0.4-point ImageNet effect"
    )
    ex = v.Expected.parse({**_block(), "claims": [spec]})
    out = v.judge(ex, [row("a", [10.0, 11.0, 12.0]), row("b", [20.0, 21.0, 22.0])])[
        0
    ]  # fashion_mnist, not imagenet
    assert (out.kind, out.gate, out.p) == (v.NOT_COMPARABLE, "data", None)
    assert out.headline == "different protocol: not comparable (fashion_mnist, 20 iterations)"
    assert out.detail.endswith("— a 0.4-point ImageNet effect")
    with pytest.raises(ValueError, match="small_scale=testable: one of testable, analogue, untestable"):
        v.Claim.parse({**spec, "small_scale": "testable"})  # data: paper is never testable elsewhere


def _block() -> dict:
    return {"paper": "p", "dataset": "imagenet", "scale": "full", "key": ["model"], "metrics": ["test_top1_error"],
            "numbers": {}, "protocol": {}}  # fmt: skip


def test_gehan_handles_censored_seeds_by_hand() -> None:
    """a: reached at 10, censored at 30; b: reached at 20, censored at 30. Surely-before pairs: a1 before all
    three others, b1 before both censored seeds. Scores (before − after): a1 3, a2 −2, b1 1, b2 −2. The
    statistic mean(a) − mean(b) = 1; of the C(4, 2) = 6 splits, 3 reach ≥ 1 and 5 reach ≤ 1."""
    a, b = [(10, True), (30, False)], [(20, True), (30, False)]
    assert list(v.gehan_scores([10, 30, 20, 30], [True, False, True, False])) == [3, -2, 1, -2]
    assert v.gehan_p(a, b, earlier=True) == pytest.approx(3 / 6)
    assert v.gehan_p(a, b, earlier=False) == pytest.approx(5 / 6)


def test_a_trend_over_all_rows_by_hand() -> None:
    """Rows 0, 1, 2 with seeds (10, 11), (12, 13), (14, 15): slope 2 per row; residuals ±0.5, s² = 6·0.25/4,
    se = √(0.375 / 4) = 0.306; t = 6.53 on 4 degrees of freedom."""
    spec = claim(["a", "b", "c"])
    spec["checks"][0]["trend"] = True
    ex = expected([spec], numbers={"a": 29.6, "b": 28.7, "c": 27.0})  # VGG A → B → D: slope −1.3
    cells = [row("a", [10.0, 11.0]), row("b", [12.0, 13.0]), row("c", [14.0, 15.0])]
    out = v.judge(ex, cells)[0]
    assert out.effect.delta == pytest.approx(2.0) and out.effect.paper == pytest.approx(-1.3)
    assert out.p == pytest.approx(0.0014, abs=1e-4) and out.kind == v.REPRODUCED


def test_holm_adjusts_across_the_claims_of_a_page_and_the_counts_use_it() -> None:
    """0.011, 0.018 and 0.3 over 3 claims: 3 · 0.011 = 0.033, 2 · 0.018 = 0.036, 0.3 (monotone)."""
    assert v.holm([0.011, None, 0.3, 0.018]) == [
        pytest.approx(0.033),
        None,
        pytest.approx(0.3),
        pytest.approx(0.036),
    ]
    five = [0.011, 0.018, 0.3, 0.5, 0.9]  # over 5: 0.055 and 0.072 — neither stands
    adjusted = v.holm(five)
    assert adjusted[:2] == [pytest.approx(0.055), pytest.approx(0.072)]
    verdicts = [v.Verdict(str(i), "t", v.REDUCED if p < ALPHA else v.INCONCLUSIVE, p, "", p_reverse=1 - p)
                for i, p in enumerate(five)]  # fmt: skip
    # A smoke run's p values are measured but judge nothing: neither family holds them.
    smoke = v.Verdict("s", "t", v.SMOKE, 0.001, "", p_reverse=0.001)
    held = v.with_holm([*verdicts, smoke, v.Verdict("x", "t", v.NOT_RUN, None, "")])
    # each direction its own family of the five judged claims: reverse 0.989 … 0.1 → 1, 1, 1, 1, 5 · 0.1
    assert [(x.p_holm, x.p_reverse_holm) for x in held[5:]] == [(None, None), (None, None)]
    assert [x.p_reverse_holm for x in held[:5]] == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5])
    assert [x.after_holm for x in held[:2]] == [v.INCONCLUSIVE, v.INCONCLUSIVE]  # reproduced before Holm only
    assert (
        held[0].kind == v.REDUCED and held[-1].p_holm is None
    )  # a claim no test judged is not in the family
    assert "(Holm: = 0.055, reverse = 1)" in held[0].headline


def test_every_claim_of_a_full_preset_declares_how_it_can_be_tested_away_from_the_papers_data() -> None:
    """small_scale (testable | analogue | untestable) with a one-line reason, decided before any run; a
    `data: paper` claim is untestable elsewhere; depth orderings declare a trend test."""
    from conftest import CONF_DIR

    from runner.config import parse_yaml

    trends = set()
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        if path.stem.endswith(("_small", "_smoke")):
            continue
        for spec in parse_yaml(path.read_text())["expected"]["claims"]:
            claim = v.Claim.parse(spec)
            assert claim.small_scale in v.SMALL_SCALE and claim.small_scale_reason, (path.stem, claim.id)
            assert (claim.data == "paper") <= (claim.small_scale == "untestable"), (path.stem, claim.id)
            trends |= {(path.stem, claim.id) for c in claim.checks if c.trend}
    assert trends == {("vgg_depth", "deeper_is_better"), ("resnet_cifar", "resnet_deeper_better"),
                      ("resnet_cifar", "plain_deeper_worse")}  # fmt: skip
