"""Composition errors as one line (runner/config/compose.py): each Hydra/OmegaConf error names the key and,
where there is a choice, what is allowed; a sweep's variants; the key an override sets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError

from runner.config.compose import (
    explain,
    first_line,
    hydra_context,
    name_the_key,
    override_key,
    sweep_variants,
)
from runner.errors import ConfigError

ACTS = "lrelu, prelu, prelu_shared, relu, tanh"


def composition_error(overrides: list[str]) -> Exception:
    """The error composing and resolving `runner <overrides>` raises, as the pre-flight catches it."""
    from hydra import compose
    from omegaconf import OmegaConf

    with hydra_context():
        try:
            OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True)
        except Exception as e:
            return e
    raise AssertionError(f"{overrides} composed")


@pytest.mark.parametrize(
    ("overrides", "line"),
    [(["act=rleu"], f"act=rleu: unknown act; allowed: {ACTS}"),
     (["model=vgg_a", "+init=nope"], "+init=nope: unknown init; allowed: gaussian, glorot, kaiming, xavier_he"),
     (["trainer.epohcs=3"], "trainer.epohcs: unknown key; check the spelling, or add a new key with +trainer.epohcs=..."),
     (["seed=${nope}"], "seed: Interpolation key 'nope' not found"),
     # Hydra's own "Error merging override …" says nothing: the line is its cause's, which names the key
     (["hydra.job.chdir=maybe"], "hydra.job.chdir: Value 'maybe' is not a valid bool (type str)"),
     (["act=relu,prelu"], "Ambiguous value for argument 'act=relu,prelu' (a sweep over several values needs --multirun)")],
)  # fmt: skip
def test_a_composition_error_is_one_line_naming_the_key(overrides: list[str], line: str) -> None:
    assert explain(composition_error(overrides), overrides) == line


def test_an_unknown_option_of_a_group_no_override_names_is_named_by_its_group() -> None:
    error = MissingConfigException("missing", missing_cfg_file="init/nope", options=["kaiming", "glorot"])
    assert explain(error, ["act=relu"]) == "init: unknown init; allowed: glorot, kaiming"
    nameless = MissingConfigException("missing", missing_cfg_file=None, options=["b", "a"])
    assert explain(nameless, []) == "?: unknown ?; allowed: a, b"


def test_a_key_not_in_struct_said_only_by_the_cause_is_still_an_unknown_key() -> None:
    cause = ConfigKeyError("Key 'epohcs' is not in struct")
    cause.full_key = "trainer.epohcs"
    error = ConfigCompositionException("Could not override 'trainer.epohcs'.")
    error.__cause__ = cause
    assert explain(error, ["trainer.epohcs=3"]) == (
        "trainer.epohcs: unknown key; check the spelling, or add a new key with +trainer.epohcs=..."
    )


def test_a_key_not_in_struct_said_by_the_error_itself_is_an_unknown_key() -> None:
    """An OmegaConf error raised as it is, with no cause: its own key, or else its first line, is named."""
    error = ConfigKeyError("Key 'epohcs' is not in struct\n    full_key: trainer.epohcs")
    error.full_key = "trainer.epohcs"
    assert explain(error, []) == (
        "trainer.epohcs: unknown key; check the spelling, or add a new key with +trainer.epohcs=..."
    )
    said = "Key 'x' is not in struct"  # no full_key: the key its own line quotes
    assert (
        explain(ConfigKeyError(said), [])
        == "x: unknown key; check the spelling, or add a new key with +x=..."
    )
    said = "this node is not in struct mode"  # no key anywhere: the line, and no made-up key to add
    assert explain(ConfigKeyError(said), []) == (
        f"{said}: an unknown key; check the spelling, or add a new key with +KEY=..."
    )


def test_an_error_naming_its_own_key_without_a_cause_is_its_key_and_first_line() -> None:
    from omegaconf.errors import ValidationError

    error = ValidationError("Value 'abc' could not be converted to Integer\n    full_key: trainer.epochs")
    error.full_key = "trainer.epochs"
    assert explain(error, []) == "trainer.epochs: Value 'abc' could not be converted to Integer"


def test_an_error_without_a_key_is_its_first_non_blank_line() -> None:
    assert explain(ValueError("\n  something broke  \nat line 3"), []) == "something broke"
    assert first_line("") == "" and first_line("\n \n") == "\n \n" and first_line(" a \n b") == "a"


def test_an_error_naming_no_key_is_given_the_override_that_fails_alone_and_its_choices() -> None:
    """`act=1`: Hydra says "must be a string" without the key; composing each override alone finds it."""
    from hydra import compose

    overrides = ["init=kaiming", "act=1"]
    line = explain(composition_error(overrides), overrides)
    assert line == "Config group override must be a string or a list. Got int"
    with hydra_context():
        assert name_the_key(line, overrides, compose) == f"act: {line}; allowed: {ACTS}"
        assert name_the_key("act is bad", overrides, compose) == "act is bad"  # it names a key already


def fails_on(bad: str) -> Callable[..., None]:
    """A stand-in for Hydra's compose that fails only for the override list [bad]."""

    def compose(config_name: str, overrides: list[str]) -> None:
        assert config_name == "config"
        if overrides == [bad]:
            raise ValueError("no")

    return compose


