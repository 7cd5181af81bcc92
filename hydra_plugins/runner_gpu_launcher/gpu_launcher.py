"""`hydra/launcher=gpus`: hydra-joblib-launcher with one device slot per worker (runner/run/slots.py).

Hydra imports every module of the `hydra_plugins` namespace at each start, so this one imports neither
torch nor joblib at module level: the start-up of `runner` stays as fast as without the plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class GpuLauncher(Launcher):
    """joblib's launcher (loky processes), `n_jobs` = device slots, each job on its worker's slot."""

    def __init__(self, gpus: Any = None, devices: Any = 1, jobs_per_gpu: int = 1, **joblib: Any) -> None:
        self.gpus, self.devices, self.jobs_per_gpu = gpus, devices, int(jobs_per_gpu)
        self.joblib: dict[str, Any] = dict(joblib)  # what hydra-joblib-launcher passes to joblib.Parallel
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from runner.run.slots import OnSlot, device_slots, visible_gpus

        try:
            from hydra_plugins.hydra_joblib_launcher import _core
        except ImportError:
            raise ImportError(
                "hydra/launcher=gpus needs hydra-joblib-launcher: pip install -e '.[gpu]'"
            ) from None
        assert self.config is not None and self.task_function is not None
        gpus = self.gpus if self.gpus is None or isinstance(self.gpus, str) else list(self.gpus)
        slots = device_slots(visible_gpus(gpus), self.devices, self.jobs_per_gpu)
        log.info(f"GPU launcher: {len(slots)} slot(s) {slots} for {len(job_overrides)} job(s)")
        # Delegate to hydra-joblib-launcher as is: its loky workers call OnSlot instead of the task function.
        sweep_dir = str(Path(str(self.config.hydra.sweep.dir)).resolve())  # the workers' lock files and log
        wrapped = OnSlot(self.task_function, slots, sweep_dir)
        shim = _Shim(self.config, wrapped, self.hydra_context, {**self.joblib, "n_jobs": len(slots)})
        return _core.launch(launcher=shim, job_overrides=job_overrides, initial_job_idx=initial_job_idx)


class _Shim:
    """The four attributes hydra-joblib-launcher's `_core.launch` reads from its launcher."""

    def __init__(
        self, config: DictConfig, task_function: Any, hydra_context: Any, joblib: dict[str, Any]
    ) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context
        self.joblib = {"batch_size": 1, **joblib}  # one job per dispatch: a worker never queues a second
