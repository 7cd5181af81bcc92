"""Property (issue 7): any override drawn from the config schema either runs or is refused in one line.

Draws are keys of runner.config.SCHEMA and group choices (conf/<group>/*.yaml), each with a valid or an
invalid value. Most draws are checked in-process by `runner.cli.precheck` (the same code the command runs
first); a handful go through the real entry point at tiny scale, where a run must finish or exit with the
one-line error, never a Python traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY, mlflow_runs, options, run_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.cli import precheck
from runner.config import GROUPS, SCHEMA

# The config groups of conf/config.yaml's defaults list (presets are `+experiment=...`, not a group).
GROUP_CHOICES = {g: options(g) for g in GROUPS}

# Values that are valid for some keys and invalid for others: types, ranges, empty, null, lists.
ANY_VALUE = st.one_of(
    st.integers(-3, 3000).map(str),
    st.sampled_from(
        ["0.5", "-0.1", "1e-3", "1e30", "0", "true", "false", "null", "abc", "''", "[1,2]", "[]", "auto"]
    ),
)


@st.composite
def override(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        group = draw(st.sampled_from(sorted(GROUP_CHOICES)))
        choice = draw(st.one_of(st.sampled_from(GROUP_CHOICES[group]), st.sampled_from(["nope", "", "1"])))
        return f"{group}={choice}"
    key = draw(st.sampled_from([*SCHEMA, "optim.lrr", "trainer.nope"]))
    return f"{key}={draw(ANY_VALUE)}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(override(), min_size=1, max_size=3))
def test_every_draw_is_accepted_or_refused_in_one_line(overrides: list[str]) -> None:
    problem = precheck(overrides)  # must not raise
    if problem is not None:
        assert "\n" not in problem and problem.strip(), problem
        named = {o.split("=", 1)[0] for o in overrides} | {
            o.split("=", 1)[0].split(".")[0] for o in overrides
        }
        assert any(key in problem for key in named), (overrides, problem)


# Through the real entry point: a draw that runs (tiny), and draws refused in the job or before Hydra.
REAL = [
    ["act=prelu", "init=xavier_he", "schedule=cosine", "optim.nesterov=true"],
    ["dataset.val_split=100000"],
]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("extra", REAL, ids=["runs", "refused-in-job"])
def test_real_entry_point_runs_or_refuses_without_traceback(extra: list[str], workdir: Path) -> None:
    done = run_runner([*TINY, "trainer.max_steps=2", *extra], workdir, {"OMP_NUM_THREADS": "1"})
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    if precheck(extra) is None and "val_split" not in extra[0]:
        assert done.returncode == 0, done.stderr[-3000:]
        assert [r.info.status for r in mlflow_runs(workdir)] == ["FINISHED"]
    else:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("runner: error: "), (
            done.stderr
        )
        assert mlflow_runs(workdir) == []
