"""A model option is declared beside its builder: each family's OPTIONS table names exactly the keyword-only
arguments of its builders, and the pre-flight's rules for `model.*` are those tables (read without torch)."""

from __future__ import annotations

import functools
import importlib

import pytest

from runner.config.schema import SCHEMA, model_option_rules
from runner.errors import ConfigError
from runner.models import MODELS, model_names, model_options


def family_of(name: str) -> object:
    builder = MODELS[name]
    builder = builder.func if isinstance(builder, functools.partial) else builder
    return importlib.import_module(builder.__module__)


@pytest.mark.parametrize("name", model_names())
def test_each_builders_options_are_in_its_familys_table(name: str) -> None:
    assert model_options(name) <= set(family_of(name).OPTIONS)


def test_each_table_lists_only_options_its_builders_take() -> None:
    taken: dict[str, set[str]] = {}
    for name in model_names():
        taken.setdefault(family_of(name).__name__, set()).update(model_options(name))
    for module, options in taken.items():
        assert set(importlib.import_module(module).OPTIONS) == options, module


def test_the_schema_reads_the_tables_from_source() -> None:
    rules = model_option_rules()
    assert set(rules) == {f"model.{o}" for n in model_names() for o in model_options(n)}
    assert all(SCHEMA[key] is rule for key, rule in rules.items())
    assert (
        rules["model.shortcut"].describe() == "one of A, B, C"
        and rules["model.groups"].describe() == "1 or 2"
    )


def test_an_option_outside_its_table_is_refused_with_what_is_allowed() -> None:
    from conftest import compose

    from runner.config.schema import validate

    cfg = compose(["model=alexnet"])
    cfg["model"]["groups"] = 3
    with pytest.raises(ConfigError, match=r"model.groups=3 is not allowed; expected 1 or 2"):
        validate(cfg)
