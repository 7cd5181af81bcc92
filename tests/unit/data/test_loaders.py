"""The registry's refusal of an unknown data set, the epoch's shuffle, and the synthetic data set's options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fakes import ctx

from runner.data import (
    DATASETS,
    Family,
    Shape,
    build_data,
    check_data,
    dataset_config,
    dataset_names,
    dataset_shape,
    register_dataset,
)
from runner.data.common import epoch_order
from runner.errors import ConfigError


@pytest.mark.parametrize("ask", ["shape", "check", "build"])
def test_an_unknown_data_set_is_refused_naming_the_known_ones(tmp_path: Path, ask: str) -> None:
    cfg = {"name": "mnist"}
    with pytest.raises(ConfigError) as refused:
        if ask == "shape":
            dataset_shape(cfg)
        elif ask == "check":
            check_data(cfg, tmp_path)
        else:
            build_data(cfg, ctx(tmp_path))
    assert str(refused.value) == (
        "dataset.name='mnist' is unknown; allowed: cifar10, cifar100, fashion_mnist, imagenet, synthetic"
    )


def test_a_registered_builder_is_what_the_config_name_reaches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`@register_dataset(name, ...)` is all a new data set needs: its builder, check and shape answer for that
    name; without a shape, the YAML's `about` block states it."""
    calls = []

    def check(cfg: dict, cwd: Path) -> None:
        calls.append(("check", cfg["name"], cwd))

    def shape(cfg: dict) -> Shape:
        return Shape(2, cfg["size"], 5)

    def build(cfg: dict, context: object) -> str:
        calls.append(("build", cfg["name"], context))
        return "built"

    monkeypatch.setitem(DATASETS, "toy", None)  # removed again after the test
    monkeypatch.setitem(DATASETS, "plain", None)
    assert register_dataset("toy", shape=shape, check=check)(build) is build
    assert register_dataset("plain")(build) is build
    assert DATASETS["toy"] == Family(build, check, shape) and DATASETS["plain"].check is None
    assert {"toy", "plain"} <= set(dataset_names())
    toy = {"name": "toy", "size": 9}
    context = ctx(tmp_path)
    assert dataset_shape(toy) == Shape(2, 9, 5) and build_data(toy, context) == "built"
    check_data(toy, tmp_path)
    check_data({"name": "plain"}, tmp_path)  # no check: nothing to do
    assert calls == [("build", "toy", context), ("check", "toy", tmp_path)]
    facts = {"name": "plain", "about": {"channels": 1, "image_size": 7, "classes": 4}}
    assert dataset_shape(facts) == Shape(1, 7, 4)


def test_the_epoch_order_is_a_pinned_permutation_of_the_seed_and_the_epoch() -> None:
    """Every loader shuffles by it (resident and folder sets alike): the same (seed, epoch) gives the same order
    across versions, so a run resumed mid-epoch or repeated sees the same batches; each epoch has its own."""
    assert epoch_order(10, 0, 0).tolist() == [3, 4, 1, 8, 2, 7, 9, 6, 5, 0]
    assert epoch_order(10, 0, 1).tolist() == [8, 1, 5, 4, 9, 0, 3, 2, 7, 6]
    assert epoch_order(10, 3, 0).tolist() == [5, 0, 7, 2, 6, 4, 8, 1, 9, 3]
    torch.manual_seed(123)  # the global generator plays no part
    assert epoch_order(10, 0, 1).tolist() == [8, 1, 5, 4, 9, 0, 3, 2, 7, 6]
    orders = {tuple(epoch_order(50, 1, epoch).tolist()) for epoch in range(20)}
    assert len(orders) == 20 and all(sorted(order) == list(range(50)) for order in orders)


SYNTHETIC = dataset_config("synthetic", train_size=16, test_size=4, val_split=0)


@pytest.mark.parametrize("key", ["image_size", "in_channels", "num_classes", "train_size", "test_size"])
@pytest.mark.parametrize("value", [0, -2, True, False, 2.0, "8", None], ids=repr)
def test_synthetic_sizes_must_be_integers_of_at_least_one(tmp_path: Path, key: str, value: object) -> None:
    """A bool is no size (True would be read as 1), nor a float or a string: one ConfigError line naming the key."""
    with pytest.raises(ConfigError) as refused:
        check_data({**SYNTHETIC, key: value}, tmp_path)
    assert str(refused.value) == f"dataset.{key}={value!r} is not allowed; expected an integer ≥ 1"


def test_synthetic_sizes_of_one_are_allowed_and_the_data_follows_its_seed(tmp_path: Path) -> None:
    cfg = {**SYNTHETIC, "image_size": 1, "in_channels": 1, "num_classes": 1, "test_size": 1}
    check_data(cfg, tmp_path)
    data = build_data(cfg, ctx(tmp_path, batch_size=4))
    assert (data.num_classes, data.in_channels, data.image_size, data.train_size) == (1, 1, 1, 16)
    x, y = next(data.test.batches(0))
    assert x.shape == (1, 1, 1, 1) and y.tolist() == [0]

    def test_images(seed: int) -> torch.Tensor:
        return next(build_data({**SYNTHETIC, "data_seed": seed}, ctx(tmp_path)).test.batches(0))[0]

    assert torch.equal(test_images(0), test_images(0)) and not torch.equal(test_images(0), test_images(1))


def test_synthetic_training_set_must_be_larger_than_the_validation_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        check_data({**SYNTHETIC, "val_split": 16}, tmp_path)
    assert str(refused.value) == "dataset.val_split=16 must be smaller than the training set (16 images)"
