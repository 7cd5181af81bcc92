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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner import console, env
from runner.config import GROUPS
from runner.config.identity import cell_id, config_hash, run_name
from runner.config.schema import check_registered, flatten, validate
from runner.errors import RunnerError, TrackingError


@dataclass
class Spec:
    """A validated job: what to train, where its checkpoint and its MLflow store are."""

    cfg: DictConfig
    resolved: dict[str, Any]
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
    return prepare_spec(cfg, choices, list(hydra_cfg.overrides.task), Path(hydra_cfg.runtime.cwd))


def prepare_spec(
    cfg: DictConfig, choices: dict[str, str], overrides: list[str], cwd: Path, check_files: bool = True
) -> Spec:
    """`prepare` without Hydra's job context (runner --plan composes its jobs itself). check_files=False
    leaves the data files alone (a plan must not download them)."""
    from runner.data import check_data
    from runner.run.ddp import under_torchrun, worker_env
    from runner.run.preflight import check_model, check_parts
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
    chash = config_hash(resolved)
    resume_from = (cwd / resolved["resume_from"]).resolve() if resolved["resume_from"] else None
    swept = os.environ.get(env.SWEPT_KEYS)
    return Spec(
        cfg=cfg,
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


def decide(spec: Spec, tracker: Any, experiment_id: str) -> Decision:
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


def open_run(spec: Spec, tracker: Any, experiment_id: str, decision: Decision) -> None:
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
    tracker.log_text(OmegaConf.to_yaml(spec.cfg, resolve=True), "config.yaml")
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


def train_and_record(spec: Spec, tracker: Any, resume: bool) -> int:
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
        console.error(f"{spec.name}: {e or 'interrupted'}; {kept}; run the same command again to resume")
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


def system_metrics(spec: Spec, tracker: Any, resume: bool) -> contextlib.AbstractContextManager[None]:
    """MLflow's system metrics while the job trains (tracking.system_metrics), sampled by this process: the
    machine's CPU, memory and GPUs, whichever processes (DDP workers too) use them."""
    tracking = spec.resolved["tracking"]
    if not tracking["system_metrics"]:
        return contextlib.nullcontext()
    return tracker.system_metrics(tracking["system_metrics_seconds"], resume)


def close_run(spec: Spec, tracker: Any, status: str) -> int:
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
        from runner.tracking.helper import connect

        tracking = spec.resolved["tracking"]
        root = tracking["artifact_root"]
        root = root if "://" in root else str((spec.cwd / root).resolve())
        tracker = connect(spec.uri, root, tracking["retry_seconds"])
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
        return train_and_record(
            spec, tracker, resume=decision.action != "new" or decision.carried is not None
        )
    except RunnerError as e:
        console.error(str(e))
        return e.exit_code


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
