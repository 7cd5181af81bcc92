"""Every bad value caught before a run exists (issue 18): list-valued keys element by element, names against
what exists, the rules between keys, and the meta-device dry build, each refused by the pre-check in one line."""

from __future__ import annotations

import math

import pytest

from runner.config import schema as config
from runner.config.schema import (
    FOLDER_NORMALIZE,
    FOLDER_TEST_VIEWS,
    FOLDER_VIEWS,
    RESIDENT_AUGMENTS,
    check_value,
    declared_names,
    passes,
)
from runner.errors import ConfigError
from runner.run.preflight import precheck

# (overrides, what the one line must say)
REFUSED = [
    (["dataset.augment=[crop,flop]"], "dataset.augment[1]='flop' is not allowed; expected one of crop, flip"),
    (
        ["dataset.augment=[crop,crop]"],
        "dataset.augment=['crop', 'crop'] is not allowed; expected a list of distinct",
    ),
    (["dataset.augment=scale_jitter"], "dataset.augment='scale_jitter' is not offered for fashion_mnist"),
    (["dataset=imagenet", "dataset.augment=[crop]"], "is not offered for imagenet; allowed: alexnet"),
    (
        ["dataset=imagenet", "dataset.test_view=whole"],
        "dataset.test_view='whole' is not offered for imagenet",
    ),
    (["dataset=imagenet", "dataset.scale=[512,256]"], "dataset.scale=[512, 256] is not allowed"),
    (
        ["dataset=imagenet", "dataset.crop=300"],
        "dataset.scale=[256, 512] is not allowed; the shorter side must be ≥",
    ),
    (["dataset=imagenet", "dataset.test_resize=200"], "dataset.test_resize=200 is not allowed"),
    (["schedule=multistep", "schedule.milestones=[48000,32000]"], "expected a list of increasing iterations"),
    (["schedule=multistep", "schedule.milestones=[0]"], "schedule.milestones[0]=0 is not allowed"),
    (["schedule=multistep", "schedule.warmup_models=[resnet111]"], "schedule.warmup_models[0]='resnet111'"),
    (
        ["schedule=cosine", "schedule.eta_min=1"],
        "schedule.eta_min=1 is not allowed; expected a number in [0, optim.lr",
    ),
    (["optim.lr=nan"], "optim.lr=nan is not allowed"),
    (["init=gaussian", "init.std=1e30"], "init.std=1e+30 is not allowed"),
    (["dataset=imagenet", "dataset.lighting=inf"], "dataset.lighting=inf is not allowed"),
    (["model=plain_deep22", "model.convs=[8,0,6]"], "model.convs[1]=0 is not allowed"),
    (
        ["dataset.subset=512", "dataset.val_split=128", "trainer.batch_size=1000"],
        "trainer.batch_size=1000 × 1 device(s) is not allowed",
    ),
    (["dataset=synthetic", "dataset.train_size=100", "dataset.val_split=100"], "dataset.val_split=100"),
    (["trainer.ddp_timeout_s=1e30"], "trainer.ddp_timeout_s=1e+30 is not allowed"),
    # the dry build on the meta device: only torch can tell
    (["dataset=synthetic", "model=prelu_14", "dataset.image_size=4"], "model=prelu_14 on the 4×4 input"),
    (
        ["dataset=synthetic", "model=vgg_a", "dataset.image_size=8"],
        "model=vgg_a on the 8×8 input of dataset=synthetic: VGG's five 2×2 pools",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "says"), REFUSED, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_a_bad_value_is_refused_in_one_line(overrides: list[str], says: str) -> None:
    problem = precheck(overrides)
    assert problem is not None and "\n" not in problem, overrides
    assert says in problem, problem


@pytest.mark.parametrize(
    "overrides",
    [
        ["dataset=imagenet", "dataset.augment=alexnet", "dataset.test_view=ten_crop"],
        ["schedule=multistep", "schedule.warmup_models=[resnet110]", "schedule.milestones=[10,20]"],
        ["dataset.augment=[]"],
        ["+experiment=alexnet_ablations_smoke"],
    ],
)
def test_good_values_pass(overrides: list[str]) -> None:
    assert precheck(overrides) is None


def test_the_pipeline_names_in_the_schema_are_the_data_modules() -> None:
    """The pre-check names the augmentations and views without importing the data modules (torch)."""
    from runner.data.augment import TEST_VIEWS, TRAIN_VIEWS
    from runner.data.imagenet import NORMALIZE
    from runner.data.tensor_loader import AUGMENTS

    assert set(RESIDENT_AUGMENTS) == set(AUGMENTS)
    assert set(FOLDER_VIEWS) == set(TRAIN_VIEWS) and set(FOLDER_TEST_VIEWS) == set(TEST_VIEWS)
    assert set(FOLDER_NORMALIZE) == set(NORMALIZE)
    assert "imagenet" in declared_names("dataset")


# --- the rule builders, called here (the schema calls them once, at import) ------------------------------------


def test_int_and_num_rules_accept_refuse_and_describe() -> None:
    positive = config._int(lambda v: v > 0, "an integer ≥ 1")
    assert [passes(v, positive) for v in (1, 0, 1.5, True, None, "1")] == [
        True,
        False,
        False,
        False,
        False,
        False,
    ]
    assert positive.describe() == "an integer ≥ 1"
    assert config._int().describe() == "an integer" and passes(-3, config._int())
    assert (
        passes(None, config._int(nullable=True))
        and config._int(nullable=True).describe() == "an integer or null"
    )
    rate = config._num(lambda v: v > 0)
    assert [passes(v, rate) for v in (0.5, 2, 0, -1.0, math.inf, math.nan, None, "1")] == [
        True, True, False, False, False, False, False, False,
    ]  # fmt: skip
    assert [passes(v, config._num()) for v in (-1e30, 0, math.inf, math.nan)] == [True, True, False, False]
    assert (
        config._num().describe() == "a number" and config._num(nullable=True).describe() == "a number or null"
    )
    assert passes(None, config._num(nullable=True))


def test_choice_and_named_rules_list_what_is_allowed() -> None:
    pad = config._choice("mean", "black")
    assert [passes(v, pad) for v in ("mean", "black", "zero", None, 1)] == [True, True, False, False, False]
    assert pad.describe() == "one of mean, black"
    assert config._choice("a", nullable=True).describe() == "one of a or null"
    act = config._named("act")
    assert [passes(v, act) for v in ("relu", "prelu", "gelu", None)] == [True, True, False, False]
    assert act.describe() == "one of lrelu, prelu, relu, tanh"


def test_list_rules_check_length_elements_and_the_whole() -> None:
    rule = config._list(config._int(lambda v: v > 0), "2 or 3 increasing counts", 2, 3, config._increasing)
    verdicts = [passes(v, rule) for v in ([1, 2], [1, 2, 3], [1], [1, 2, 3, 4], [2, 1], [0, 1], None, (1, 2))]
    assert verdicts == [True, True, False, False, False, False, False, False]
    assert rule.describe() == "2 or 3 increasing counts"
    assert passes([], config._list(config._int(), "any")) and not passes(
        [1] * 1001, config._list(config._int(), "x")
    )
    assert passes([1] * 1000, config._list(config._int(), "x"))
    assert config._ordered([1, 1, 2]) and not config._increasing([1, 1, 2]) and not config._ordered([2, 1])
    assert config._distinct([1, 2]) and not config._distinct([1, 1])
    with pytest.raises(
        ConfigError, match=r"^m\[1\]=0 is not allowed; expected an integer ≥ 1 \(m: counts\)$"
    ):
        check_value("m", [1, 0], config._list(config._int(lambda v: v > 0, "an integer ≥ 1"), "counts"))
    with pytest.raises(ConfigError, match=r"^m=\[2, 1\] is not allowed; expected counts$"):
        check_value("m", [2, 1], config._list(config._int(), "counts", whole=config._increasing))


def test_augment_rule_takes_a_folder_view_or_distinct_resident_augments() -> None:
    rule = config._augment_rule()
    values = (
        ["crop", "flip"],
        ["flip"],
        [],
        "scale_jitter",
        ["crop", "crop"],
        ["crop", "flop"],
        "crop",
        None,
        ("crop",),
    )
    assert [passes(v, rule) for v in values] == [True, True, True, True, False, False, False, False, False]
    assert rule.describe() == config.AUGMENT_ALLOWED and rule.item is not None
    assert rule.item.describe() == "one of crop, flip"
    assert [passes(v, rule.item) for v in ("crop", "flip", "flop", 1)] == [True, True, False, False]
    with pytest.raises(ConfigError, match=r"^a\[1\]='flop' is not allowed; expected one of crop, flip \(a: "):
        check_value("a", ["crop", "flop"], rule)


# The cross-key rules, each at its boundary and with its whole line.
WHOLE_LINES = [
    (["dataset=imagenet", "dataset.test_view=whole"],
     "dataset.test_view='whole' is not offered for imagenet; allowed: center, ten_crop, dense"),
    (["dataset.augment=scale_jitter"],
     "dataset.augment='scale_jitter' is not offered for fashion_mnist; expected a list of distinct crop, flip "
     "(e.g. [crop, flip], or [])"),
    (["dataset.subset=512", "dataset.val_split=128", "trainer.batch_size=400"],
     "trainer.batch_size=400 × 1 device(s) is not allowed; it must be at most the training set "
     "(384 images: dataset.subset − dataset.val_split)"),
    (["dataset=synthetic", "dataset.train_size=100", "trainer.batch_size=64", "trainer.devices=2"],
     "trainer.batch_size=64 × 2 device(s) is not allowed; it must be at most the training set "
     "(100 images: dataset.train_size − dataset.val_split)"),
    (["dataset.subset=100", "dataset.val_split=100"],
     "dataset.val_split=100 is not allowed; it must be smaller than the training set (100 images, dataset.subset)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "line"), WHOLE_LINES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_a_cross_key_rule_says_its_whole_line(overrides: list[str], line: str) -> None:
    assert precheck(overrides) == line


@pytest.mark.parametrize(
    "overrides",
    [
        ["dataset=imagenet", "dataset.crop=256"],  # the crop may be as large as the shorter side (256)
        ["dataset.subset=128", "dataset.val_split=0", "trainer.batch_size=128"],  # one batch: the whole set
        ["dataset.subset=128", "dataset.val_split=null", "trainer.batch_size=128"],
        ["dataset=synthetic", "dataset.train_size=100", "trainer.batch_size=64", "trainer.devices=auto"],
    ],
)
def test_a_cross_key_rule_lets_its_boundary_pass(overrides: list[str]) -> None:
    from conftest import compose

    config.validate(compose(overrides))  # raises ConfigError on a refusal


def test_an_unregistered_name_and_a_rule_without_words_are_named() -> None:
    from conftest import compose

    cfg = compose([])
    cfg["act"]["name"] = "swish"
    with pytest.raises(ConfigError) as error:
        config.check_registered(cfg)
    names = ", ".join(config.registry_names(config.REGISTRIES["act"]))
    assert str(error.value) == f"act.name='swish' is not registered; allowed: {names}"
    assert config.Rule((int, float)).describe() == "int or float"
    assert config.Rule((str,), nullable=True).describe() == "str or null"


def test_an_unknown_top_level_key_is_named_with_every_top_level_group() -> None:
    # The groups and single keys of SCHEMA, each once, sorted: what a typo such as `+traner.x=1` is shown.
    top = [
        "act",
        "dataset",
        "init",
        "model",
        "optim",
        "resume",
        "resume_from",
        "schedule",
        "seed",
        "tracking",
        "trainer",
    ]
    assert config._top_level() == top
    with pytest.raises(ConfigError) as error:
        config.check_read({"traner.epochs": 3})
    assert str(error.value) == f"traner.epochs is not a key runner reads; top-level keys: {', '.join(top)}"


def test_an_unknown_key_of_a_group_is_named_with_that_groups_keys_and_known_or_paper_keys_pass() -> None:
    with pytest.raises(ConfigError) as error:
        config.check_read({"act.name": "prelu", "act.slop": 0.1})
    assert str(error.value) == "act.slop is not a key runner reads; act keys: init, name, shared, slope"
    config.check_read({"act.slope": 0.1, "seed": 0, "expected.paper": "He et al. 2015"})  # no error


def test_the_model_option_words_take_both_ends_of_their_range_and_say_it() -> None:
    """The words of the families' OPTIONS tables (runner/models/*.py), at their boundaries."""
    width = config.integer(1, 4096)
    assert [passes(v, width) for v in (1, 4096, 0, 4097, 2.0, True, None)] == [
        True, True, False, False, False, False, False,
    ]  # fmt: skip
    assert width.describe() == "an integer in [1, 4096]"
    counts = config.integers(3, 1, 1000, "layer counts")
    verdicts = [passes(v, counts) for v in ([1, 1000, 5], [1, 1001, 5], [0, 1, 1], [1, 2], [1, 2, 3, 4])]
    assert verdicts == [True, False, False, False, False]
    assert counts.describe() == "a list of 3 layer counts, each in [1, 1000]"
    with pytest.raises(ConfigError) as refused:
        check_value("model.convs", [1, 1001, 5], counts)
    assert str(refused.value) == (
        "model.convs[1]=1001 is not allowed; expected an integer in [1, 1000] "
        "(model.convs: a list of 3 layer counts, each in [1, 1000])"
    )
    groups, shortcut = config.choice(1, 2), config.choice("A", "B", "C")
    assert [passes(v, groups) for v in (1, 2, 3, "1")] == [True, True, False, False]
    assert groups.describe() == "1 or 2" and shortcut.describe() == "one of A, B, C"
    scale = config.scale_up_to(16)
    assert [passes(v, scale) for v in (16, 0.001, 1, 0, -1, 16.5, math.inf)] == [
        True, True, True, False, False, False, False,
    ]  # fmt: skip
    assert scale.describe() == "a number in (0, 16]"


def test_an_integer_beyond_what_torch_takes_is_named_with_the_limit_and_a_long_value_is_cut() -> None:
    with pytest.raises(ConfigError) as refused:
        check_value("seed", 2**64, config.SEED)
    assert str(refused.value) == (
        "seed=18446744073709551616 is beyond what torch.manual_seed takes (64 bits); "
        "expected an integer in [0, 2^64 − 1]"
    )
    check_value("seed", 2**64 - 1, config.SEED)  # the largest seed passes
    with pytest.raises(ConfigError) as refused:
        check_value("trainer.epochs", 10**399, config.POSITIVE_INT)
    assert str(refused.value) == (
        f"trainer.epochs={'1' + '0' * 27}… (400 characters) is beyond torch's 64-bit integers (at most 2^63 − 1); "
        "expected an integer ≥ 1"
    )
