"""What names a config: its hash (the key a re-run finds its job by), its cell (the hash without the seed),
and its run name."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from runner.config import GROUPS
from runner.config.compose import override_key
from runner.config.schema import flatten

# Keys that do not change what is trained: two configs that differ only here are the same job
# ("resume" covers resume_from: continuing a checkpoint is the same job).
NOT_HASHED = (
    "tracking.",
    "trainer.progress",
    "trainer.log_every",
    "trainer.ckpt_minutes",
    "trainer.threads",  # a resume on a machine with other cores is the same job (its sums may round otherwise)
    "resume",
    "expected.",
    "dataset.about.",  # facts of the data set (conf/dataset/<name>.yaml), not settings
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
        key, value = override_key(override), override.partition("=")[2]
        if key in GROUPS or key.startswith(("hydra.", "experiment")) or key.startswith(NOT_HASHED):
            continue
        if swept is not None and key not in swept:
            continue
        parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return "-".join(parts)
