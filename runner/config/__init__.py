"""Configuration: the conf/ tree this package reads, composed (compose), checked (schema) and named
(identity: the config hash, the cell, the run name). No torch, no mlflow: the pre-check of a command imports
only this layer and the base modules (errors, env, console)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONF_DIR = (
    Path(__file__).resolve().parent.parent / "conf"
)  # runner/conf, inside the package: a wheel carries it


def parse_yaml(text: str) -> Any:
    """YAML text (a conf/ file, a run's config.yaml artifact) as plain Python values, as yaml.safe_load gives
    them: through libyaml's parser where PyYAML was built with it (CSafeLoader: the same constructor and
    resolver, about 10× faster here; `runner --help` reads every preset), else the pure-Python one."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


GROUPS = ("model", "init", "act", "dataset", "schedule", "optim", "trainer", "tracking")
