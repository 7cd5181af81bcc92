"""The config schema, its validation, and what is derived from a config (flat params, hash, run name).

Validation runs twice: in `runner.cli` before Hydra starts (so a typo costs no torch/mlflow import and
leaves nothing behind), and at the start of every job (presets and sweeps compose values the command
line never saw). Each error is one line naming the key and what is allowed.
Imports here stay light: no torch, no mlflow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.errors import ConfigError

GROUPS = ("model", "init", "act", "dataset", "schedule", "optim", "trainer", "tracking")


@dataclass(frozen=True)
class Rule:
    types: tuple[type, ...]
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    nullable: bool = False

    def describe(self) -> str:
        text = self.allowed or " or ".join(t.__name__ for t in self.types)
        return text + (" or null" if self.nullable else "")


def _int(
    check: Callable[[Any], bool] | None = None, allowed: str = "an integer", nullable: bool = False
) -> Rule:
    return Rule((int,), check, allowed, nullable)


def _num(
    check: Callable[[Any], bool] | None = None, allowed: str = "a number", nullable: bool = False
) -> Rule:
    return Rule((int, float), check, allowed, nullable)


def _choice(*values: str) -> Rule:
    return Rule((str,), lambda v: v in values, "one of " + ", ".join(values))


BOOL = Rule((bool,), None, "true or false")
STR = Rule((str,), lambda v: v != "", "a non-empty string")

# The keys every config has, with their types and ranges. Model and dataset options beyond these are
# checked by Hydra (unknown keys) and by the builders (values), before any run is created.
SCHEMA: dict[str, Rule] = {
    "seed": _int(lambda v: v >= 0, "an integer ≥ 0"),
    "resume": _choice("auto", "never"),
    "resume_from": Rule((str,), lambda v: v != "", "a checkpoint file of this config", nullable=True),
    "act.name": _choice("relu", "prelu", "lrelu", "tanh"),
    "act.init": _num(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "act.shared": BOOL,
    "act.slope": _num(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "init.name": _choice("gaussian", "xavier", "kaiming"),
    "init.mode": _choice("fan_in", "fan_out"),
    "init.distribution": _choice("normal", "uniform"),
    "init.std": _num(lambda v: v > 0, "a number > 0"),
    "init.zero_init_residual": BOOL,
    "model.name": STR,
    "dataset.name": STR,
    "dataset.root": Rule((str,), lambda v: v != "", "an existing directory", nullable=True),
    "dataset.download": BOOL,
    "dataset.val_split": _int(lambda v: v >= 0, "an integer ≥ 0", nullable=True),
    "dataset.split_seed": _int(lambda v: v >= 0, "an integer ≥ 0"),
    "dataset.subset": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "dataset.test_subset": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "dataset.normalize": _choice("per_channel", "per_pixel"),
    "optim.name": _choice("sgd"),
    "optim.lr": _num(lambda v: v > 0, "a number > 0"),
    "optim.momentum": _num(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "optim.weight_decay": _num(lambda v: v >= 0, "a number ≥ 0"),
    "optim.nesterov": BOOL,
    "schedule.name": _choice("plateau", "multistep", "cosine", "constant"),
    "trainer.epochs": _int(lambda v: v >= 1, "an integer ≥ 1"),
    "trainer.max_steps": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "trainer.batch_size": _int(lambda v: v >= 1, "an integer ≥ 1"),
    "trainer.devices": Rule(
        (int, str), lambda v: v == "auto" or (isinstance(v, int) and v >= 1), "an integer ≥ 1 or auto"
    ),
    "trainer.accelerator": _choice("auto", "cpu", "cuda"),
    "trainer.precision": _choice("fp32", "bf16"),
    "trainer.channels_last": BOOL,
    "trainer.compile": BOOL,
    "trainer.deterministic": BOOL,
    "trainer.sync_bn": BOOL,
    "trainer.scale_lr": BOOL,
    "trainer.log_every": _int(lambda v: v >= 1, "an integer ≥ 1"),
    "trainer.ckpt_minutes": _num(lambda v: v > 0, "a number > 0", nullable=True),
    "trainer.eval_test_every_epoch": BOOL,
    "trainer.progress": BOOL,
    "trainer.ddp_timeout_s": _num(lambda v: v > 0, "a number > 0"),
    "trainer.ckpt_dir": STR,
    "tracking.log_checkpoint": BOOL,
    "tracking.uri": STR,
    "tracking.retry_seconds": Rule(
        (list,),
        lambda v: (
            len(v) <= 10
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 600 for x in v)
        ),
        "a list of at most 10 pauses in seconds, each in [0, 600]",
    ),
    "tracking.artifact_root": STR,
    "tracking.experiment": STR,
}


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} → {'optim.lr': 0.1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def check_value(key: str, value: Any, rule: Rule) -> None:
    if value is None and rule.nullable:
        return
    # bool is an int in Python; an int is a fine float.
    ok_type = isinstance(value, rule.types) and not (isinstance(value, bool) and bool not in rule.types)
    if not ok_type or (rule.check is not None and not rule.check(value)):
        raise ConfigError(f"{key}={value!r} is not allowed; expected {rule.describe()}")


def validate(cfg: Mapping[str, Any]) -> None:
    """Check every known key's type and range (a plain dict or a resolved DictConfig)."""
    flat = flatten(cfg)
    for key, rule in SCHEMA.items():
        if key in flat:
            check_value(key, flat[key], rule)
        elif "." in key and key.split(".")[0] in GROUPS and key.endswith(".name"):
            raise ConfigError(f"{key} is missing; every {key.split('.')[0]} config must set it")


# Keys that do not change what is trained: two configs that differ only here are the same job
# ("resume" covers resume_from: continuing a checkpoint is the same job).
NOT_HASHED = (
    "tracking.",
    "trainer.progress",
    "trainer.log_every",
    "trainer.ckpt_minutes",
    "resume",
    "expected.",
)


def config_hash(cfg: Mapping[str, Any], without: Sequence[str] = ()) -> str:
    """A short hash of what is trained: the key by which a re-run finds its interrupted job."""
    flat = {
        k: v
        for k, v in flatten(cfg).items()
        if not k.startswith(NOT_HASHED) and k != "expected" and k not in without
    }
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_id(cfg: Mapping[str, Any]) -> str:
    """The hash of a config without its seed: the runs of one cell differ only in the seed, and the report
    (and MLflow's group-by on the `runner.cell` tag) gathers them."""
    return config_hash(cfg, without=("seed",))


def run_name(
    choices: Mapping[str, str],
    overrides: list[str],
    swept: Sequence[str] | None = None,
    default_dataset: str = "fashion_mnist",
) -> str:
    """`vgg_e-kaiming-prelu`, then the dataset if not the default, then the other overrides that change
    what is trained, by their last key component (`lr=0.01`); inside a sweep only the swept ones."""
    parts = [choices.get("model", "?"), choices.get("init", "?"), choices.get("act", "?")]
    if choices.get("dataset") and choices["dataset"] != default_dataset:
        parts.append(choices["dataset"])
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in GROUPS or key.startswith(("hydra.", "experiment")) or key.startswith(NOT_HASHED):
            continue
        if swept is not None and key not in swept:
            continue
        parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return "-".join(parts)
