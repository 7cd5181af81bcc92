"""A data set's facts live once, in the `about:` block of its YAML: every data set states all of them, the
data registry's shape agrees with them, and an override of a fact is refused by the pre-flight."""

from __future__ import annotations

import math

import pytest
from conftest import options

from runner.analysis.verdicts import chance_loss
from runner.config import datasets
from runner.config.identity import config_hash
from runner.data import dataset_config, dataset_shape
from runner.run.preflight import precheck


@pytest.mark.parametrize("name", options("dataset"))
def test_every_data_set_states_every_fact(name: str) -> None:
    facts = datasets.about(name)
    assert set(facts) == set(datasets.FACTS) and facts["kind"] in datasets.KINDS


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "cifar100"])
def test_the_registry_shape_is_the_yaml_facts(name: str) -> None:
    shape, facts = dataset_shape(dataset_config(name)), datasets.about(name)
    assert (shape.channels, shape.size, shape.classes) == (
        facts["channels"],
        facts["image_size"],
        facts["classes"],
    )


def test_classes_come_from_the_facts_or_from_the_setting_the_facts_defer_to() -> None:
    assert datasets.num_classes("cifar100", {}) == 100
    assert datasets.num_classes("imagenet", {"num_classes": 7}) == 7
    assert chance_loss({"dataset.name": "cifar100"}) == pytest.approx(math.log(100))
    assert (
        datasets.train_images("fashion_mnist", {}) == 60_000 and datasets.train_images("imagenet", {}) is None
    )
    assert datasets.is_folder("imagenet") and not datasets.is_folder("synthetic")


def test_a_fact_cannot_be_overridden_and_is_not_hashed() -> None:
    line = precheck(["dataset.about.classes=5"])
    assert line is not None and line.startswith("dataset.about.classes=5 is a fact of fashion_mnist")
    from conftest import compose

    cfg = compose([])
    edited = {**cfg, "dataset": {**cfg["dataset"], "about": {**cfg["dataset"]["about"], "display": "x"}}}
    assert config_hash(edited) == config_hash(cfg)


@pytest.mark.parametrize(
    ("name", "settings", "classes", "images", "folder"),
    [("fashion_mnist", {}, 10, 60_000, False), ("cifar10", {}, 10, 50_000, False), ("cifar100", {}, 100, 50_000, False),
     ("synthetic", {"num_classes": 7, "train_size": 640}, 7, 640, False),
     ("imagenet", {"num_classes": "1000"}, 1000, None, True)],
)  # fmt: skip
def test_each_data_sets_classes_training_images_and_kind(
    name: str, settings: dict, classes: int, images: int | None, folder: bool
) -> None:
    """A fixed fact wins; a null fact defers to the setting it names (synthetic: dataset.num_classes and
    dataset.train_size); a folder set's training images are known only from its files (None)."""
    assert datasets.num_classes(name, settings) == classes
    assert datasets.train_images(name, settings) == images
    assert datasets.is_folder(name) is folder


def test_a_fixed_fact_is_not_overridden_by_a_setting() -> None:
    assert datasets.num_classes("cifar10", {"num_classes": 7}) == 10
    assert datasets.train_images("cifar10", {"train_size": 640}) == 50_000


def test_an_unknown_data_set_names_the_file_it_lacks() -> None:
    from runner.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        datasets.about("mnist")
    assert str(refused.value) == "dataset.name='mnist': no conf/dataset/mnist.yaml"
