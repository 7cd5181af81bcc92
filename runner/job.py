"""One Hydra job = one MLflow run: validate, find or create the run, train, record the outcome.

Re-running a command finds its earlier run by the config hash: a FINISHED (or diverged) run is skipped,
an interrupted one is continued from its checkpoint in the same MLflow run. `resume=never` trains afresh.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from runner import console
from runner.config import GROUPS, cell_id, config_hash, run_name, validate
from runner.errors import ConfigError, RunnerError, TrackingError

# Exit codes of the jobs in this process; cli.main exits with the worst after Hydra returns.
EXIT_CODES: list[int] = []


def resolve_devices(trainer: dict[str, Any]) -> int:
    """`devices` as a number; more than exist is a config error (GPUs, or CPU cores for gloo)."""
    import os

    import torch

    accelerator, devices = trainer["accelerator"], trainer["devices"]
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=cuda but no GPU is visible; allowed here: auto or cpu")
    cuda = accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available())
    available = torch.cuda.device_count() if cuda else (os.cpu_count() or 1)
    if devices == "auto":
        return available if cuda else 1
    if devices > available:
        kind = "GPU(s) are visible" if cuda else "CPU cores exist (one process per device)"
        raise ConfigError(
            f"trainer.devices={devices} but only {available} {kind}; allowed: 1..{available} or auto"
        )
    return int(devices)


def check_model(cfg: dict[str, Any]) -> None:
    """Build the model on the meta device: bad model options fail here, before any run exists."""
    import torch

    from runner.models import build_model, model_names, model_options
    from runner.nn import make_act

    name = cfg["model"]["name"]
    if name not in model_names():
        raise ConfigError(f"model.name={name!r} is unknown; allowed: {', '.join(model_names())}")
    unknown = set(cfg["model"]) - {"name"} - model_options(name)
    if unknown:
        raise ConfigError(
            f"model.{sorted(unknown)[0]} is not an option of {name}; allowed: {', '.join(sorted(model_options(name)))}"
        )
    channels = 1 if cfg["dataset"]["name"] == "fashion_mnist" else 3
    try:
        with torch.device("meta"):
            build_model(
                cfg["model"], num_classes=10, in_channels=channels, image_size=32, act=make_act(cfg["act"])
            )
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model ({name}): {e}") from None


def git_commit(cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def run_job(cfg: DictConfig) -> str:
    """The Hydra task function's body. Returns the job's status; failures are recorded, never raised,
    so that a sweep goes on past a failing job."""
    try:
        return _run_job(cfg)
    except RunnerError as e:
        console.error(str(e))
        EXIT_CODES.append(e.exit_code)
        return "error"


def _run_job(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if k in GROUPS or k == "experiment"}
    overrides = list(hydra_cfg.overrides.task)
    resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    validate(resolved)
    cwd = Path(hydra_cfg.runtime.cwd)

    from runner.launch import release_torchrun_ranks, run_training, under_torchrun, worker_env
    from runner.tracking import Tracker, check_reachable, resolve_uri

    devices = worker_env()[1] if under_torchrun() else resolve_devices(resolved["trainer"])
    check_model(resolved)
    from runner.data import check_data

    check_data(resolved["dataset"], cwd)  # missing or corrupt data: one line, before any MLflow run exists
    tracking = resolved["tracking"]
    uri = resolve_uri(tracking["uri"], cwd)
    check_reachable(uri)
    chash = config_hash(resolved)
    ckpt_path = (cwd / resolved["trainer"]["ckpt_dir"] / tracking["experiment"] / chash / "last.pt").resolve()

    # An explicit checkpoint to continue from is refused here (missing, truncated, other config), before
    # any run exists.
    from runner import checkpoint

    resume_from = (cwd / resolved["resume_from"]).resolve() if resolved.get("resume_from") else None
    state = checkpoint.load(resume_from, chash) if resume_from is not None else None

    rank = worker_env()[0] if under_torchrun() else 0
    from runner.train import Interrupted, JobInfo

    job = JobInfo(config_hash=chash, ckpt_path=str(ckpt_path), cwd=str(cwd), tracking_uri=uri)
    if rank != 0:  # torchrun's other ranks: rank 0 owns the run; they only train
        return run_training(resolved, job, devices).status

    artifact_root = tracking["artifact_root"]
    if "://" not in artifact_root:
        artifact_root = str((cwd / artifact_root).resolve())
    tracker = Tracker(uri, artifact_root, tracking.get("retry_seconds"))
    experiment_id = tracker.experiment_id(tracking["experiment"])
    swept = os.environ.get("RUNNER_SWEPT_KEYS")
    name = run_name(choices, overrides, swept.split(",") if swept is not None else None)

    # --- find the earlier run of this config, if any ---------------------------------------------------
    # A run that ended (finished or diverged) is skipped. A checkpoint of this config continues in the run
    # that wrote it, or, when that run is not in the store, in a new run: nothing trained is thrown away.
    auto = resolved["resume"] == "auto" and resume_from is None
    previous = tracker.find_runs(experiment_id, {"runner.config_hash": chash}) if auto else []
    done = [
        r for r in previous if r.info.status == "FINISHED" or r.data.tags.get("runner.status") == "diverged"
    ]
    if done:
        last = done[0]
        console.info(
            f"[yellow]skipped[/] {name}: this config already ran to the end in run {last.info.run_id} "
            f"({last.data.tags.get('runner.status', last.info.status.lower())}); pass resume=never to train it again"
        )
        release_torchrun_ranks(resolved)  # torchrun's other ranks wait for rank 0's decision
        return "skipped"

    resume_run = None
    if auto and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, chash)  # refuses a truncated or foreign file, naming it
        if state["run_id"] in {r.info.run_id for r in previous}:
            resume_run, state = state["run_id"], None
    elif resume_from is None and ckpt_path.exists():  # resume=never: train afresh
        ckpt_path.unlink()

    if resume_run:
        tracker.attach(resume_run)
        console.info(f"[green]resuming[/] {name} in run {resume_run} from {ckpt_path}")
    else:
        tags = {
            "runner.config_hash": chash,
            "runner.cell": cell_id(resolved),
            "runner.git_commit": git_commit(cwd),
            "runner.torch": _torch_version(),
            "runner.device": _device_name(resolved["trainer"]),
            "runner.devices": devices,
            "runner.command": _command(),
            "mlflow.note.content": f"Produced by:\n\n    {_command()}",
            **{f"runner.{k}": v for k, v in choices.items()},
        }
        parent = os.environ.get("RUNNER_PARENT_RUN_ID")
        tracker.start(experiment_id, name, {k: str(v) for k, v in tags.items()}, parent_id=parent)
        params = {k: v for k, v in choices.items() if k != "experiment"}  # searchable: params.model = 'vgg_e'
        from runner.config import flatten

        params.update(flatten({k: v for k, v in resolved.items() if k != "expected"}))
        tracker.log_params(params)
        tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        tracker.log_text("\n".join(overrides) + "\n", "overrides.txt")
        if state is not None:  # continue a checkpoint in this new run: it now belongs to it
            source = resume_from or ckpt_path
            state["run_id"] = tracker.run_id
            checkpoint.save(ckpt_path, state)
            tracker.set_tags({"runner.resumed_from": str(source)})
            console.info(f"[green]continuing[/] {name} from {source} (epoch {state['epoch']}) in a new run")

    job.run_id, job.resume = tracker.run_id, resume_run is not None or state is not None
    console.config_tree(resolved, choices)
    status = "FAILED"
    try:
        outcome = run_training(resolved, job, devices)
        if outcome.status == "diverged":  # a result, not a crash: FAILED with the step, and the sweep goes on
            tracker.set_tags(
                {
                    "runner.status": "diverged",
                    "runner.diverged_detail": outcome.detail,
                    "runner.diverged_step": outcome.steps,
                }
            )
            console.info(f"[red]diverged[/] {name}: {outcome.detail}")
        else:
            tracker.set_tags({"runner.status": "finished"})
            status = "FINISHED"
            console.summary(
                f"{name} — finished",
                {k: v for k, v in outcome.metrics.items() if "error" in k or "loss" in k},
            )
        if outcome.status == "diverged":
            EXIT_CODES.append(1)
        return outcome.status
    except (Interrupted, KeyboardInterrupt) as e:  # KeyboardInterrupt: Ctrl-C before the loop took over
        status = "KILLED"
        tracker.set_tags({"runner.status": "killed"})
        kept = f"checkpoint kept at {ckpt_path}" if ckpt_path.exists() else "no checkpoint yet"
        console.error(f"{name}: {e or 'interrupted'}; {kept}; run the same command again to resume")
        raise SystemExit(128 + getattr(e, "signum", 2)) from None
    except RunnerError:
        raise
    except Exception as e:
        tracker.set_tags({"runner.status": "failed", "runner.error": str(e)[:500]})
        console.error(f"{name} failed: {type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)
        EXIT_CODES.append(1)
        return "failed"
    finally:
        try:
            tracker.end(status)
            url = tracker.run_url()
            console.info(
                f"MLflow run {tracker.run_id}" + (f": {url}" if url else "; browse it with `make ui`")
            )
        except (
            TrackingError
        ) as e:  # the store stopped taking writes: the run stays open, the checkpoint is kept
            console.error(f"{e}; run {tracker.run_id} could not be closed; checkpoint kept at {ckpt_path}")
            EXIT_CODES.append(e.exit_code)


def _command() -> str:
    return "runner " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _torch_version() -> str:
    import torch

    return torch.__version__


def _device_name(trainer: dict[str, Any]) -> str:
    import platform

    import torch

    if trainer["accelerator"] != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()})"
