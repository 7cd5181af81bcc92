"""What names a config (runner/config/identity.py), over every leaf of every config the runner ships: the default
config and each preset. A leaf that changes what is trained changes the hash (else a finished run would be
skipped for a config it never ran); a leaf declared NOT_HASHED does not (else a changed log interval would
start a finished job again); the cell is the hash without the seed, and only without it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import PRESETS_GROUP, compose, options

from runner.config.identity import NOT_HASHED, cell_id, config_hash
from runner.config.schema import flatten

NAMES = ["default", *options("experiment")]  # the default config and every preset
pytestmark = pytest.mark.xdist_group(PRESETS_GROUP)


def composed(name: str) -> dict[str, Any]:
    """The default config or a preset's, resolved."""
    return compose([] if name == "default" else [f"+experiment={name}"])


def changed(value: Any) -> Any:
    """Another value of the same kind (a value of another kind for null)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "_"
    if isinstance(value, list):
        return [*value, 1]
    assert value is None, f"a leaf of an unexpected type: {value!r}"
    return 1


def leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every leaf (a key may hold a dot itself: the presets' expected.protocol)."""
    for key, value in node.items():
        yield from leaves(value, (*path, key)) if isinstance(value, dict) else [(*path, key)]


def with_leaf(cfg: dict[str, Any], path: tuple[str, ...], measure: Callable[[dict[str, Any]], str]) -> str:
    """`measure` (the hash, the cell) of `cfg` with the leaf at `path` changed: changed in place and put back,
    as a copy of the whole config for each of its leaves of each preset cost more than the hashes."""
    node = cfg
    for part in path[:-1]:
        node = node[part]
    before = node[path[-1]]
    node[path[-1]] = changed(before)
    try:
        return measure(cfg)
    finally:
        node[path[-1]] = before


# What may be left out of the hash, stated here apart from runner/config/identity.py: a key added to NOT_HASHED
# there (or dropped from it) must be added here too, with why it does not change what is trained.
NOT_TRAINING = {
    "tracking.": "where and how the run is logged",
    "trainer.progress": "the progress bars",
    "trainer.log_every": "how often the host reads the running sums",
    "trainer.ckpt_minutes": "how often a checkpoint is written within an epoch",
    "trainer.threads": "how many cores compute the same steps",
    "resume": "resume and resume_from: whether an earlier run is continued",
    "expected.": "a preset's paper claims, which only the report reads",
    "dataset.about.": "facts about the data set, not settings",
}


def hashed(key: str) -> bool:
    return not key.startswith(tuple(NOT_TRAINING)) and key != "expected"


def test_what_is_left_out_of_the_hash_is_declared_with_its_reason() -> None:
    assert sorted(NOT_HASHED) == sorted(NOT_TRAINING)


def test_every_config_has_leaves_of_both_kinds_and_every_group() -> None:
    """The draw below covers the whole config: every group's leaves, hashed or not, and the presets' own."""
    leaves = {k for name in NAMES for k in flatten(composed(name))}
    assert len(NAMES) >= 22
    groups = {k.split(".")[0] for k in leaves}
    assert {"model", "init", "act", "dataset", "schedule", "optim", "trainer", "tracking", "seed"} <= groups
    assert {k for k in leaves if not hashed(k)} >= {"trainer.log_every", "tracking.uri", "resume"}
    assert any(k.startswith("expected.") for k in leaves)


@pytest.mark.parametrize("name", NAMES)
def test_the_hash_changes_with_every_leaf_but_those_declared_not_hashed(name: str) -> None:
    cfg = composed(name)
    before = config_hash(cfg)
    moved = {".".join(p): with_leaf(cfg, p, config_hash) != before for p in leaves(cfg)}
    assert moved.keys() == flatten(cfg).keys()
    assert [k for k, m in moved.items() if hashed(k) and not m] == []  # a leaf lost from the hash
    assert [k for k, m in moved.items() if not hashed(k) and m] == []  # a leaf that should not count


@pytest.mark.parametrize("name", NAMES)
def test_the_cell_changes_with_every_hashed_leaf_but_the_seed(name: str) -> None:
    cfg = composed(name)
    before = cell_id(cfg)
    moved = {".".join(p): with_leaf(cfg, p, cell_id) != before for p in leaves(cfg) if hashed(".".join(p))}
    assert [k for k, m in moved.items() if not m] == ["seed"]
    assert cell_id(cfg) != config_hash(cfg)


def test_a_leaf_json_cannot_hold_is_hashed_as_its_text_and_the_hash_is_16_hex_digits() -> None:
    """`default=str`: a Path (or any object) left in a config hashes as its string, never raises."""
    from pathlib import Path

    with_path = config_hash({"dataset": {"root": Path("/data/cifar")}, "seed": 0})
    assert with_path == config_hash({"dataset": {"root": "/data/cifar"}, "seed": 0})
    assert len(with_path) == 16 and int(with_path, 16) >= 0


def test_the_hash_does_not_depend_on_the_order_of_the_keys() -> None:
    """A config composed in another order (a preset that sets its groups in another order) is the same job."""
    one = {"seed": 0, "optim": {"lr": 0.1, "momentum": 0.9}, "model": {"name": "resnet20", "width": 16}}
    other = {"model": {"width": 16, "name": "resnet20"}, "optim": {"momentum": 0.9, "lr": 0.1}, "seed": 0}
    assert config_hash(one) == config_hash(other) and cell_id(one) == cell_id(other)
