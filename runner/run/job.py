"""One Hydra job = one MLflow run: prepare → decide → open or attach the run → train → record.

Re-running a command finds its earlier run by the config hash: a FINISHED (or diverged) run is skipped,
an interrupted one is continued from its checkpoint in the same MLflow run. `resume=never` trains afresh.
Everything that can be wrong with the config, the data or the store fails in `prepare`, before any run,
output or checkpoint exists.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner import console, env
from runner.config import GROUPS
from runner.config.identity import cell_id, config_hash, run_name
from runner.config.schema import check_registered, flatten, validate
from runner.errors import RunnerError, TrackingError
from runner.tracking.store import RunLog


@dataclass
class Spec:
    """A validated job: what to train, where its checkpoint and its MLflow store are."""

    resolved: dict[str, Any]  # the composed config, interpolations resolved: the one copy a job reads
    choices: dict[str, str]
    overrides: list[str]
    cwd: Path
    devices: int
    rank: int
    uri: str
    config_hash: str
    ckpt_path: Path
    name: str
    resume_from: Path | None
    carried: dict[str, Any] | None  # the checkpoint named by resume_from, already checked


@dataclass
class Decision:
    action: str  # skip | resume | new
    run_id: str | None = None  # skip: the run that finished; resume: the run to continue
    carried: dict[str, Any] | None = None  # new: a checkpoint of this config to continue in the new run
    source: Path | None = None  # where `carried` came from
    detail: str = ""  # skip: how the earlier run ended (finished or diverged)


def prepare(cfg: DictConfig) -> Spec:
    """Validate the config, the devices, the model, the data, the store and an explicit checkpoint."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if k in GROUPS or k == "experiment"}
    spec = prepare_spec(cfg, choices, list(hydra_cfg.overrides.task), Path(hydra_cfg.runtime.cwd))
    decide_threads(spec, OmegaConf.to_container(hydra_cfg.launcher) if hydra_cfg.launcher else None)
    return spec


def decide_threads(spec: Spec, launcher: dict[str, Any] | None) -> None:
    """trainer.threads as a number (the config tree and the run's params show it; the training processes
    read it): the cores this job has, shared with the jobs beside it (runner/train/device.py)."""
    from runner.run.ddp import under_torchrun
    from runner.train.device import job_threads, jobs_at_once, usable_cores, uses_cuda

    trainer, cores = spec.resolved["trainer"], usable_cores()
    processes = 1 if uses_cuda(trainer) else spec.devices  # CPU DDP: each rank its share of the cores
    if under_torchrun():
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
    omp = os.environ.get("OMP_NUM_THREADS")
    trainer["threads"], why = job_threads(
        trainer["threads"], cores, jobs_at_once(launcher, cores), processes, omp
    )
    console.info(f"torch threads: {trainer['threads']} ({why})")


def prepare_spec(
    cfg: DictConfig, choices: dict[str, str], overrides: list[str], cwd: Path, check_files: bool = True
) -> Spec:
    """`prepare` without Hydra's job context (runner --plan composes its jobs itself). check_files=False
    leaves the data files alone (a plan must not download them)."""
    from runner.data import check_data
    from runner.run.ddp import under_torchrun, worker_env
    from runner.run.preflight import check_model, check_parts, prove_writable, written_paths
    from runner.tracking.store import check_reachable, resolve_uri
    from runner.train import checkpoint
    from runner.train.device import resolve_devices

    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    validate(resolved)
    check_registered(resolved)
    devices = worker_env()[1] if under_torchrun() else resolve_devices(resolved["trainer"])
    check_model(resolved)
    check_parts(resolved)
    if check_files:  # missing or corrupt data: one line, before any MLflow run exists
        check_data(resolved["dataset"], cwd)
    tracking = resolved["tracking"]
    uri = resolve_uri(tracking["uri"], cwd)
    check_reachable(uri)
    for path, (key, value) in written_paths(resolved, cwd).items():  # a read-only or virtual file system
        prove_writable(key, value, path)
    chash = config_hash(resolved)
    resume_from = (cwd / resolved["resume_from"]).resolve() if resolved["resume_from"] else None
    swept = os.environ.get(env.SWEPT_KEYS)
    return Spec(
        resolved=resolved,
        choices=choices,
        overrides=overrides,
        cwd=cwd,
        devices=devices,
        rank=worker_env()[0] if under_torchrun() else 0,
        uri=uri,
        config_hash=chash,
        ckpt_path=(
            cwd / resolved["trainer"]["ckpt_dir"] / tracking["experiment"] / chash / "last.pt"
        ).resolve(),
        name=run_name(choices, overrides, swept.split(",") if swept is not None else None),
        resume_from=resume_from,
        carried=checkpoint.load(resume_from, chash) if resume_from is not None else None,
    )


