"""Process launching: one device in-process, N devices as N workers started by torch.distributed.elastic.

The workers receive the already-composed config (never sys.argv), so a worker cannot re-launch a Hydra
sweep. Each job of a sweep starts its own group on a free loopback port. Under `torchrun` (or one Slurm
task per GPU, hydra/launcher=slurm), RANK/WORLD_SIZE are in the environment and this process is already
one worker: rank 0 decides (new run, resume, skip) and the other ranks follow it (`share_job`).

Test-only fault injection (runner/env.py FAULT, "<rank>:<step>"): that rank raises after that optimizer
step; the job process consumes the variable, so only the next job launched gets the fault.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import uuid
from datetime import timedelta
from typing import Any

from runner import console, env
from runner.train.device import uses_cuda
from runner.train.loop import TIME_LIMIT_SIGNALS, Interrupted, JobInfo, Outcome, train


def worker_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as set by torchrun or the elastic agent; (0, 1, 0) otherwise."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def under_torchrun() -> bool:
    """Started as one of several workers: by torchrun, or as one Slurm task per GPU."""
    _adopt_slurm_tasks()
    return int(os.environ.get("WORLD_SIZE", 1)) > 1 and env.SPAWNED not in os.environ


def _adopt_slurm_tasks() -> None:
    """conf/hydra/launcher/slurm.yaml starts one task per GPU: RANK, WORLD_SIZE, MASTER_ADDR... from SLURM_*."""
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and int(os.environ.get("SLURM_NTASKS", 1)) > 1:
        if "RANK" not in os.environ:
            from submitit.helpers import TorchDistributedEnvironment

            TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # _init_group picks the GPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init_group(cfg: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    backend = "nccl" if uses_cuda(cfg["trainer"]) else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(worker_env()[2])
    else:  # N CPU workers each using every core would thrash: each its share (job.decide_threads)
        use_threads(cfg)
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(cfg["trainer"]["ddp_timeout_s"]))
        dist.init_process_group(backend, timeout=timeout)


def share_job(job: JobInfo | None) -> JobInfo | None:
    """Rank 0's job (run id, resume) on every rank; None from rank 0 means: nothing to train."""
    import torch.distributed as dist

    box = [job if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def use_threads(cfg: dict[str, Any]) -> None:
    """This process's torch threads: trainer.threads as job.decide_threads set it (None: torch's default)."""
    import torch

    if cfg["trainer"]["threads"] is not None:
        torch.set_num_threads(int(cfg["trainer"]["threads"]))


def release_torchrun_ranks(cfg: dict[str, Any]) -> None:
    """Under torchrun, rank 0 tells the other ranks there is nothing to train (a finished config)."""
    import torch.distributed as dist

    if not under_torchrun():
        return
    _init_group(cfg)
    share_job(None)
    dist.destroy_process_group()


def distributed_worker(cfg: dict[str, Any], job: JobInfo) -> Outcome:
    """Entry point of each DDP process: join the group, take rank 0's job, train, leave."""
    import torch.distributed as dist

    rank, world, local = worker_env()
    _init_group(cfg)
    try:
        shared = share_job(job)
        if shared is None:
            return Outcome("skipped")
        return train(cfg, dataclasses.replace(shared, rank=rank, world_size=world, local_rank=local))
    finally:
        dist.destroy_process_group()


def requeue_after_time_limit(signum: int) -> None:
    """SLURM's time-limit signal (`--signal`, hydra.launcher.signal_delay_s) stopped the training with a
    checkpoint: rank 0 puts the job back in the queue, where it resumes from that checkpoint in the same
    MLflow run. SIGTERM (preemption, `scontrol requeue`, scancel) is the scheduler's: it requeues a
    preempted job itself, and a cancelled one stays cancelled."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if signum not in TIME_LIMIT_SIGNALS or not job_id or worker_env()[0] != 0:
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the requeue's own SIGTERM must not cut the run's closing
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
        problem = (done.stderr.strip() or f"scontrol exited {done.returncode}") if done.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        problem = str(e)
    if problem:
        console.error(f"SLURM job {job_id} not requeued ({problem}); resubmit the same command to resume")
    else:
        console.info(f"SLURM job {job_id} requeued: it resumes from the checkpoint in the same MLflow run")


def run_training(cfg: dict[str, Any], job: JobInfo, devices: int) -> Outcome:
    """Train one job on `devices` processes; a worker's exception is raised here (ChildFailedError). Stopped
    by SLURM's time-limit signal, the job is requeued (requeue_after_time_limit)."""
    try:
        return _run_training(cfg, job, devices)
    except Interrupted as e:
        requeue_after_time_limit(e.signum)
        raise


def _run_training(cfg: dict[str, Any], job: JobInfo, devices: int) -> Outcome:
    if under_torchrun():
        return distributed_worker(cfg, job)
    fault = os.environ.pop(env.FAULT, None)  # test-only: this job gets it, the next ones not
    job_env = {env.FAULT: fault} if fault else {}
    if devices == 1:
        use_threads(cfg)
        os.environ.update(job_env)
        try:
            return train(cfg, job)
        finally:
            for key in job_env:
                os.environ.pop(key, None)
    from torch.distributed.elastic.multiprocessing.api import SignalException
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
    job_env[env.SPAWNED] = "1"
    os.environ.update(job_env)  # the spawned workers inherit the environment
    try:
        results = elastic_launch(config, distributed_worker)(cfg, job)
    except SignalException as e:  # Ctrl-C or SIGTERM reached the job: the agent has stopped the workers
        raise Interrupted(f"stopped by signal {int(e.sigval)}", int(e.sigval)) from None
    finally:
        for key in job_env:
            os.environ.pop(key, None)
    return results[0]
