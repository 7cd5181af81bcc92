"""The training loop: one function, read top to bottom.

    data → model (act, init) → optimizer → schedule → [resume] → epochs of steps → evaluate → log → checkpoint

Runs in the Hydra job process for one device, or in each of N worker processes under DDP (runner/launch.py).
Only rank 0 talks to MLflow and the console. The host syncs with the device only every
`trainer.log_every` steps: losses and errors are summed on the device and read at those points.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from runner import checkpoint, console
from runner.data import Context, build_data
from runner.data.augment import average_views
from runner.models import build_model
from runner.nn import init_weights, make_act, no_decay_parameters
from runner.schedule import build_schedule
from runner.sync_bn import convert_sync_batchnorm


@dataclass
class JobInfo:
    """What the job process hands each training process (picklable for the DDP workers)."""

    config_hash: str
    ckpt_path: str
    cwd: str
    run_id: str | None = None  # MLflow run logged to by rank 0
    tracking_uri: str | None = None
    artifact_dir: str | None = None  # where rank 0 writes files before logging them
    resume: bool = False  # a checkpoint at ckpt_path is to be continued
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


@dataclass
class Outcome:
    status: str  # finished | diverged | killed
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    steps: int = 0
    detail: str = ""


class Diverged(Exception):
    """The loss became non-finite: a result of the run, not a crash."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived: a checkpoint was written, the run is to be marked KILLED."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)  # the process exits with 128 + signum, as the shell expects


_signal_received: list[int] = []


def _on_signal(signum: int, frame: Any) -> None:
    _signal_received.append(signum)


