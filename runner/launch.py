"""Process launching: one device in-process, N devices as N workers started by torch.distributed.elastic.

The workers receive the already-composed config (never sys.argv), so a worker cannot re-launch a Hydra
sweep. Under `torchrun`, RANK/WORLD_SIZE are in the environment and this process is already one worker.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from runner.train import JobInfo, Outcome, train


def worker_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as set by torchrun or the elastic agent; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", 1)) > 1 and "RUNNER_SPAWNED" not in os.environ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(cfg: dict[str, Any]) -> str:
    import torch

    accelerator = cfg["trainer"]["accelerator"]
    use_cuda = accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available())
    return "nccl" if use_cuda else "gloo"


def distributed_worker(cfg: dict[str, Any], job: JobInfo) -> Outcome:
    """Entry point of each DDP process: join the group, train, leave."""
    import torch
    import torch.distributed as dist

    rank, world, local = worker_env()
    if torch.cuda.is_available() and _backend(cfg) == "nccl":
        torch.cuda.set_device(local)
    timeout = timedelta(seconds=float(cfg["trainer"].get("ddp_timeout_s", 120)))
    if not dist.is_initialized():
        dist.init_process_group(_backend(cfg), timeout=timeout)
    try:
        return train(cfg, dataclasses.replace(job, rank=rank, world_size=world, local_rank=local))
    finally:
        dist.destroy_process_group()


def run_training(cfg: dict[str, Any], job: JobInfo, devices: int) -> Outcome:
    if under_torchrun():
        return distributed_worker(cfg, job)
    if devices == 1:
        return train(cfg, job)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=devices,
        run_id=f"runner-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",  # each sweep job gets its own group
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
    )
    os.environ["RUNNER_SPAWNED"] = "1"
    try:
        results = elastic_launch(config, distributed_worker)(cfg, job)
    finally:
        os.environ.pop("RUNNER_SPAWNED", None)
    return results[0]
