"""One source of every default (issue 13): the YAML options of each config group and the registries name
the same things; every leaf of every option has a validation rule; every option's keys are all the code reads
(building each part from its YAML alone raises no KeyError)."""

from __future__ import annotations

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from runner.config import CONF_DIR, parse_yaml
from runner.config.schema import (
    REGISTRIES,
    SCHEMA,
    check_value,
    declared_names,
    flatten,
    passes,
    registry_names,
)
from runner.errors import ConfigError

REGISTRY = REGISTRIES  # group → the registry that decides its `name`
GROUPS = [*REGISTRY, "trainer", "tracking"]


def yaml_options(group: str) -> dict[str, dict]:
    """conf/<group>/<option>.yaml → its content (defaults lists dropped)."""
    from pathlib import Path

    out = {}
    for path in sorted((Path(CONF_DIR) / group).glob("*.yaml")):
        content = parse_yaml(path.read_text())
        out[path.stem] = {k: v for k, v in content.items() if k != "defaults"}
    return out


def test_every_conf_file_reads_the_same_to_runner_as_to_hydra() -> None:
    """runner reads some conf/ files itself (parse_yaml: the help page, the data sets' facts, the declared names,
    the results page) where Hydra reads them with OmegaConf's loader. A value the two read differently (a
    YAML 1.1 float without a dot, such as `lr: 1e-4`, is a string to PyYAML and a float to OmegaConf) would
    mean one thing to the pre-check and another to the job; libyaml's parser and PyYAML's own agree too."""
    paths = sorted(CONF_DIR.rglob("*.yaml"))
    assert len(paths) > 60
    for path in paths:
        text = path.read_text()
        ours = parse_yaml(text)
        assert ours == yaml.safe_load(text), path
        assert ours == OmegaConf.to_container(OmegaConf.load(path)), path
    assert parse_yaml("lr: 1.0e-4\nsteps: [1, 2]\nname: ~") == {"lr": 1e-4, "steps": [1, 2], "name": None}


def test_yaml_is_parsed_by_libyaml_where_pyyaml_has_it_else_by_pyyamls_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used = []

    class Recording(yaml.SafeLoader):  # stands in for the C loader: records that it was chosen
        def __init__(self, stream: str) -> None:
            used.append(type(self).__name__)
            super().__init__(stream)

    monkeypatch.setattr(yaml, "CSafeLoader", Recording, raising=False)
    assert parse_yaml("a: [1, 2]") == {"a": [1, 2]} and used == ["Recording"]
    monkeypatch.delattr(yaml, "CSafeLoader")  # PyYAML built without libyaml
    assert parse_yaml("a: [1, 2]") == {"a": [1, 2]} and used == ["Recording"]


@pytest.mark.parametrize("group", sorted(REGISTRY))
def test_the_yaml_options_and_the_registry_name_the_same_things(group: str) -> None:
    in_yaml = {option["name"] for option in yaml_options(group).values()}
    assert in_yaml == set(registry_names(REGISTRY[group])) == set(declared_names(group))


@pytest.mark.parametrize("group", GROUPS)
def test_every_leaf_of_every_option_has_a_rule_its_value_passes(group: str) -> None:
    for option, content in yaml_options(group).items():
        for key, value in flatten(content, f"{group}.").items():
            assert key in SCHEMA, f"conf/{group}/{option}.yaml: {key} has no validation rule"
            assert passes(value, SCHEMA[key]), f"conf/{group}/{option}.yaml: {key}={value!r}"


def test_a_schema_name_rule_lists_what_the_registry_holds() -> None:
    assert SCHEMA["schedule.name"].describe() == "one of constant, cosine, multistep, plateau"
    with pytest.raises(ConfigError, match="schedule.name='step' is not allowed; expected one of constant"):
        check_value("schedule.name", "step", SCHEMA["schedule.name"])


def test_each_part_builds_from_its_yaml_alone() -> None:
    """A key the code reads but the YAML lacks would raise KeyError here: no fallback hides it."""
    from runner.models import build_model
    from runner.models.layers import init_weights, make_act
    from runner.train.optim import build_optimizer
    from runner.train.schedule import build_schedule

    acts, inits = yaml_options("act"), yaml_options("init")
    for act in acts.values():
        model = build_model(
            {**yaml_options("model")["resnet20"], "width": 2},
            num_classes=10,
            in_channels=1,
            image_size=32,
            act=make_act(act),
        )
        for scheme in inits.values():
            init_weights(model, scheme, act)
        for optim in yaml_options("optim").values():
            optimizer = build_optimizer(model, optim, optim["lr"])
            for schedule in yaml_options("schedule").values():
                build_schedule(optimizer, schedule, 100, "resnet20").epoch_end(50.0)
    assert isinstance(optimizer, torch.optim.SGD)