def pick_device(accelerator: str, local_rank: int) -> torch.device:
    if accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def build_optimizer(model: nn.Module, cfg: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay on every parameter but the PReLU slopes (He et al. 2015, Sec. 2.1)."""
    exempt = no_decay_parameters(model)
    decay = [p for p in model.parameters() if id(p) not in exempt]
    slopes = [p for p in model.parameters() if id(p) in exempt]
    groups = [{"params": decay, "weight_decay": cfg["weight_decay"]}]
    if slopes:
        groups.append({"params": slopes, "weight_decay": 0.0})
    return torch.optim.SGD(
        groups, lr=lr, momentum=cfg.get("momentum", 0.9), nesterov=cfg.get("nesterov", False)
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, autocast: Any, world_size: int) -> dict[str, float]:
    """Top-1/top-5 error (%) and mean loss over the whole set: sums are all-reduced over the ranks' shards."""
    model.eval()
    sums = None
    for x, y in loader.batches(0):
        with autocast():
            out = model(x.flatten(0, 1) if x.dim() == 5 else x)
        if x.dim() == 5:  # multi-view test batches (N, views, C, H, W), e.g. 10-crop: average the softmax
            out = average_views(out, x.shape[1])
        top5 = out.float().topk(min(5, out.shape[1]), dim=1).indices
        batch = torch.stack(
            [
                F.cross_entropy(out.float(), y, reduction="sum"),
                (top5[:, 0] != y).sum().float(),
                (~(top5 == y[:, None]).any(1)).sum().float(),
                torch.tensor(float(len(y)), device=y.device),
            ]
        )
        sums = batch if sums is None else sums + batch
    if sums is None:
        sums = torch.zeros(4, device=next(model.parameters()).device)
    if world_size > 1:
        dist.all_reduce(sums)
    loss, top1, top5_wrong, n = sums.tolist()
    model.train()
    n = max(n, 1.0)
    return {"loss": loss / n, "top1_error": 100 * top1 / n, "top5_error": 100 * top5_wrong / n}


def model_summary(model: nn.Module) -> str:
    total = sum(p.numel() for p in model.parameters())
    lines = [f"parameters: {total:,}", ""]
    for name, child in model.named_children():
        lines.append(f"{name:<12} {sum(p.numel() for p in child.parameters()):>14,}")
    return "\n".join(lines + ["", str(model)])


def train(cfg: dict[str, Any], job: JobInfo) -> Outcome:
    trainer, rank, world = cfg["trainer"], job.rank, job.world_size
    lead = rank == 0
    device = pick_device(trainer["accelerator"], job.local_rank)
    if trainer["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg["seed"])  # same on every rank: identical initial weights

    tracker = None
    if lead and job.run_id:
        from runner.tracking import Tracker

        tracker = Tracker(job.tracking_uri, None, cfg["tracking"].get("retry_seconds"))
        tracker.run_id = job.run_id

    # --- data, model, optimizer, schedule ---------------------------------------------------------
    data = build_data(
        cfg["dataset"],
        Context(
            device, rank, world, trainer["batch_size"], cfg["seed"], trainer["channels_last"], Path(job.cwd)
        ),
    )
    model = build_model(
        cfg["model"],
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        image_size=data.image_size,
        act=make_act(cfg["act"]),
    )
    init_weights(model, cfg["init"], cfg["act"])
    memory_format = torch.channels_last if trainer["channels_last"] else torch.preserve_format
    model = model.to(device, memory_format=memory_format)
    if world > 1 and trainer["sync_bn"]:  # nn.SyncBatchNorm on GPUs, its CPU counterpart on gloo
        model = convert_sync_batchnorm(model)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if trainer["compile"]:
        net = torch.compile(net)
    lr = cfg["optim"]["lr"] * (world if trainer["scale_lr"] else 1)
    optimizer = build_optimizer(model, cfg["optim"], lr)
    steps_per_epoch = len(data.train)
    max_steps = trainer["max_steps"] or trainer["epochs"] * steps_per_epoch
    epochs = math.ceil(max_steps / steps_per_epoch)
    schedule = build_schedule(optimizer, cfg["schedule"], max_steps)
    bf16 = trainer["precision"] == "bf16"

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    # --- resume -------------------------------------------------------------------------------------
    ckpt_path = Path(job.ckpt_path)
    epoch, step_in_epoch, global_step, best = 0, 0, 0, math.inf
    partial = torch.zeros(3, device=device)  # loss sum, wrong count, images: the epoch so far
    elapsed_before = 0.0
    if job.resume:
        state = checkpoint.load(ckpt_path, job.config_hash)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
        except (RuntimeError, KeyError, ValueError) as e:  # the hash matched, the tensors do not
            raise checkpoint.CheckpointError(
                f"checkpoint {ckpt_path} does not fit this model ({str(e).strip().splitlines()[0]})"
            ) from None
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        best, elapsed_before = state["best"], state["epoch_seconds_so_far"]
        partial = state["partial"].to(device) * (1.0 if lead else 0.0)  # rank 0 saved it: count it once
        checkpoint.set_rng_state(state["rng"])
    last_logged = tracker.last_step("train_loss") if (tracker and job.resume) else -1

    def save_checkpoint(seconds_so_far: float) -> None:
        if not lead:
            return
        checkpoint.save(
            ckpt_path,
            {
                "config_hash": job.config_hash,
                "run_id": job.run_id or "",
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "global_step": global_step,
                "best": best,
                "partial": partial.cpu(),
                "epoch_seconds_so_far": seconds_so_far,
                "rng": checkpoint.rng_state(),
            },
        )

    if tracker and not job.resume:
        tracker.log_text(model_summary(model), "model_summary.txt")
        tracker.set_tags(
            {"runner.parameters": sum(p.numel() for p in model.parameters()), "runner.world_size": world}
        )

    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    _signal_received.clear()
    outcome = Outcome("finished")
    metrics: dict[str, float] = {}
    ckpt_every = (trainer["ckpt_minutes"] or math.inf) * 60
    last_ckpt_time = time.monotonic()
    log_every = trainer["log_every"]
    fault = (
        tuple(int(v) for v in os.environ["RUNNER_FAULT"].split(":")) if "RUNNER_FAULT" in os.environ else None
    )
    try:
        with console.TrainProgress(epochs, steps_per_epoch, enabled=lead and trainer["progress"]) as bars:
            while epoch < epochs and global_step < max_steps and not schedule.stop:
                # --- one epoch of training ------------------------------------------------------------
                net.train()
                bars.start_epoch(epoch, step_in_epoch)
                t0 = time.perf_counter()
                interval_start, interval_images = t0, 0
                for x, y in data.train.batches(epoch, step_in_epoch):
                    if global_step >= max_steps:
                        break
                    with autocast():
                        out = net(x)
                        loss = F.cross_entropy(out, y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if fault == (rank, global_step + 1):  # test-only (RUNNER_FAULT, see runner/launch.py)
                        raise RuntimeError(f"injected fault on rank {rank} at step {global_step + 1}")
                    partial += torch.stack(
                        [
                            loss.detach().float() * len(y),
                            (out.argmax(1) != y).sum().float(),
                            torch.tensor(float(len(y)), device=device),
                        ]
                    )
                    step_in_epoch += 1
                    global_step += 1
                    interval_images += len(y)
                    # Single process: react to a signal at once. DDP: only at intervals, where every rank
                    # takes part in the same all-reduce and so stops at the same step.
                    if global_step % log_every == 0 or (world == 1 and _signal_received):
                        interval = torch.cat(
                            [partial, torch.tensor([float(bool(_signal_received))], device=device)]
                        )
                        if world > 1:
                            dist.all_reduce(interval)
                        loss_sum, wrong, seen, signalled = interval.tolist()  # the one host sync per interval
                        if not math.isfinite(loss_sum):
                            raise Diverged(f"non-finite loss at step {global_step}")
                        if signalled:
                            save_checkpoint(elapsed_before + time.perf_counter() - t0)
                            signum = _signal_received[0] if _signal_received else signal.SIGTERM
                            raise Interrupted(
                                f"stopped by {signal.Signals(signum).name} at step {global_step}", signum
                            )
                        now = time.perf_counter()
                        bars.steps(
                            step_in_epoch,
                            loss_sum / seen,
                            schedule.lr,
                            interval_images * world / max(now - interval_start, 1e-9),
                        )
                        interval_start, interval_images = now, 0
                        schedule.iteration(global_step, 100 * wrong / seen)
                    else:
                        schedule.iteration(global_step)
                    if time.monotonic() - last_ckpt_time > ckpt_every:
                        save_checkpoint(elapsed_before + time.perf_counter() - t0)
                        last_ckpt_time = time.monotonic()
                train_seconds = elapsed_before + time.perf_counter() - t0

                # --- evaluate, log, checkpoint ---------------------------------------------------------
                totals = partial.clone()
                if world > 1:
                    dist.all_reduce(totals)
                loss_sum, wrong, seen = totals.tolist()
                if not math.isfinite(loss_sum):
                    raise Diverged(f"non-finite loss at step {global_step}")
                metrics = {
                    "train_loss": loss_sum / max(seen, 1),
                    "train_error": 100 * wrong / max(seen, 1),
                    "lr": schedule.lr,
                    "epoch": epoch + 1,
                    "epoch_seconds": train_seconds,
                    "images_per_s": seen / max(train_seconds, 1e-9),
                }
                if data.val is not None:
                    val = evaluate(model, data.val, autocast, world)
                    metrics.update({f"val_{k}": v for k, v in val.items()})
                last_epoch = epoch + 1 >= epochs or global_step >= max_steps
                if trainer["eval_test_every_epoch"] or last_epoch:
                    test = evaluate(model, data.test, autocast, world)
                    metrics.update({f"test_{k}": v for k, v in test.items()})
                monitored = metrics.get("val_top1_error", metrics["train_error"])
                best = min(best, monitored)
                schedule.epoch_end(monitored)
                if lead:
                    bars.end_epoch(epoch, {k: v for k, v in metrics.items() if k.endswith(("error", "loss"))})
                    if tracker and global_step > last_logged:
                        tracker.log_metrics(metrics, step=global_step)
                epoch, step_in_epoch, elapsed_before = epoch + 1, 0, 0.0
                partial.zero_()
                save_checkpoint(0.0)
                last_ckpt_time = time.monotonic()
    except Diverged as e:
        outcome = Outcome("diverged", detail=str(e))
    finally:
        for s, handler in old_handlers.items():
            signal.signal(s, handler)

    outcome.metrics = metrics
    outcome.epochs, outcome.steps = epoch, global_step
    if lead and tracker:
        summary = {f"final_{k}": v for k, v in metrics.items() if k.startswith(("test_", "val_"))}
        summary["best_monitored_error"] = best
        # A run killed after this point and resumed must not log the summary twice.
        if (
            outcome.status == "finished"
            and summary
            and tracker.last_step("best_monitored_error") < global_step
        ):
            tracker.log_metrics(summary, step=global_step)
        if (
            outcome.status == "finished"
            and ckpt_path.exists()
            and cfg["tracking"].get("log_checkpoint", True)
        ):
            tracker.log_file(ckpt_path, "checkpoint")
    return outcome
