"""The SLURM / torchrun / DDP plumbing of runner/run/ddp.py, in-process: the environment is set with monkeypatch,
`scontrol` and torch.distributed are fakes that record what they were asked, and one test joins a real
single-process gloo group. The same behaviour through real processes is in e2e/ (test_slurm.py, torchrun)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.distributed as dist

from runner import env
from runner.run import ddp
from runner.train.loop import Interrupted, JobInfo, Outcome

JOB = JobInfo("0123456789abcdef", "/ckpt/last.pt", "/work", run_id="run-0", resume=True)


@pytest.fixture(autouse=True)
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states its own rank, SLURM job and fault: none leaks in from the shell that started pytest."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_JOB_ID", "SLURM_NTASKS", "SUBMITIT_EXECUTOR",
                 env.SPAWNED, env.FAULT):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sigterm_restored():
    """The requeue ignores SIGTERM from then on: put the test process's handler back afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


class Scontrol:
    """subprocess.run as `scontrol` answers it: records each call, then returns or raises what it was given."""

    def __init__(self, returncode: int = 0, stderr: str = "", raises: BaseException | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.returncode, self.stderr, self.raises = returncode, stderr, raises

    def __call__(self, args: list[str], **kwargs: Any) -> SimpleNamespace:
        self.calls.append((args, kwargs))
        if self.raises is not None:
            raise self.raises
        return SimpleNamespace(returncode=self.returncode, stdout="", stderr=self.stderr)


def scontrol(monkeypatch: pytest.MonkeyPatch, **answer: Any) -> Scontrol:
    fake = Scontrol(**answer)
    monkeypatch.setattr(ddp.subprocess, "run", fake)
    return fake


# --- requeue after SLURM's time-limit signal -------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2])
def test_the_time_limit_signal_makes_rank_0_requeue_its_slurm_job_and_say_so(
    signum, monkeypatch, capsys, sigterm_restored
) -> None:
    fake = scontrol(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 0 of two: the rank decides, not the world size
    ddp.requeue_after_time_limit(signum)
    # The exact call: output captured as text (its stderr is the message), bounded so a hung slurmctld
    # cannot hold the job's closing forever.
    assert fake.calls == [
        (["scontrol", "requeue", "4242"], {"capture_output": True, "text": True, "timeout": 60})
    ]
    # The requeue sends the job SIGTERM: it must not cut the run's closing (checkpoint upload, run status).
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    out, err = capsys.readouterr()
    assert out == "SLURM job 4242 requeued: it resumes from the checkpoint in the same MLflow run\n"
    assert err == ""


def test_without_a_rank_in_the_environment_the_process_is_rank_0_and_requeues(
    monkeypatch, capsys, sigterm_restored
) -> None:
    fake = scontrol(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    ddp.requeue_after_time_limit(signal.SIGUSR2)
    assert [args for args, _ in fake.calls] == [["scontrol", "requeue", "41"]]
    assert "SLURM job 41 requeued" in capsys.readouterr().out


@pytest.mark.parametrize(
    "signum, job_id, rank",
    [
        (signal.SIGTERM, "41", "0"),  # preemption or scancel: the scheduler's decision, not ours
        (signal.SIGINT, "41", "0"),  # Ctrl-C
        (signal.SIGUSR2, None, "0"),  # not under SLURM
        (signal.SIGUSR2, "", "0"),  # an empty job id is no job
        (signal.SIGUSR1, "41", "1"),  # rank 1 leaves it to rank 0
        (signal.SIGUSR2, "41", "3"),
    ],
)
def test_only_the_time_limit_signal_under_slurm_on_rank_0_requeues(
    signum, job_id, rank, monkeypatch, capsys, sigterm_restored
) -> None:
    fake = scontrol(monkeypatch)
    if job_id is not None:
        monkeypatch.setenv("SLURM_JOB_ID", job_id)
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "4")
    ddp.requeue_after_time_limit(signum)
    assert fake.calls == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # nothing touched: SIGTERM still ends the job
    assert capsys.readouterr() == ("", "")


def test_scontrols_warnings_on_a_successful_requeue_are_no_error(
    monkeypatch, capsys, sigterm_restored
) -> None:
    # Only a failed scontrol (non-zero exit) is a refusal: what it prints on success is not its reason.
    scontrol(monkeypatch, returncode=0, stderr="scontrol: warning: job 77 is held\n")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    ddp.requeue_after_time_limit(signal.SIGUSR2)
    out, err = capsys.readouterr()
    assert out == "SLURM job 77 requeued: it resumes from the checkpoint in the same MLflow run\n"
    assert err == ""


@pytest.mark.parametrize(
    "returncode, stderr, reason",
    [
        (1, "scontrol: error: Invalid job id specified\n", "scontrol: error: Invalid job id specified"),
        # A failed scontrol that prints nothing must not be reported as a requeue: the run would never resume.
        (3, "  \n", "scontrol exited 3"),
    ],
)
def test_a_refused_requeue_is_one_error_line_with_scontrols_reason_or_exit_status(
    returncode, stderr, reason, monkeypatch, capsys, sigterm_restored
) -> None:
    scontrol(monkeypatch, returncode=returncode, stderr=stderr)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    ddp.requeue_after_time_limit(signal.SIGUSR2)
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err == f"runner: error: SLURM job 77 not requeued ({reason}); resubmit the same command to resume\n"
    )


@pytest.mark.parametrize(
    "raised, reason",
    [
        (
            FileNotFoundError(2, "No such file or directory", "scontrol"),
            "[Errno 2] No such file or directory: 'scontrol'",
        ),
        (
            subprocess.TimeoutExpired(["scontrol", "requeue", "77"], 60),
            "Command '['scontrol', 'requeue', '77']' timed out after 60 seconds",
        ),
    ],
)
def test_no_scontrol_or_a_hung_one_is_an_error_line_not_a_crash(
    raised, reason, monkeypatch, capsys, sigterm_restored
) -> None:
    scontrol(monkeypatch, raises=raised)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    ddp.requeue_after_time_limit(signal.SIGUSR1)
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err == f"runner: error: SLURM job 77 not requeued ({reason}); resubmit the same command to resume\n"
    )