def test_the_schemas_data_choices_are_the_data_modules() -> None:
    """The pre-check names the modes without importing the data modules (torch); they must agree."""
    from runner.data.common import NORMALIZE_MODES
    from runner.data.tensor_loader import CROP_PADS, TEST_VIEWS

    def allowed(key: str) -> set[str]:
        return set(SCHEMA[key].describe().removeprefix("one of ").split(", "))

    assert allowed("dataset.normalize") == set(NORMALIZE_MODES)
    assert allowed("dataset.crop_pad") == set(CROP_PADS)
    from runner.config.schema import FOLDER_TEST_VIEWS

    # the schema lists every set's views; a resident set offers its own (the rest is an error there)
    assert allowed("dataset.test_view") == set(TEST_VIEWS) | set(FOLDER_TEST_VIEWS)


def test_cosine_eta_min_may_reach_the_lr_but_not_pass_it() -> None:
    from conftest import compose

    from runner.config.schema import validate

    validate(compose(["schedule=cosine", "optim.lr=0.1", "schedule.eta_min=0.1"]))  # equal: fine
    with pytest.raises(
        ConfigError,
        match=r"^schedule\.eta_min=0\.2 is not allowed; expected a number in \[0, optim\.lr=0\.1\]$",
    ):
        validate(compose(["schedule=cosine", "optim.lr=0.1", "schedule.eta_min=0.2"]))


def test_a_cell_is_the_config_without_its_seed() -> None:
    from conftest import compose

    from runner.config.identity import cell_id, config_hash

    seed0, seed1 = compose(["seed=0"]), compose(["seed=1"])
    assert cell_id(seed0) == cell_id(seed1) and config_hash(seed0) != config_hash(seed1)
    assert cell_id(seed0) != cell_id(compose(["seed=0", "optim.lr=0.05"]))
    assert cell_id(seed0) == config_hash({k: x for k, x in seed0.items() if k != "seed"})


def test_a_run_is_named_by_its_choices_then_what_its_overrides_change() -> None:
    from runner.config.identity import run_name

    vgg = {"model": "vgg_e", "init": "kaiming", "act": "prelu", "dataset": "fashion_mnist"}
    assert run_name(vgg, []) == "vgg_e-kaiming-prelu"
    assert run_name({}, []) == "?-?-?"
    assert run_name({**vgg, "dataset": "cifar10"}, []) == "vgg_e-kaiming-prelu-cifar10"
    assert run_name(vgg, [], default_dataset="cifar10") == "vgg_e-kaiming-prelu-fashion_mnist"
    assert run_name({**vgg, "dataset": ""}, []) == "vgg_e-kaiming-prelu"
    overrides = [
        "model=vgg_e",  # a group choice: already in the name
        "+optim.lr=0.01",  # the last key component, the + dropped
        "~optim.weight_decay=0",
        "seed=3",
        "hydra.run.dir=/tmp/x",  # Hydra's own, the experiment, and what is not hashed: not in the name
        "+experiment=init_depth",
        "experiment=init_depth",
        "tracking.uri=sqlite:///x.db",
        "trainer.log_every=5",
        "resume=never",
        "expected.error=10",
        "dataset.scale=[256,512]",
        "model.note=a=b",  # the value keeps its own '='
        "model.head.p=d.e=f",  # a deeper key: its last component; a value with dots and '=' whole
    ]
    assert run_name(vgg, overrides) == (
        "vgg_e-kaiming-prelu-lr=0.01-weight_decay=0-seed=3-scale=[256,512]-note=a=b-p=d.e=f"
    )
    # inside a sweep only the swept keys: the rest is the same for every job
    assert run_name(vgg, overrides, swept=["optim.lr", "seed"]) == "vgg_e-kaiming-prelu-lr=0.01-seed=3"
    assert run_name(vgg, overrides, swept=[]) == "vgg_e-kaiming-prelu"


def test_the_config_hash_is_stable_and_ignores_what_does_not_change_the_training() -> None:
    """A re-run finds its interrupted job by this hash: the same config must hash the same across versions."""
    from pathlib import Path

    from runner.config.identity import config_hash

    cfg = {"a": 1, "b": {"c": [1, 2]}}
    assert config_hash(cfg) == "6f6c7add149e6fec" and len(config_hash(cfg)) == 16
    assert config_hash({"b": {"c": [1, 2]}, "a": 1}) == config_hash(cfg)  # key order does not count
    untracked = {"tracking": {"uri": "x"}, "trainer": {"progress": True}, "resume": "never", "expected": None}
    assert config_hash({**cfg, **untracked}) == config_hash(cfg)
    assert config_hash({**cfg, "expected": {"paper": "p"}}) == config_hash(cfg)
    assert config_hash({**cfg, "root": Path("/data")}) == config_hash({**cfg, "root": "/data"})  # str() of it
    assert config_hash({**cfg, "a": 2}) != config_hash(cfg)


def test_a_group_without_its_name_and_a_list_for_a_number_are_named() -> None:
    from conftest import compose

    from runner.config.schema import SCHEMA, check_value, validate

    cfg = compose([])
    del cfg["act"]["name"]
    with pytest.raises(ConfigError, match=r"^act\.name is missing; every act config must set it$"):
        validate(cfg)
    with pytest.raises(
        ConfigError, match=r"^optim\.lr=\[1, 2\] is not allowed; expected a finite number > 0$"
    ):
        check_value("optim.lr", [1, 2], SCHEMA["optim.lr"])
