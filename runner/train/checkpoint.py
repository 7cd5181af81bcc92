"""Checkpoints: written atomically (temp file, fsync, rename), read back with weights_only=True.

A checkpoint holds model, optimizer, schedule, the `TrainState` by field name (epoch, steps, best, the
unfinished epoch's running sums by metric name), RNG states, the MLflow run id and the config hash. A file that is truncated or belongs to another config is
refused with one line naming it: never a silent fresh start.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass, field
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


FORMAT = 2  # 2: running sums by metric name (1, before: a positional 3-vector "partial")


@dataclass
class TrainState:
    """Where training stands: what a checkpoint must bring back besides the weights and the optimiser."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps done in the current epoch
    global_step: int = 0
    best: float = math.inf  # the lowest monitored error so far (val, or train without a val split)
    epoch_seconds: float = 0.0  # training seconds the current epoch had before an interruption
    sums: dict[str, float] = field(default_factory=dict)  # the current epoch's running sums, by metric name


# What a checkpoint holds besides the format number; a file without one of these is not ours.
KEYS = ("config_hash", "run_id", "model", "optimizer", "schedule", "train_state", "rng")


def snapshot(
    config_hash: str, run_id: str, model: Any, optimizer: Any, schedule: Any, state: TrainState
) -> dict[str, Any]:
    """The dict `save` writes: the state by field name, every tensor a plain tensor (weights_only loads it)."""
    return {
        "format": FORMAT,
        "config_hash": config_hash,
        "run_id": run_id,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "train_state": asdict(state),
        "rng": rng_state(),
    }


def load(path: Path, config_hash: str) -> dict[str, Any]:
    """The checkpoint at `path`, or CheckpointError naming the file: missing, truncated, foreign, of an older
    format, of another config."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, wrong format, unpickling refused: all one message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({first}); delete it to start afresh"
        ) from None
    if isinstance(state, dict) and "partial" in state and "format" not in state:
        raise CheckpointError(
            f"checkpoint {path} was written by an older runner (running sums by position, format 1; this "
            f"runner reads format {FORMAT}); delete it to start afresh"
        )
    missing = [k for k in ("format", *KEYS) if k not in state] if isinstance(state, dict) else ["everything"]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is not a runner checkpoint (no {missing[0]}); delete it to start afresh"
        )
    if state["format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format']}; this runner reads format {FORMAT}; "
            "delete it to start afresh"
        )
    if state["config_hash"] != config_hash:
        raise CheckpointError(
            f"checkpoint {path} belongs to another config (hash {state['config_hash']}, this one is "
            f"{config_hash}); delete it to start afresh"
        )
    return state


def train_state(checkpoint: dict[str, Any]) -> TrainState:
    return TrainState(**checkpoint["train_state"])


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