def test_a_culprit_outside_any_group_is_named_without_choices_and_none_found_leaves_the_line() -> None:
    assert name_the_key("it failed", ["seed=1", "trainer.epochs=x"], fails_on("trainer.epochs=x")) == (
        "trainer.epochs: it failed"
    )
    assert name_the_key("it failed", ["seed=1"], fails_on("seed=2")) == "it failed"


def test_each_sweep_value_is_one_variant_the_other_keys_at_their_first_value() -> None:
    assert sweep_variants(["act=relu,prelu", "seed=1", "init=kaiming,xavier_he,glorot"]) == [
        ["act=relu", "seed=1", "init=kaiming"],
        ["act=prelu", "seed=1", "init=kaiming"],
        ["act=relu", "seed=1", "init=xavier_he"],
        ["act=relu", "seed=1", "init=glorot"],
    ]
    assert sweep_variants(["seed=0,1", "optim.lr=0.1"]) == [
        ["seed=0", "optim.lr=0.1"],
        ["seed=1", "optim.lr=0.1"],
    ]
    assert sweep_variants(["seed=3"]) == [["seed=3"]]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [(["seed=0,1", "trainer.epochs=[3"], "trainer.epochs: cannot parse 'trainer.epochs=[3': no viable alternative "
      "at input '[3'"),
     (["init=kaiming,xavier_he", "act=relu,"], "act: cannot parse 'act=relu,': mismatched input '<EOF>'")],
)  # fmt: skip
def test_a_sweep_override_that_does_not_parse_is_named_with_the_groups_options(
    overrides: list[str], line: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        sweep_variants(overrides)
    assert str(caught.value).startswith(line)
    assert str(caught.value).endswith(f"; allowed: {ACTS}") == overrides[-1].startswith("act")


@pytest.mark.parametrize(
    ("override", "key"),
    [("+trainer.epochs=3", "trainer.epochs"), ("~seed", "seed"), ("++optim.lr=0.1", "optim.lr"),
     ("model.note=a=b", "model.note"), ("act", "act"), ("+XY=2", "XY"), ("~X", "X")],
)  # fmt: skip
def test_the_key_an_override_sets(override: str, key: str) -> None:
    assert override_key(override) == key


def test_compose_gives_the_config_with_its_interpolations_resolved() -> None:
    """What a job reads: an override's `${…}` is already its value, as OmegaConf resolves it."""
    from runner.config.compose import compose

    cfg = compose(["trainer.epochs=3", "seed=${trainer.epochs}"])
    assert type(cfg) is dict and (cfg["seed"], cfg["trainer"]["epochs"]) == (3, 3)
