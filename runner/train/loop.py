"""The training core: build the parts, then epochs of steps, each ended by evaluation and bookkeeping.

    build_parts → [resume] → Loop.run: while not done: train_one_epoch → end_epoch → log, checkpoint → summary

Runs in the Hydra job process for one device, or in each of N worker processes under DDP (runner/run/ddp.py).
Only rank 0 talks to MLflow and the console. The host syncs with the device only every `trainer.log_every`
steps: the metrics (runner/train/metrics.py) are summed on the device and read at those points.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from runner import console, env
from runner.data import Context, Data, build_data
from runner.models import build_for
from runner.models.dense import predict
from runner.models.layers import init_weights
from runner.tracking.store import RunLog
from runner.train import checkpoint
from runner.train import metrics as named_metrics
from runner.train.checkpoint import TrainState
from runner.train.device import pick_device
from runner.train.metrics import Sums, headline
from runner.train.optim import build_optimizer
from runner.train.schedule import Schedule, build_schedule
from runner.train.sync_bn import convert_sync_batchnorm


@dataclass
class JobInfo:
    """What the job process hands each training process (picklable for the DDP workers)."""

    config_hash: str
    ckpt_path: str
    cwd: str
    run_id: str | None = None  # MLflow run logged to by rank 0
    tracking_uri: str | None = None
    resume: bool = False  # a checkpoint at ckpt_path is to be continued
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


@dataclass
class Outcome:
    status: str  # finished | diverged | skipped
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    steps: int = 0
    detail: str = ""


class Diverged(Exception):
    """The loss became non-finite: a result of the run, not a crash."""


class Interrupted(Exception):
    """SIGINT/SIGTERM (or a scheduler's time-limit signal) arrived: a checkpoint was written, the run is to be
    marked KILLED."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)  # the process exits with 128 + signum, as the shell expects


_signals: list[int] = []
# What SLURM sends `--signal=<sig>@<seconds>` before a job's time limit (hydra/launcher=slurm: submitit's
# USR2; USR1 is the usual choice of hand-written sbatch scripts). runner/run/ddp.py requeues the job.
TIME_LIMIT_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def caught_signals() -> Iterator[None]:
    """SIGINT/SIGTERM and the time-limit signals are noted, not raised: the loop stops at its next check
    with a checkpoint."""
    _signals.clear()
    previous = {
        s: signal.signal(s, lambda signum, frame: _signals.append(signum))
        for s in (signal.SIGINT, signal.SIGTERM, *TIME_LIMIT_SIGNALS)
    }
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@dataclass
class Parts:
    """Everything one training process builds from the config."""

    data: Data
    model: nn.Module  # the bare model: checkpoints and evaluation
    net: nn.Module  # what a step calls: the model, wrapped by DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    device: torch.device
    autocast: Callable[[], Any]
    dense_test: bool  # VGG's dense evaluation of the test set (Simonyan & Zisserman, Sec. 3.2)
    steps_per_epoch: int
    max_steps: int
    epochs: int


def build_parts(cfg: dict[str, Any], job: JobInfo) -> Parts:
    trainer, world = cfg["trainer"], job.world_size
    device = pick_device(trainer, job.local_rank)
    if trainer["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg["seed"])  # same on every rank: identical initial weights
    context = Context(
        device, job.rank, world, trainer["batch_size"], cfg["seed"], trainer["channels_last"], Path(job.cwd)
    )
    data = build_data(cfg["dataset"], context)
    model = build_for(cfg, data.num_classes, data.in_channels, data.image_size)
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
    optimizer = build_optimizer(
        model, cfg["optim"], cfg["optim"]["lr"] * (world if trainer["scale_lr"] else 1)
    )
    steps_per_epoch = len(data.train)
    max_steps = trainer["max_steps"] or trainer["epochs"] * steps_per_epoch
    bf16 = trainer["precision"] == "bf16"
    return Parts(
        data=data,
        model=model,
        net=net,
        optimizer=optimizer,
        schedule=build_schedule(optimizer, cfg["schedule"], max_steps, cfg["model"]["name"]),
        device=device,
        autocast=lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
        dense_test=cfg["dataset"]["test_view"] == "dense",
        steps_per_epoch=steps_per_epoch,
        max_steps=max_steps,
        epochs=math.ceil(max_steps / steps_per_epoch),
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Any, autocast: Callable[[], Any], world_size: int, dense: bool = False
) -> dict[str, float]:
    """EVAL_METRICS over the whole set: each rank sums its shard, the sums are all-reduced."""
    model.eval()
    sums = Sums(named_metrics.EVAL_METRICS, next(model.parameters()).device)
    for x, y in loader.batches(0):
        with autocast():
            out = predict(model, x, dense)
        sums.add(out, y)
    model.train()
    return sums.rates(sums.read(world_size)[0])


@dataclass
class Interval:
    """The steps since the last host sync: img/s; the recent training error that ends ResNet-110's warm-up
    ("until the training error is below 80%", He et al. 2015, Sec. 4.2); the points of the curves at
    iteration resolution (`train_<metric>_interval`, the papers' training curves)."""

    start: float
    images: int = 0
    previous: dict[str, float] = field(default_factory=dict)  # the epoch's sums at the last sync

    def recent(self, sums: Sums, values: dict[str, float]) -> dict[str, float] | None:
        """The training metrics over the steps since the last sync (None when no image was seen)."""
        since = {k: v - self.previous.get(k, 0.0) for k, v in values.items()}
        return sums.rates(since) if since["images"] > 0 else None


@dataclass
class Loop:
    """One training process's run: its parts, state and sums, and the side channels (tracker, progress bars,
    checkpoints) called at three clear points: each host sync, each epoch's end, each checkpoint."""

    parts: Parts
    job: JobInfo
    trainer: dict[str, Any]
    sums: Sums
    state: TrainState
    tracker: RunLog | None  # rank 0's, None on the other ranks
    bars: Any = None  # console.TrainProgress
    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # points not yet logged

    def run(self, last_logged: int) -> Outcome:
        """Epochs until the budget or the schedule ends the run; a diverged loss ends it as a result."""
        parts, state, metrics = self.parts, self.state, {}
        try:
            while (
                state.epoch < parts.epochs and state.global_step < parts.max_steps and not parts.schedule.stop
            ):
                metrics = self.end_epoch(self.train_one_epoch())
                if self.job.rank == 0:
                    self.bars.end_epoch(state.epoch, headline(metrics))
                if self.tracker and state.global_step > last_logged:
                    self.tracker.log_metrics(metrics, step=state.global_step)
                state.epoch, state.step_in_epoch, state.epoch_seconds = state.epoch + 1, 0, 0.0
                self.sums.zero()
                self.save(0.0)
            outcome = Outcome("finished")
        except Diverged as e:
            outcome = Outcome("diverged", detail=str(e))
        outcome.metrics, outcome.epochs, outcome.steps = metrics, state.epoch, state.global_step
        return outcome

    def save(self, epoch_seconds: float) -> None:
        """Checkpoint, after logging the curve's points up to this step (a resumed run logs each point once)."""
        if self.tracker and self.curve:
            self.tracker.log_series(self.curve)
        self.curve.clear()
        if self.job.rank == 0:
            state, parts = self.state, self.parts
            state.epoch_seconds, state.sums = epoch_seconds, self.sums.state_dict()
            args = (
                self.job.config_hash,
                self.job.run_id or "",
                parts.model,
                parts.optimizer,
                parts.schedule,
                state,
            )
            checkpoint.save(Path(self.job.ckpt_path), checkpoint.snapshot(*args))

    def host_sync(self, interval: Interval) -> tuple[float | None, bool]:
        """The loop's one host sync per interval, all ranks together: the divergence check, progress, a point
        of the curves, and whether any rank caught a signal. Returns the interval's training error (%) and
        that flag."""
        state, sums = self.state, self.sums
        values, (signalled,) = sums.read(self.job.world_size, extra=[float(bool(_signals))])
        if not math.isfinite(values["loss"]):
            raise Diverged(f"non-finite loss at step {state.global_step}")
        now = time.perf_counter()
        images_per_s = interval.images * self.job.world_size / max(now - interval.start, 1e-9)
        loss = values["loss"] / max(values["images"], 1.0)
        self.bars.steps(state.step_in_epoch, loss, self.parts.schedule.lr, images_per_s)
        recent = interval.recent(sums, values)
        interval.start, interval.images, interval.previous = now, 0, values
        if recent is None:
            return None, bool(signalled)
        self.curve.append((state.global_step, {f"train_{k}_interval": v for k, v in recent.items()}))
        return recent["error"], bool(signalled)

    def train_one_epoch(self) -> float:
        """Steps from `state.step_in_epoch` to the end of the epoch (or of the run); returns its training
        seconds. Single process: a signal is acted on at the next step. DDP: only at host syncs, where every
        rank takes part in the same all-reduce and so stops at the same step."""
        parts, state, single = self.parts, self.state, self.job.world_size == 1
        parts.net.train()
        self.bars.start_epoch(state.epoch, state.step_in_epoch)
        t0 = time.perf_counter()
        # A resumed epoch starts from the checkpoint's sums: its first interval counts only the new steps.
        interval = Interval(t0, previous=dict(state.sums) if state.step_in_epoch else {})
        ckpt_every, last_ckpt = (self.trainer["ckpt_minutes"] or math.inf) * 60, time.monotonic()
        for x, y in parts.data.train.batches(state.epoch, state.step_in_epoch):
            if state.global_step >= parts.max_steps:
                break
            with parts.autocast():
                out = parts.net(x)
                loss = F.cross_entropy(out, y)
            parts.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            parts.optimizer.step()
            self.sums.add(out, y)
            state.step_in_epoch, state.global_step = state.step_in_epoch + 1, state.global_step + 1
            interval.images += len(y)
            if state.global_step % self.trainer["log_every"] == 0 or (single and _signals):
                recent_error, signalled = self.host_sync(interval)
                if signalled:
                    self.stop(state.epoch_seconds + time.perf_counter() - t0)
                parts.schedule.iteration(state.global_step, recent_error)
            else:
                parts.schedule.iteration(state.global_step)
            if time.monotonic() - last_ckpt > ckpt_every:
                self.save(state.epoch_seconds + time.perf_counter() - t0)
                last_ckpt = time.monotonic()
        return state.epoch_seconds + time.perf_counter() - t0

    def stop(self, epoch_seconds: float) -> None:
        """A signal arrived: checkpoint, then raise Interrupted (the job marks the run and exits)."""
        self.save(epoch_seconds)
        signum = _signals[0] if _signals else signal.SIGTERM
        raise Interrupted(
            f"stopped by {signal.Signals(signum).name} at step {self.state.global_step}", signum
        )

    def end_epoch(self, seconds: float) -> dict[str, float]:
        """The epoch's metrics: training sums over all ranks, validation, test (every epoch or the last), and
        the schedule's end-of-epoch decision on the monitored error."""
        parts, state, world = self.parts, self.state, self.job.world_size
        totals = self.sums.read(world)[0]
        if not math.isfinite(totals["loss"]):
            raise Diverged(f"non-finite loss at step {state.global_step}")
        metrics = {f"train_{k}": v for k, v in self.sums.rates(totals).items()}
        metrics.update(
            lr=parts.schedule.lr,
            epoch=state.epoch + 1,
            epoch_seconds=seconds,
            images_per_s=totals["images"] / max(seconds, 1e-9),
        )
        if parts.data.val is not None:
            val = evaluate(parts.model, parts.data.val, parts.autocast, world)
            metrics.update({f"val_{k}": v for k, v in val.items()})
        monitored = metrics["val_top1_error"] if parts.data.val is not None else metrics["train_error"]
        state.best = min(state.best, monitored)
        parts.schedule.epoch_end(monitored)  # first: a plateau after the last drop makes this the last epoch
        last = state.epoch + 1 >= parts.epochs or state.global_step >= parts.max_steps or parts.schedule.stop
        if self.trainer["eval_test_every_epoch"] or last:
            test = evaluate(parts.model, parts.data.test, parts.autocast, world, parts.dense_test)
            metrics.update({f"test_{k}": v for k, v in test.items()})
        return metrics


def resume(parts: Parts, job: JobInfo, sums: Sums) -> TrainState:
    """Model, optimiser, schedule, sums and RNG from the job's checkpoint; its TrainState."""
    saved = checkpoint.load(Path(job.ckpt_path), job.config_hash)
    try:
        parts.model.load_state_dict(saved["model"])
        parts.optimizer.load_state_dict(saved["optimizer"])
        parts.schedule.load_state_dict(saved["schedule"])
        state = checkpoint.train_state(saved)
        sums.load_state_dict(state.sums)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:  # the hash matched, the contents do not
        raise checkpoint.CheckpointError(
            f"checkpoint {job.ckpt_path} does not fit this model ({str(e).strip().splitlines()[0]})"
        ) from None
    if job.rank != 0:
        sums.zero()  # rank 0 saved the sums of all ranks: count them once
    checkpoint.set_rng_state(saved["rng"])
    # The next step's lr, as the schedule sets it after each step: a checkpoint taken at a signal precedes
    # that call, and loading a state re-applies base × factor (not a warm-up's lr).
    parts.schedule.iteration(state.global_step)
    return state


def inject_fault_for_tests(optimizer: torch.optim.Optimizer, rank: int, done_steps: int) -> None:
    """Test-only (env.FAULT = "<rank>:<step>"): that rank raises right after that optimizer step. A hook on
    the optimiser, so the loop itself carries no test code."""
    spec = os.environ.get(env.FAULT)
    if not spec:
        return
    fault_rank, fault_step = (int(v) for v in spec.split(":"))
    if fault_rank != rank:
        return
    steps = [done_steps]

    def after_step(opt: Any, args: Any, kwargs: Any) -> None:
        steps[0] += 1
        if steps[0] == fault_step:
            raise RuntimeError(f"injected fault on rank {rank} at step {fault_step}")

    optimizer.register_step_post_hook(after_step)


def model_summary(model: nn.Module, multiply_adds: str = "") -> str:
    total = sum(p.numel() for p in model.parameters())
    lines = [f"parameters: {total:,}", *([multiply_adds] if multiply_adds else []), ""]
    for name, child in model.named_children():
        lines.append(f"{name:<12} {sum(p.numel() for p in child.parameters()):>14,}")
    return "\n".join(lines + ["", str(model)])


def describe_run(tracker: RunLog, cfg: dict[str, Any], parts: Parts, job: JobInfo) -> None:
    """Once per new run (rank 0): the model's summary, size and multiply-adds, and the data set it trains on."""
    from runner.train.flops import describe, run_multiply_adds

    try:  # on the meta device, at the data set's training input size
        macs: int | str = run_multiply_adds(cfg)
        summary = describe(int(macs), parts.data.in_channels, parts.data.image_size)
    except (RuntimeError, NotImplementedError) as e:  # a model whose forward needs real values: train anyway
        macs, summary = "unknown", f"multiply-adds: unknown ({type(e).__name__} on the meta device)"
    tracker.log_text(model_summary(parts.model, summary), "model_summary.txt")
    parameters = sum(p.numel() for p in parts.model.parameters())
    tags = {
        "runner.parameters": parameters,
        "runner.world_size": job.world_size,
        "runner.multiply_adds": macs,
    }
    tracker.set_tags(tags)
    if parts.data.provenance is not None:
        tracker.log_dataset(cfg["dataset"]["name"], parts.data.provenance)


def open_tracker(cfg: dict[str, Any], job: JobInfo) -> RunLog | None:
    """Rank 0's handle on the job's MLflow run (None on the other ranks, or without a run)."""
    if job.rank != 0 or not job.run_id:
        return None
    from runner.tracking.helper import connect

    tracker = connect(job.tracking_uri, None, cfg["tracking"]["retry_seconds"])
    tracker.run_id = job.run_id
    return tracker


def train(cfg: dict[str, Any], job: JobInfo) -> Outcome:
    """Train one job to its end (or divergence); raises Interrupted on a signal, after a checkpoint."""
    parts = build_parts(cfg, job)
    tracker = open_tracker(cfg, job)
    sums = Sums(named_metrics.TRAIN_METRICS, parts.device)
    state = resume(parts, job, sums) if job.resume else TrainState()
    inject_fault_for_tests(parts.optimizer, job.rank, state.global_step)
    last_logged = tracker.last_step("train_loss") if (tracker and job.resume) else -1
    if tracker and not job.resume:
        describe_run(tracker, cfg, parts, job)
    loop = Loop(parts, job, cfg["trainer"], sums, state, tracker)
    shown = job.rank == 0 and cfg["trainer"]["progress"]
    with (
        caught_signals(),
        console.TrainProgress(parts.epochs, parts.steps_per_epoch, enabled=shown) as loop.bars,
    ):
        outcome = loop.run(last_logged)
    if tracker and outcome.status == "finished":
        log_summary(tracker, cfg, outcome, state.best, Path(job.ckpt_path))
    return outcome


def log_summary(tracker: RunLog, cfg: dict[str, Any], outcome: Outcome, best: float, ckpt_path: Path) -> None:
    """final_* metrics and the last checkpoint on the run, once (a run killed here and resumed skips it)."""
    summary = {f"final_{k}": v for k, v in outcome.metrics.items() if k.startswith(("test_", "val_"))}
    summary["best_monitored_error"] = best
    if tracker.last_step("best_monitored_error") < outcome.steps:
        tracker.log_metrics(summary, step=outcome.steps)
    if cfg["tracking"]["log_checkpoint"] and ckpt_path.exists():
        tracker.log_file(ckpt_path, "checkpoint")