# --- the process group -----------------------------------------------------------------------------------


def test_free_port_is_an_unprivileged_loopback_port_nobody_holds() -> None:
    port = ddp.free_port()
    assert isinstance(port, int) and 1024 < port < 65536  # the kernel's ephemeral range, never port 0 or 1
    with socket.socket() as s:  # it was released: the rendezvous can bind it
        s.bind(("127.0.0.1", port))


class FakeDist:
    """torch.distributed as the ddp module uses it: the group calls are recorded, the broadcast hands every
    rank what rank 0 put in (`sent`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rank: int = 0, initialized: bool = False) -> None:
        self.rank, self.initialized = rank, initialized
        self.inits: list[tuple[tuple, dict]] = []
        self.broadcasts: list[tuple[list, dict]] = []
        self.destroyed = 0
        self.sent: Any = None
        for name in (
            "init_process_group",
            "is_initialized",
            "get_rank",
            "broadcast_object_list",
            "destroy_process_group",
        ):
            monkeypatch.setattr(dist, name, getattr(self, name))

    def init_process_group(self, *args: Any, **kwargs: Any) -> None:
        self.inits.append((args, kwargs))
        self.initialized = True

    def is_initialized(self) -> bool:
        return self.initialized

    def get_rank(self) -> int:
        return self.rank

    def broadcast_object_list(self, object_list: list, src: int | None = None, **kwargs: Any) -> None:
        self.broadcasts.append((list(object_list), {"src": src, **kwargs}))
        if self.rank != 0:
            object_list[0] = self.sent

    def destroy_process_group(self) -> None:
        self.destroyed += 1
        self.initialized = False


def trainer_cfg(accelerator: str, threads: int | None = 3, timeout: float = 90) -> dict[str, Any]:
    return {"trainer": {"accelerator": accelerator, "threads": threads, "ddp_timeout_s": timeout}}


@pytest.fixture
def set_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """torch.set_num_threads recorded, not applied: the test process keeps its one thread."""
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    return calls


def test_a_cpu_group_is_gloo_with_the_configured_timeout_and_the_jobs_thread_share(
    monkeypatch, set_threads
) -> None:
    fake = FakeDist(monkeypatch)
    devices: list[int] = []
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    ddp._init_group(trainer_cfg("cpu", threads=3, timeout=90))
    assert fake.inits == [(("gloo",), {"timeout": timedelta(seconds=90)})]
    assert set_threads == [3]  # N CPU workers each on every core would thrash
    assert devices == []


def test_a_cuda_group_is_nccl_on_the_local_ranks_gpu_and_leaves_threads_alone(
    monkeypatch, set_threads
) -> None:
    fake = FakeDist(monkeypatch)
    devices: list[int] = []
    monkeypatch.setattr(torch.cuda, "set_device", devices.append)
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")  # the second GPU of the second node
    ddp._init_group(trainer_cfg("cuda", threads=3, timeout=2.5))
    assert devices == [1]
    assert fake.inits == [(("nccl",), {"timeout": timedelta(seconds=2.5)})]
    assert set_threads == []


def test_a_group_already_joined_is_not_joined_again(monkeypatch, set_threads) -> None:
    fake = FakeDist(monkeypatch, initialized=True)
    ddp._init_group(trainer_cfg("cpu", threads=2))
    assert fake.inits == []
    assert set_threads == [2]  # the threads are still this process's share


def test_without_a_thread_count_torch_keeps_its_default(monkeypatch, set_threads) -> None:
    fake = FakeDist(monkeypatch)
    ddp._init_group(trainer_cfg("cpu", threads=None, timeout=30))
    assert set_threads == []
    assert fake.inits == [(("gloo",), {"timeout": timedelta(seconds=30)})]


def test_rank_0_broadcasts_its_job_from_rank_0(monkeypatch) -> None:
    fake = FakeDist(monkeypatch, rank=0)
    assert ddp.share_job(JOB) is JOB
    assert fake.broadcasts == [([JOB], {"src": 0})]


def test_another_rank_sends_nothing_and_takes_rank_0s_job(monkeypatch) -> None:
    fake = FakeDist(monkeypatch, rank=1)
    fake.sent = JOB
    mine = JobInfo("ffffffffffffffff", "/other.pt", "/elsewhere")
    assert ddp.share_job(mine) is JOB  # rank 0 decides new run / resume / skip, whatever this rank found
    assert fake.broadcasts == [([None], {"src": 0})]


def test_nothing_from_rank_0_is_nothing_on_every_rank(monkeypatch) -> None:
    fake = FakeDist(monkeypatch, rank=2)
    fake.sent = None
    assert ddp.share_job(JOB) is None


def fake_train(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict, JobInfo]]:
    trained: list[tuple[dict, JobInfo]] = []

    def train(cfg: dict, job: JobInfo) -> Outcome:
        trained.append((cfg, job))
        return Outcome("finished", {"test_top1_error": 8.75}, epochs=2, steps=10)

    monkeypatch.setattr(ddp, "train", train)
    return trained


def test_a_worker_trains_rank_0s_job_as_its_own_rank_then_leaves_the_group(monkeypatch, set_threads) -> None:
    fake = FakeDist(monkeypatch, rank=3)
    fake.sent = JOB
    trained = fake_train(monkeypatch)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    cfg = trainer_cfg("cpu", threads=2, timeout=60)
    outcome = ddp.distributed_worker(cfg, JobInfo("local", "", ""))
    assert outcome == Outcome("finished", {"test_top1_error": 8.75}, epochs=2, steps=10)
    assert trained == [(cfg, JobInfo(**{**vars(JOB), "rank": 3, "world_size": 4, "local_rank": 1}))]
    assert fake.inits == [(("gloo",), {"timeout": timedelta(seconds=60)})] and set_threads == [2]
    assert fake.destroyed == 1


def test_a_worker_told_nothing_to_train_skips_and_still_leaves_the_group(monkeypatch, set_threads) -> None:
    fake = FakeDist(monkeypatch, rank=1)
    fake.sent = None
    trained = fake_train(monkeypatch)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ddp.distributed_worker(trainer_cfg("cpu"), JOB) == Outcome("skipped")
    assert trained == [] and fake.destroyed == 1


def test_a_worker_whose_training_raises_still_leaves_the_group(monkeypatch, set_threads) -> None:
    fake = FakeDist(monkeypatch, rank=0)

    def crash(cfg: dict, job: JobInfo) -> Outcome:
        raise RuntimeError("fault injected at step 3")

    monkeypatch.setattr(ddp, "train", crash)
    with pytest.raises(RuntimeError, match="fault injected"):
        ddp.distributed_worker(trainer_cfg("cpu"), JOB)
    assert fake.destroyed == 1  # a later job of the sweep can start its own group


def test_a_real_single_process_gloo_group_runs_the_worker_end_to_end(
    tmp_path: Path, monkeypatch, set_threads
) -> None:
    """No fakes of torch.distributed: init from the environment (as torchrun sets it), the broadcast, the exit."""
    trained = fake_train(monkeypatch)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(ddp.free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    try:
        outcome = ddp.distributed_worker(trainer_cfg("cpu", threads=1, timeout=20), JOB)
    finally:
        if dist.is_initialized():  # a failing worker must not leave the group to the next test
            dist.destroy_process_group()
    assert outcome.status == "finished"
    assert trained[0][1] == JobInfo(**{**vars(JOB), "rank": 0, "world_size": 1, "local_rank": 0})
    assert not dist.is_initialized()


# --- who starts the workers: torchrun, one Slurm task per GPU, or this process ---------------------------------


@pytest.mark.parametrize(
    ("world_size", "spawned", "one_of_several"),
    [
        (None, False, False),  # a plain `runner`
        ("1", False, False),  # torchrun --nproc-per-node 1: one worker is the whole job
        ("2", False, True),  # torchrun, or Slurm's tasks: this process is a rank already
        ("2", True, False),  # a worker this runner spawned: its parent started the group
    ],
)
def test_a_process_is_one_of_several_workers_only_where_torchrun_or_slurm_made_it_so(
    world_size: str | None, spawned: bool, one_of_several: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if world_size is not None:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    if spawned:
        monkeypatch.setenv(env.SPAWNED, "1")
    assert ddp.under_torchrun() is one_of_several


def test_a_process_no_launcher_started_is_rank_0_of_a_world_of_1() -> None:
    assert ddp.worker_env() == (0, 1, 0)  # no RANK, WORLD_SIZE, LOCAL_RANK (the autouse fixture clears them)


class FakeSlurmTasks:
    """submitit's TorchDistributedEnvironment: what export() was asked, then RANK... set as Slurm's task 1 of 4."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.exports: list[dict[str, Any]] = []
        self.monkeypatch = monkeypatch
        import submitit.helpers

        monkeypatch.setattr(submitit.helpers, "TorchDistributedEnvironment", lambda: self)

    def export(self, **kwargs: Any) -> None:
        self.exports.append(kwargs)
        for name, value in {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}.items():
            self.monkeypatch.setenv(name, value)