def decide(spec: Spec, tracker: RunLog, experiment_id: str) -> Decision:
    """Skip a config that ran to the end; continue an interrupted one in its run; else a new run (carrying
    a checkpoint of this config when there is one: nothing trained is thrown away)."""
    from runner.train import checkpoint

    if spec.carried is not None:
        return Decision("new", carried=spec.carried, source=spec.resume_from)
    if spec.resolved["resume"] == "never":
        return Decision("new")
    previous = tracker.find_runs(experiment_id, {"runner.config_hash": spec.config_hash})
    for run in previous:
        ended = run.data.tags.get("runner.status", run.info.status.lower())
        if run.info.status == "FINISHED" or ended == "diverged":
            return Decision("skip", run_id=run.info.run_id, detail=ended)
    if not spec.ckpt_path.exists():
        return Decision("new")
    saved = checkpoint.load(
        spec.ckpt_path, spec.config_hash
    )  # refuses a truncated or foreign file, naming it
    if saved["run_id"] in {r.info.run_id for r in previous}:
        return Decision("resume", run_id=saved["run_id"])
    return Decision("new", carried=saved, source=spec.ckpt_path)


def open_run(spec: Spec, tracker: RunLog, experiment_id: str, decision: Decision) -> None:
    """Attach to the run to continue, or create the run: tags, params, config and overrides as artifacts."""
    from runner.train import checkpoint

    if decision.action == "resume":
        tracker.attach(decision.run_id)
        console.info(f"[green]resuming[/] {spec.name} in run {decision.run_id} from {spec.ckpt_path}")
        return
    if spec.ckpt_path.exists() and decision.carried is None:  # resume=never: train afresh
        spec.ckpt_path.unlink()
    tracker.start(experiment_id, spec.name, run_tags(spec), parent_id=os.environ.get(env.PARENT_RUN_ID))
    params = {
        k: v for k, v in spec.choices.items() if k != "experiment"
    }  # searchable: params.model = 'vgg_e'
    params.update(flatten({k: v for k, v in spec.resolved.items() if k != "expected"}))
    tracker.log_params(params)
    tracker.log_text(OmegaConf.to_yaml(spec.resolved), "config.yaml")
    tracker.log_text("\n".join(spec.overrides) + "\n", "overrides.txt")
    if decision.carried is not None:  # the carried checkpoint now belongs to this run
        decision.carried["run_id"] = tracker.run_id
        checkpoint.save(spec.ckpt_path, decision.carried)
        tracker.set_tags({"runner.resumed_from": str(decision.source)})
        epoch = decision.carried["train_state"]["epoch"]
        console.info(f"[green]continuing[/] {spec.name} from {decision.source} (epoch {epoch}) in a new run")


def run_tags(spec: Spec) -> dict[str, str]:
    from runner.train.device import device_name

    command = command_line()
    tags = {
        "runner.config_hash": spec.config_hash,
        "runner.cell": cell_id(spec.resolved),
        "runner.git_commit": git_commit(spec.cwd),
        "runner.torch": torch_version(),
        "runner.device": device_name(spec.resolved["trainer"]),
        "runner.devices": spec.devices,
        "runner.cuda_visible_devices": os.environ.get(env.CUDA_VISIBLE_DEVICES, "all"),
        "runner.command": command,
        "mlflow.note.content": f"Produced by:\n\n    {command}",
        **{f"runner.{k}": v for k, v in spec.choices.items()},
    }
    return {k: str(v) for k, v in tags.items()}


