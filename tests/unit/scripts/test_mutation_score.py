"""scripts/mutation_score.py: the score per module that `make mutants` judges (≥ 90 %), equivalents left out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "mutation_score.py"
spec = importlib.util.spec_from_file_location("mutation_score", SCRIPT)
mutation_score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation_score)


def test_listed_mutants_leave_the_score_and_a_module_under_the_minimum_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "equivalent.md"
    listed.write_text(
        "| mutant | change | why |\n|---|---|---|\n| `a.x_f__mutmut_1` | c | r |\n| `a.x_f__mutmut_9` | c | r |\n"
        f"\n{mutation_score.CUDA_HEADING}\n\n| mutant | change | why |\n|---|---|---|\n| `b.xǁCǁg__mutmut_2` | c | r |\n"
    )
    names = mutation_score.equivalents(listed)
    assert names == {
        "a.x_f__mutmut_1": "equivalent",
        "a.x_f__mutmut_9": "equivalent",
        "b.xǁCǁg__mutmut_2": "cuda",
    }
    results = [
        "    a.x_f__mutmut_1: survived",  # listed: out of the score
        "    a.x_f__mutmut_2: killed",
        "    a.x_f__mutmut_3: timeout",  # a hang counts as detected
        "    a.x_f__mutmut_4: survived",
        "    b.xǁCǁg__mutmut_1: killed",
        "    b.xǁCǁg__mutmut_2: survived",  # listed as CUDA-only
    ]
    assert mutation_score.score(results, names, 60.0) == 0
    out = capsys.readouterr().out
    assert "a                                      2      4      1   66.7%" in out
    assert "b                                      1      2      1  100.0%" in out
    assert "listed: 1 equivalent, 1 told apart only on a CUDA device" in out
    assert "1 survivors neither killed nor listed" in out and "a.x_f__mutmut_4: survived" in out
    assert mutation_score.score(results, names, 70.0) == 1
    assert "under 70 %: a" in capsys.readouterr().out
    assert (
        mutation_score.module_of("runner.train.schedule.xǁPlateauǁepoch_end__mutmut_3")
        == "runner.train.schedule"
    )
    assert mutation_score.module_of("runner.models.layers.x__kaiming__mutmut_1") == "runner.models.layers"


def test_a_sample_scores_only_its_mutants_with_the_interval_of_the_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = [f"    a.x_f__mutmut_{n}: killed" for n in range(1, 10)] + [
        "    a.x_f__mutmut_10: survived",
        "    a.x_f__mutmut_11: survived",  # not drawn: out of the score
        "    b.x_g__mutmut_1: not checked",  # a module none of whose mutants was drawn
    ]
    drawn = {f"a.x_f__mutmut_{n}" for n in range(1, 11)}
    assert mutation_score.score(results, {}, 90.0, drawn) == 0
    out = capsys.readouterr().out
    # 9 of 10: Clopper-Pearson 95 % interval 55.5–99.7 %.
    assert "a                                      9     10      0   90.0%    55.5– 99.7" in out
    assert "b " not in out and "a.x_f__mutmut_11" not in out
    assert mutation_score.interval(0, 0) == (100.0, 100.0)
    low, high = mutation_score.interval(60, 60)
    assert round(low, 1) == 94.0 and high == 100.0
