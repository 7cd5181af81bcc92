"""Property (issue 7): any override drawn from the config schema either runs or is refused in one line.

Draws are keys of runner.config.schema.SCHEMA and group choices (conf/<group>/*.yaml), each with a valid or an
invalid value; and (issue 18) every leaf of every option of every group, with that option chosen
(`model=alexnet model.lrn=…`, `dataset=imagenet dataset.scale=…`). Most draws are checked in-process by
`runner.run.preflight.precheck` (the same code the command runs first: the schema, the rules between keys, then the
meta-device dry build); a handful go through the real entry point at tiny scale, where a run must finish or
exit 2 with the one-line error, never a Python traceback, and leave no run, checkpoint or output directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import CONF_DIR, TINY, mlflow_runs, options, run_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.config import GROUPS, parse_yaml
from runner.config.schema import SCHEMA, flatten
from runner.run.preflight import precheck


def examples(full: int) -> int:
    """Draws per property: all of them in `make test`, a sixth in `make test-fast` (TEST_FAST=1), the edit loop.
    Each draw composes a config through Hydra (~0.4 s on 2 cores of an AMD EPYC): 40 draws take ~16 s there.
    Hypothesis keeps the failing draws it found (.hypothesis/) and tries them first the next time."""
    return max(10, full // 6) if os.environ.get("TEST_FAST") == "1" else full


# The config groups of conf/config.yaml's defaults list (presets are `+experiment=...`, not a group).
GROUP_CHOICES = {g: options(g) for g in GROUPS}

# Values that are valid for some keys and invalid for others: types, ranges, empty, null, lists.
ANY_VALUE = st.one_of(
    st.integers(-3, 3000).map(str),
    st.sampled_from(
        ["0.5", "-0.1", "1e-3", "1e30", "0", "true", "false", "null", "abc", "''", "[1,2]", "[]", "auto"]
    ),
)


def _leaves() -> list[tuple[str, str, str]]:
    """(group, option, key) for every leaf of every option of every group (conf/<group>/<option>.yaml)."""
    out = []
    for group in GROUPS:
        for option in GROUP_CHOICES[group]:
            content = parse_yaml((CONF_DIR / group / f"{option}.yaml").read_text())
            content = {k: v for k, v in content.items() if k != "defaults"}
            out += [(group, option, key) for key in flatten(content, f"{group}.") if key != f"{group}.name"]
    return out


LEAVES = _leaves()
# Values aimed at the list-valued and name-valued leaves: elements that exist and do not, in and out of
# order, and numbers that are not finite.
LEAF_VALUES = st.sampled_from(
    [
        "nan", "inf", "-inf", "1e309", "[crop,flip]", "[flip,crop]", "[crop,crop]", "[crop,flop]", "[1]",
        "scale_jitter", "alexnet", "random_resized_crop", "[256,512]", "[512,256]", "[0,1]", "[100,50]",
        "[10,20,30]", "[8,6,6]", "[0,6,6]", "[resnet110]", "[nope]", "1.5", "0.99", "2", "4", "8", "16",
        "227", "224", "A", "C", "3x3", "fan_out", "uniform", "bf16", "cpu", "dense", "ten_crop", "center",
        "per_pixel", "black",
    ]
)  # fmt: skip


@st.composite
def override(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        group = draw(st.sampled_from(sorted(GROUP_CHOICES)))
        choice = draw(st.one_of(st.sampled_from(GROUP_CHOICES[group]), st.sampled_from(["nope", "", "1"])))
        return f"{group}={choice}"
    key = draw(st.sampled_from([*SCHEMA, "optim.lrr", "trainer.nope"]))
    return f"{key}={draw(ANY_VALUE)}"


@st.composite
def leaf_draw(draw: st.DrawFn) -> list[str]:
    """An option of a group (not only the default) and a value for one of its leaves, plus maybe another."""
    group, option, key = draw(st.sampled_from(LEAVES))
    value = draw(st.one_of(ANY_VALUE, LEAF_VALUES))
    extra = draw(st.lists(override(), max_size=1))
    return [f"{group}={option}", f"{key}={value}", *extra]


def assert_one_line_naming_a_key(overrides: list[str], problem: str) -> None:
    assert "\n" not in problem and problem.strip(), problem
    named = {o.split("=", 1)[0] for o in overrides} | {o.split("=", 1)[0].split(".")[0] for o in overrides}
    assert any(key in problem for key in named), (overrides, problem)


@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(override(), min_size=1, max_size=3))
def test_every_draw_is_accepted_or_refused_in_one_line(overrides: list[str]) -> None:
    problem = precheck(overrides)  # must not raise
    if problem is not None:
        assert_one_line_naming_a_key(overrides, problem)


@pytest.mark.slow  # seconds a test: make test runs it, make test-fast leaves it
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf_draw())
def test_every_leaf_of_every_option_is_refused_in_one_line_or_builds(overrides: list[str]) -> None:
    problem = precheck(overrides)  # the schema, the rules between keys, then the dry build: must not raise
    if problem is not None:
        assert_one_line_naming_a_key(overrides, problem)


# Through the real entry point: a draw that runs (tiny), and draws refused before Hydra (schema, between keys)
# or by the dry build (PReLU-14's 7×7 conv on a 4×4 input), each in one line with nothing left behind.
REAL = {
    "runs": ["act=prelu", "init=xavier_he", "schedule=cosine", "optim.nesterov=true"],
    "val-split": ["dataset.val_split=100000"],
    "milestones": ["schedule=multistep", "schedule.milestones=[5,2]"],
    "augment-element": ["dataset.augment=[crop,flop]"],
    "dry-build": ["dataset=synthetic", "model=prelu_14", "model.width_mult=0.0625", "dataset.image_size=4"],
}


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("name", list(REAL))
def test_real_entry_point_runs_or_refuses_without_traceback(name: str, workdir: Path) -> None:
    done = run_runner([*TINY, "trainer.max_steps=2", *REAL[name]], workdir, {"OMP_NUM_THREADS": "1"})
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    if name == "runs":
        assert done.returncode == 0, done.stderr[-3000:]
        assert [r.info.status for r in mlflow_runs(workdir)] == ["FINISHED"]
        return
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("runner: error: "), done.stderr
    assert mlflow_runs(workdir) == [] and not (workdir / "checkpoints").exists()
    assert not (workdir / "outputs").exists() and not (workdir / "multirun").exists()


# Issue 30: values beyond each key's domain (huge, negative, non-finite, empty, unicode) and directories that cannot
# be written, drawn through the real pre-flight: refused in one line naming the key, nothing written.
UNICODE = st.text(st.characters(categories=["L", "So"], min_codepoint=0x80), min_size=1, max_size=6)
UNWRITABLE = st.sampled_from(["/proc/runner", "/sys/runner/x", "/dev/null/runner", "/proc/ünï/cødé"])
PATH_KEYS = {
    "trainer.ckpt_dir": "{}",
    "tracking.uri": "sqlite:///{}/mlflow.db",
    "tracking.artifact_root": "{}",
    "hydra.run.dir": "{}",
}
FREE_TEXT = {"dataset.root"}  # any non-empty string is in its domain (the data check reads it in the job)


def _beyond(key: str) -> st.SearchStrategy[str]:
    """Values outside `key`'s domain, as override text (every integer or number key of the schema is ≥ 0)."""
    rule = SCHEMA[key]
    if int in rule.types and float not in rule.types and bool not in rule.types:
        return st.one_of(st.integers(min_value=2**64), st.integers(max_value=-1)).map(str)
    if float in rule.types:
        huge = st.integers(min_value=400, max_value=2000).map(lambda digits: "1" + "0" * digits)
        negative = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr)
        return st.one_of(st.sampled_from(["nan", "inf", "-inf", "1e400"]), huge, negative)
    quoted = UNICODE.map(lambda text: f"'{text}'")
    if list in rule.types and rule.item is not None:
        return st.one_of(st.just("''"), quoted.map(lambda text: f"[{text}]"))
    free = (
        rule.check is not None
        and rule.check("x")
        and (rule.allowed == "a non-empty string" or key in FREE_TEXT)
    )
    return st.just("''") if free else st.one_of(st.just("''"), quoted)