def test_slurms_tasks_become_torch_ranks_leaving_the_gpu_to_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks = FakeSlurmTasks(monkeypatch)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # hydra/launcher=slurm, one task per GPU
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert ddp.under_torchrun() is True
    # CUDA_VISIBLE_DEVICES untouched: _init_group picks the local rank's GPU (torch.cuda.set_device).
    assert tasks.exports == [{"set_cuda_visible_devices": False}]
    assert ddp.worker_env() == (1, 4, 1)


@pytest.mark.parametrize(
    "environ",
    [
        {"SUBMITIT_EXECUTOR": "slurm"},  # one task: SLURM_NTASKS unset
        {"SUBMITIT_EXECUTOR": "slurm", "SLURM_NTASKS": "1"},
        {"SUBMITIT_EXECUTOR": "local", "SLURM_NTASKS": "4"},  # submitit's local executor is no Slurm job
        {"SLURM_NTASKS": "4"},  # an sbatch script of one's own: torchrun inside sets the ranks
        {"SUBMITIT_EXECUTOR": "slurm", "SLURM_NTASKS": "4", "RANK": "2", "WORLD_SIZE": "4"},  # set already
    ],
)
def test_slurms_variables_are_adopted_only_for_several_tasks_of_hydras_slurm_launcher(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = FakeSlurmTasks(monkeypatch)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    ddp.under_torchrun()
    assert tasks.exports == []
    assert os.environ.get("RANK") == environ.get("RANK")


# --- training a job: in this process, or on N spawned workers -------------------------------------------------

OUTCOME = Outcome("finished", {"test_top1_error": 8.75}, epochs=2, steps=10)


def test_one_device_trains_in_this_process_and_the_fault_goes_to_this_job_only(
    monkeypatch: pytest.MonkeyPatch, set_threads: list[int]
) -> None:
    seen: list[tuple[dict, JobInfo, str | None]] = []

    def train(cfg: dict, job: JobInfo) -> Outcome:
        seen.append((cfg, job, os.environ.get(env.FAULT)))
        return OUTCOME

    monkeypatch.setattr(ddp, "train", train)
    monkeypatch.setenv(env.FAULT, "0:3")  # test-only fault injection: rank 0 raises after step 3
    cfg = trainer_cfg("cpu", threads=2)
    assert ddp.run_training(cfg, JOB, 1) is OUTCOME
    assert seen == [(cfg, JOB, "0:3")] and set_threads == [2]
    assert env.FAULT not in os.environ
    assert ddp.run_training(cfg, JOB, 1) is OUTCOME
    assert seen[1] == (cfg, JOB, None)  # the next job of the sweep runs clean


def test_a_job_that_raises_takes_its_fault_with_it(
    monkeypatch: pytest.MonkeyPatch, set_threads: list[int]
) -> None:
    def train(cfg: dict, job: JobInfo) -> Outcome:
        raise RuntimeError("fault injected at step 3")

    monkeypatch.setattr(ddp, "train", train)
    monkeypatch.setenv(env.FAULT, "0:3")
    with pytest.raises(RuntimeError, match="fault injected"):
        ddp.run_training(trainer_cfg("cpu"), JOB, 1)
    assert env.FAULT not in os.environ


def test_a_rank_started_by_torchrun_is_a_worker_of_the_group_whatever_devices_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers: list[tuple[dict, JobInfo]] = []
    monkeypatch.setattr(ddp, "distributed_worker", lambda cfg, job: workers.append((cfg, job)) or OUTCOME)
    monkeypatch.setattr(ddp, "train", lambda cfg, job: pytest.fail("trained outside the group"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = trainer_cfg("cpu")
    assert ddp.run_training(cfg, JOB, 1) is OUTCOME
    assert workers == [(cfg, JOB)]


class FakeElastic:
    """torch's elastic_launch: records the launch config, and runs `run` in place of the N workers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, run: Any = None) -> None:
        import torch.distributed.launcher.api as launcher

        self.configs: list[Any] = []
        self.calls: list[tuple[Any, tuple, str | None, str | None]] = []
        self.run = run
        monkeypatch.setattr(launcher, "elastic_launch", self)

    def __call__(self, config: Any, entrypoint: Any) -> Any:
        self.configs.append(config)

        def launch(*args: Any) -> dict[int, Outcome]:
            self.calls.append((entrypoint, args, os.environ.get(env.SPAWNED), os.environ.get(env.FAULT)))
            if self.run is not None:
                self.run()
            return {0: OUTCOME, 1: Outcome("finished", {"test_top1_error": 9.0})}  # rank 0's is the job's

        return launch


def test_several_devices_spawn_one_worker_each_in_a_fresh_single_node_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elastic = FakeElastic(monkeypatch)
    monkeypatch.setattr(ddp, "free_port", lambda: 29533)
    monkeypatch.setattr(ddp, "train", lambda cfg, job: pytest.fail("trained in the launching process"))
    monkeypatch.setenv(env.FAULT, "1:5")
    cfg = trainer_cfg("cpu")
    assert ddp.run_training(cfg, JOB, 2) is OUTCOME
    # The workers get the composed config and rank 0's job, and inherit the fault and the mark of our workers.
    assert elastic.calls == [(ddp.distributed_worker, (cfg, JOB), "1", "1:5")]
    assert env.SPAWNED not in os.environ and env.FAULT not in os.environ  # the next job starts clean
    (config,) = elastic.configs
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (1, 1, 2)
    assert (config.rdzv_backend, config.rdzv_endpoint) == ("c10d", "127.0.0.1:29533")  # its own port
    assert config.max_restarts == 0  # a failed worker fails the job; it is not run again
    assert (config.monitor_interval, config.start_method) == (0.5, "spawn")
    assert re.fullmatch("runner-[0-9a-f]{8}", config.run_id)
    ddp.run_training(cfg, JOB, 3)
    assert elastic.configs[1].nproc_per_node == 3 and elastic.configs[1].run_id != config.run_id


def test_a_signal_that_stopped_the_workers_is_an_interruption_with_that_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from torch.distributed.elastic.multiprocessing.api import SignalException

    def stopped() -> None:
        raise SignalException("Process 7 got signal: 15", sigval=signal.SIGTERM)

    FakeElastic(monkeypatch, run=stopped)
    requeued: list[int] = []
    monkeypatch.setattr(ddp, "requeue_after_time_limit", requeued.append)
    with pytest.raises(Interrupted) as interrupted:
        ddp.run_training(trainer_cfg("cpu"), JOB, 2)
    assert str(interrupted.value) == "stopped by signal 15"
    assert interrupted.value.signum == signal.SIGTERM  # the process exits 128 + 15, as the shell expects
    assert interrupted.value.__cause__ is None and interrupted.value.__suppress_context__
    assert requeued == [signal.SIGTERM] and env.SPAWNED not in os.environ


def test_a_job_stopped_by_slurms_time_limit_is_requeued_then_still_reported_interrupted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[dict, JobInfo, int]] = []
    stop = Interrupted("stopped by signal 12", signal.SIGUSR2)

    def run(cfg: dict, job: JobInfo, devices: int) -> Outcome:
        asked.append((cfg, job, devices))
        raise stop

    requeued: list[int] = []
    monkeypatch.setattr(ddp, "_run_training", run)
    monkeypatch.setattr(ddp, "requeue_after_time_limit", requeued.append)
    cfg = trainer_cfg("cpu")
    with pytest.raises(Interrupted) as interrupted:
        ddp.run_training(cfg, JOB, 4)
    assert interrupted.value is stop and requeued == [signal.SIGUSR2]
    assert asked == [(cfg, JOB, 4)]


def test_under_torchrun_rank_0_tells_the_other_ranks_there_is_nothing_to_train(
    monkeypatch: pytest.MonkeyPatch, set_threads: list[int]
) -> None:
    fake = FakeDist(monkeypatch, rank=0)
    ddp.release_torchrun_ranks(trainer_cfg("cpu", threads=2, timeout=60))  # a plain `runner`: no group
    assert fake.inits == [] and fake.broadcasts == [] and fake.destroyed == 0
    monkeypatch.setenv("WORLD_SIZE", "2")
    ddp.release_torchrun_ranks(trainer_cfg("cpu", threads=2, timeout=60))
    assert fake.inits == [(("gloo",), {"timeout": timedelta(seconds=60)})]
    assert fake.broadcasts == [([None], {"src": 0})] and fake.destroyed == 1
