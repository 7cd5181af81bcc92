"""Checkpoints: written atomically (temp file, fsync, rename), read back with weights_only=True.

A checkpoint holds model, optimizer, schedule, epoch/step, the partial-epoch sums, RNG states, the best
metric, the MLflow run id and the config hash. A file that is truncated or belongs to another config is
refused with one line naming it: never a silent fresh start.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runner.errors import CheckpointError


def save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: a reader sees the old file or the new one
    finally:
        tmp.unlink(missing_ok=True)
    try:  # make the rename itself durable (a crash right after must not bring the old file back)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


# What train.py writes; a file without one of these is not ours (or from an older layout).
KEYS = (
    "config_hash",
    "run_id",
    "model",
    "optimizer",
    "schedule",
    "epoch",
    "step_in_epoch",
    "global_step",
    "best",
    "partial",
    "epoch_seconds_so_far",
    "rng",
)


def load(path: Path, config_hash: str) -> dict[str, Any]:
    """The checkpoint at `path`, or CheckpointError naming the file: missing, truncated, foreign, other config."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, wrong format, unpickling refused: all one message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({first}); delete it to start afresh"
        ) from None
    missing = [k for k in KEYS if k not in state] if isinstance(state, dict) else ["everything"]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is not a runner checkpoint (no {missing[0]}); delete it to start afresh"
        )
    if state["config_hash"] != config_hash:
        raise CheckpointError(
            f"checkpoint {path} belongs to another config (hash {state['config_hash']}, this one is "
            f"{config_hash}); delete it to start afresh"
        )
    return state


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states, in types that weights_only accepts."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": np_state["state"]["pos"],
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": npy["key"].numpy().astype(np.uint32), "pos": npy["pos"]},
            "has_gauss": npy["has_gauss"],
            "gauss": npy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