BEYOND_KEYS = sorted(k for k in SCHEMA if not k.startswith("dataset.about."))  # facts: issue 31's own checks


@st.composite
def beyond_draw(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(the key that is wrong, the overrides): one key beyond its domain, or a directory that cannot be written."""
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(sorted(PATH_KEYS)))
        return key, [f"{key}={PATH_KEYS[key].format(draw(UNWRITABLE))}"]
    key = draw(st.sampled_from(BEYOND_KEYS))
    return key, [f"{key}={draw(_beyond(key))}"]


@pytest.mark.slow  # seconds a test: make test runs it, make test-fast leaves it
@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(beyond_draw())
def test_values_beyond_the_domains_are_refused_by_the_pre_flight_naming_the_key(
    draw: tuple[str, list[str]],
) -> None:
    key, overrides = draw
    problem = precheck(overrides)  # must not raise
    assert problem is not None and "\n" not in problem, (overrides, problem)
    assert key in problem, (overrides, problem)


@pytest.mark.slow  # each draw runs the entry point (~0.4 s): make test runs them, make test-fast does not
@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(draw=beyond_draw())
def test_the_real_entry_point_refuses_them_in_one_line_exit_2_and_an_empty_store(
    draw: tuple[str, list[str]], tmp_path: Path, empty_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_in_process

    key, overrides = draw
    store = tmp_path / "mlflow.db"
    if not store.exists():
        store.write_bytes(empty_store.read_bytes())
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_in_process(tmp_path, [*TINY, *overrides])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stopped.value.code == 2 and len(lines) == 1 and key in lines[0], (overrides, lines)
    assert mlflow_runs(tmp_path) == [] and [p.name for p in tmp_path.iterdir()] == ["mlflow.db"], overrides