def train_and_record(spec: Spec, tracker: RunLog, resume: bool) -> int:
    """Train in the run and record how it ended (tags, status); the job's exit code. A diverged or failed
    job is a result: the sweep goes on and exits 1 at the end."""
    from runner.run.ddp import run_training
    from runner.train.loop import Interrupted, JobInfo
    from runner.train.metrics import headline

    job = JobInfo(spec.config_hash, str(spec.ckpt_path), str(spec.cwd), tracker.run_id, spec.uri, resume)
    console.config_tree({k: v for k, v in spec.resolved.items() if k != "expected"}, spec.choices)
    status, code = "FAILED", 1
    try:
        with system_metrics(spec, tracker, resume):
            outcome = run_training(spec.resolved, job, spec.devices)
        if outcome.status == "diverged":  # FAILED, with the step
            detail = {"runner.diverged_detail": outcome.detail, "runner.diverged_step": outcome.steps}
            tracker.set_tags({"runner.status": "diverged", **detail})
            console.info(f"[red]diverged[/] {spec.name}: {outcome.detail}")
        else:
            tracker.set_tags({"runner.status": "finished"})
            status, code = "FINISHED", 0
            console.summary(f"{spec.name} — finished", headline(outcome.metrics))
    except (Interrupted, KeyboardInterrupt) as e:  # KeyboardInterrupt: Ctrl-C before the loop took over
        status = "KILLED"
        tracker.set_tags({"runner.status": "killed"})
        kept = f"checkpoint kept at {spec.ckpt_path}" if spec.ckpt_path.exists() else "no checkpoint yet"
        console.error(f"{spec.name}: {str(e) or 'interrupted'}; {kept}; run the same command again to resume")
        raise SystemExit(128 + getattr(e, "signum", 2)) from None
    except RunnerError:
        raise
    except Exception as e:
        tracker.set_tags({"runner.status": "failed", "runner.error": str(e)[:500]})
        console.error(f"{spec.name} failed: {type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)
    finally:
        code = max(code, close_run(spec, tracker, status))
    return code


def system_metrics(spec: Spec, tracker: RunLog, resume: bool) -> contextlib.AbstractContextManager[None]:
    """MLflow's system metrics while the job trains (tracking.system_metrics), sampled by this process: the
    machine's CPU, memory and GPUs, whichever processes (DDP workers too) use them."""
    tracking = spec.resolved["tracking"]
    if not tracking["system_metrics"]:
        return contextlib.nullcontext()
    return tracker.system_metrics(tracking["system_metrics_seconds"], resume)


def close_run(spec: Spec, tracker: RunLog, status: str) -> int:
    """End the run with `status`; the exit code of a store that stopped taking writes, else 0."""
    try:
        tracker.end(status)
        url = tracker.run_url()
        console.info(f"MLflow run {tracker.run_id}" + (f": {url}" if url else "; browse it with `make ui`"))
        return 0
    except TrackingError as e:  # the run stays open, the checkpoint is kept: the same command resumes it
        console.error(f"{e}; run {tracker.run_id} could not be closed; checkpoint kept at {spec.ckpt_path}")
        return e.exit_code


def run_job(cfg: DictConfig) -> int:
    """The Hydra task function's body; returns the job's exit code. Failures are recorded, never raised, so
    that a sweep goes on past a failing job (a signal still ends the sweep)."""
    try:
        spec = prepare(cfg)
        if spec.rank != 0:  # torchrun's other ranks: rank 0 owns the run; they only train
            from runner.run.ddp import run_training
            from runner.train.loop import JobInfo

            job = JobInfo(spec.config_hash, str(spec.ckpt_path), str(spec.cwd), tracking_uri=spec.uri)
            run_training(spec.resolved, job, spec.devices)
            return 0
        with one_writer(spec):  # decide, train and record: one process at a time per config
            return decide_and_train(spec)
    except RunnerError as e:
        console.error(str(e))
        return e.exit_code


LOCK_NAME = "writer.lock"  # beside the config's last.pt


@contextlib.contextmanager
def one_writer(spec: Spec) -> Iterator[None]:
    """Hold the config's lock (flock on <ckpt dir>/<experiment>/<config hash>/writer.lock) from the decision to
    the closed run: a second identical command, or a relaunched sweep's job, refuses in one line naming the
    process that holds it; once that ended, the same command skips or resumes. The kernel releases a flock
    when its holder exits, however it exits (SIGKILL too): a lock is never left stale."""
    import fcntl

    path = spec.ckpt_path.parent / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from runner.run.ddp import release_torchrun_ranks

            release_torchrun_ranks(spec.resolved)  # torchrun's other ranks wait for rank 0's decision
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise RunnerError(
                f"{spec.name}: this config is being trained by {holder} (lock {path}); "
                "run the same command again once it ended: it skips or resumes the run"
            ) from None
        os.ftruncate(fd, 0)  # the holder, for the line of a command that finds the lock taken
        os.pwrite(fd, f"process {os.getpid()} ({command_line()})".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def decide_and_train(spec: Spec) -> int:
    """Rank 0's job under the config's lock: connect, decide, then skip, or open the run, train and record."""
    from runner.tracking.helper import connect
    from runner.tracking.store import artifact_location

    tracking = spec.resolved["tracking"]
    tracker = connect(
        spec.uri, artifact_location(tracking["artifact_root"], spec.cwd), tracking["retry_seconds"]
    )
    experiment_id = tracker.experiment_id(tracking["experiment"])
    decision = decide(spec, tracker, experiment_id)
    parent = os.environ.get(env.PARENT_RUN_ID)
    if parent and decision.run_id:  # a re-run sweep adopts its earlier runs: its report sees every job
        tracker.adopt(decision.run_id, parent)
    if decision.action == "skip":
        from runner.run.ddp import release_torchrun_ranks

        console.info(
            f"[yellow]skipped[/] {spec.name}: this config already ran to the end in run {decision.run_id} "
            f"({decision.detail}); "
            "pass resume=never to train it again"
        )
        release_torchrun_ranks(spec.resolved)  # torchrun's other ranks wait for rank 0's decision
        return 0
    open_run(spec, tracker, experiment_id, decision)
    return train_and_record(spec, tracker, resume=decision.action != "new" or decision.carried is not None)


def command_line() -> str:
    return "runner " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def git_commit(cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def torch_version() -> str:
    import torch

    return torch.__version__
