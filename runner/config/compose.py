"""Hydra composition outside Hydra's main: the sweep's variants, and composition errors as one line."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from runner.config import CONF_DIR
from runner.errors import ConfigError


def override_key(override: str) -> str:
    """`+trainer.epochs=3` → `trainer.epochs`; `~seed` → `seed`."""
    return override.lstrip("+~").split("=", 1)[0]


@contextlib.contextmanager
def hydra_context() -> Iterator[None]:
    """Hydra's global state set to runner's conf/ tree, for `compose` calls outside Hydra's main."""
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="runner"):
        yield


def compose(overrides: Sequence[str], hydra: bool = False) -> Any:
    """The config `runner <overrides>` composes: a resolved plain dict, as a job gets it; with `hydra=True`
    the DictConfig itself with its `hydra` node (sweeper params, runtime choices), unresolved."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf

    with hydra_context():
        cfg = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)
    return cfg if hydra else OmegaConf.to_container(cfg, resolve=True)


def job_config(cfg: Any) -> Any:
    """A config composed with its `hydra` node, less that node: what Hydra's compose without
    return_hydra_config gives (it composes the same and drops the node), still a DictConfig, unresolved."""
    from omegaconf import OmegaConf

    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def explain(error: Exception, override_list: list[str]) -> str:
    """Turn a Hydra/OmegaConf composition error into one line naming the key and what is allowed."""
    from hydra.errors import MissingConfigException

    text = str(error)
    if isinstance(error, MissingConfigException) and error.options is not None:
        group = (error.missing_cfg_file or "?").split("/")[0]
        wanted = next((o for o in override_list if override_key(o) == group), group)
        return f"{wanted}: unknown {group}; allowed: {', '.join(sorted(error.options))}"
    cause = error.__cause__ or error.__context__
    full_key = getattr(cause, "full_key", None) or getattr(error, "full_key", None)
    if "not in struct" in text or (cause is not None and "not in struct" in str(cause)):
        quoted = re.search(r"Key '([^']+)'", text)  # OmegaConf's own wording, where no full_key came with it
        key = full_key or (quoted[1] if quoted else None)
        if key is None:  # the caller's name_the_key finds the override that fails alone
            return f"{first_line(text)}: an unknown key; check the spelling, or add a new key with +KEY=..."
        return f"{key}: unknown key; check the spelling, or add a new key with +{key}=..."
    if full_key:
        return f"{full_key}: {first_line(str(cause or error))}"
    first = first_line(text)
    if first.startswith("Ambiguous value"):
        return first + " (a sweep over several values needs --multirun)"
    return first


def sweep_variants(overrides: list[str]) -> list[list[str]]:
    """One override list per value of each sweep (`act=relu,prelu` → two lists), others at their first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    values: list[list[str]] = []
    for line in overrides:
        try:  # one at a time, so that the one that does not parse is named
            (override,) = parser.parse_overrides([line])
        except HydraException as e:
            raise ConfigError(
                with_allowed(f"{override_key(line)}: cannot parse '{line}': {first_line(str(e))}")
            ) from e
        key = override.get_key_element()
        if override.is_sweep_override():
            values.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            values.append([override.input_line])
    base = [v[0] for v in values]
    variants = [base]
    for i, options in enumerate(values):
        for option in options[1:]:
            variants.append(base[:i] + [option] + base[i + 1 :])
    return variants


def name_the_key(line: str, variant: list[str], compose: Any) -> str:
    """Some Hydra errors name no key (`act=1`: "must be a string"): find the override that fails alone."""
    keys = [override_key(o) for o in variant]
    if any(key in line for key in keys):
        return line
    for override, key in zip(variant, keys, strict=True):
        try:
            compose(config_name="config", overrides=[override])
        except Exception:  # the same error as above, now with its culprit known
            return with_allowed(f"{key}: {line}")
    return line


def with_allowed(line: str) -> str:
    """`act: …` → `act: …; allowed: lrelu, prelu, …` where the key is a config group (its YAML files' names)."""
    options = sorted(p.stem for p in (Path(CONF_DIR) / line.split(":", 1)[0]).glob("*.yaml"))
    return line + (f"; allowed: {', '.join(options)}" if options else "")
