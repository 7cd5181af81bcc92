"""Configuration: the conf/ tree this package reads, composed (compose), checked (schema) and named
(identity: the config hash, the cell, the run name). No torch, no mlflow: the pre-check of a command imports
only this layer and the base modules (errors, env, console)."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = (
    Path(__file__).resolve().parent.parent / "conf"
)  # runner/conf, inside the package: a wheel carries it
GROUPS = ("model", "init", "act", "dataset", "schedule", "optim", "trainer", "tracking")
