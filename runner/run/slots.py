"""One sweep job per GPU (or per group of `trainer.devices` GPUs), run in parallel: `hydra/launcher=gpus`.

The Hydra plugin (hydra_plugins/runner_gpu_launcher) hands the jobs to hydra-joblib-launcher unchanged, with
`n_jobs` = the number of device slots and its task function wrapped by `OnSlot`. This module holds the logic,
importable without torch or joblib:

- `device_slots`: the GPUs cut into groups of `devices` ([0,1,2,3] with 2 → "0,1" and "2,3"), each group
  listed `jobs_per_gpu` times (k small jobs share a GPU), round-robin so that the first jobs spread out.
- `claim_slot`: a worker process takes a slot by locking `<sweep dir>/.gpu-slots/slot-<i>.lock` (flock)
  and keeps it for its whole life. Why for life: loky reuses its worker processes, and CUDA reads
  CUDA_VISIBLE_DEVICES once, when the process first initialises it; a worker that switched slots between
  jobs would keep training on its first GPU. Why flock: the kernel releases the lock when the process
  ends, however it ends, so a replacement worker can take the slot of a dead one; and two processes can
  never hold one slot, whatever joblib does.
- `OnSlot`: the wrapped task function: claim the slot, export CUDA_VISIBLE_DEVICES (before this process
  touches CUDA), run the job, append a line to `<sweep dir>/gpu-slots.jsonl` (job, devices, pid, start, end).
  The job records its devices as the MLflow tag `runner.cuda_visible_devices` (runner/run/job.py).
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import env
from runner.errors import ConfigError

LOCK_DIR = ".gpu-slots"  # under the sweep dir
LOG_NAME = "gpu-slots.jsonl"  # under the sweep dir: one line per finished job

_held: dict[str, tuple[int, int]] = {}  # lock dir → (slot index, open fd holding its flock), per process


def visible_gpus(gpus: Sequence[Any] | str | None) -> list[str]:
    """The GPU ids to share out: `gpus` when given (a list, or "0,1,2"); else the sweep process's
    CUDA_VISIBLE_DEVICES; else every GPU torch sees (counted through NVML: no CUDA context here)."""
    if gpus is not None:
        ids = gpus.split(",") if isinstance(gpus, str) else [str(g) for g in gpus]
    elif os.environ.get(env.CUDA_VISIBLE_DEVICES, "").strip():
        ids = os.environ[env.CUDA_VISIBLE_DEVICES].split(",")
    else:
        import torch

        ids = [str(i) for i in range(torch.cuda.device_count())]
    ids = [i.strip() for i in ids if i.strip()]
    if not ids:
        raise ValueError("hydra/launcher=gpus: no GPU is visible; list them with hydra.launcher.gpus=[0,1]")
    return ids


def device_slots(gpus: list[str], devices: int | str, jobs_per_gpu: int = 1) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each slot: groups of `devices` GPUs (auto: all), each `jobs_per_gpu` times."""
    size = len(gpus) if devices == "auto" else int(devices)
    if not 1 <= size <= len(gpus):
        raise ValueError(f"trainer.devices={devices} but hydra.launcher.gpus has {len(gpus)}: {gpus}")
    if jobs_per_gpu < 1:
        raise ValueError(f"hydra.launcher.jobs_per_gpu={jobs_per_gpu}; allowed: 1 or more")
    groups = [",".join(gpus[i : i + size]) for i in range(0, len(gpus) - size + 1, size)]
    return groups * jobs_per_gpu


def check_launcher(launcher: Mapping[str, Any]) -> None:
    """`hydra/launcher=gpus` in the pre-flight, before any run or output directory exists: the joblib plugin
    it runs on is installed, and the GPUs it would share out are there for `devices` GPUs per job."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        raise ConfigError("hydra/launcher=gpus needs hydra-joblib-launcher: pip install -e '.[gpu]'")
    try:
        device_slots(visible_gpus(launcher["gpus"]), launcher["devices"], int(launcher["jobs_per_gpu"]))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _cuda_initialised() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_initialized()


def claim_slot(lock_dir: str, count: int, poll_s: float = 0.2) -> int:
    """This process's slot under `lock_dir`: the one it already holds, else the first free one (waits while
    none is free: a finished worker's replacement may start before the old process has exited)."""
    if lock_dir in _held:
        return _held[lock_dir][0]
    if _held and _cuda_initialised():  # another sweep's slot, and CUDA already bound to its devices
        raise RuntimeError("this worker already used CUDA on another sweep's devices; cannot switch")
    for _, fd in _held.values():
        os.close(fd)  # closing the fd releases its flock
    _held.clear()
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    while True:
        for i in range(count):
            fd = os.open(os.path.join(lock_dir, f"slot-{i}.lock"), os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _held[lock_dir] = (i, fd)
            return i
        time.sleep(poll_s)


@dataclass
class OnSlot:
    """The sweep's task function, run on this worker's device slot (picklable: joblib ships it to loky)."""

    task_function: Callable[[Any], Any]
    slots: list[str]
    sweep_dir: str

    def __call__(self, cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig

        slot = claim_slot(os.path.join(self.sweep_dir, LOCK_DIR), len(self.slots))
        devices = self.slots[slot]
        if _cuda_initialised() and os.environ.get(env.CUDA_VISIBLE_DEVICES) != devices:
            raise RuntimeError(f"CUDA was initialised in this worker before it took GPU(s) {devices}")
        os.environ[env.CUDA_VISIBLE_DEVICES] = devices
        if "OMP_NUM_THREADS" not in os.environ:  # concurrent jobs share the cores instead of thrashing
            threads = max(1, (os.cpu_count() or 1) // len(self.slots))
            os.environ["OMP_NUM_THREADS"] = str(threads)
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(threads)
        if multiprocessing.get_start_method(allow_none=True) == "loky":
            # loky makes itself this worker's default start method; a DDP job's spawned workers would then
            # be told to use "loky", which they cannot import ("cannot find context for 'loky'").
            multiprocessing.set_start_method("spawn", force=True)
        job = HydraConfig.get().job.num
        start = time.time()
        try:
            return self.task_function(cfg)
        finally:
            line = {"job": job, "devices": devices, "slot": slot, "pid": os.getpid(), "start": start,
                    "end": time.time()}  # fmt: skip
            with open(os.path.join(self.sweep_dir, LOG_NAME), "a") as f:
                f.write(json.dumps(line) + "\n")  # one short write in append mode: lines never interleave
