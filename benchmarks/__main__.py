"""`make bench`: the runner's real training path against a bare PyTorch loop, in one process, paired.

    python -m benchmarks               # CPU: ResNet-20 on Fashion-MNIST (the default config); GPU: the GPU table
    python -m benchmarks --quick       # fewer steps and repeats (checks that it runs; not a measurement)
    python -m benchmarks --repeats 11 --steps 120 --cases resnet20_fmnist   # fixed: 12 windows of 10 steps

What is compared:
  runner  `runner.train.loop.train(cfg, JobInfo)` on a config composed from conf/ (Hydra compose API), logging to
          a temporary MLflow sqlite store: its model builder and init, its resident data path with the
          configured augmentation, its loop, its host syncs, its progress bars (drawn into a buffer, so their
          cost counts even when this output is piped). Evaluation and checkpoints after the last step are
          not timed.
  bare    the same model (same builder, init, memory format, precision), plain torch.optim.SGD, batches already
          on the device: pre-augmented, normalised tensors taken from the runner's loader before timing. No
          logging, no loss accumulation. So the runner's on-device augmentation counts as its overhead.

How (a measuring instrument for a 2 % gap on a shared 2-core machine, where other processes come and go on
a scale of seconds and made the old one-rate-per-run ratio swing from 0.875 to 1.002):
  - Paired windows. The runner's loop syncs the host every `window` steps (its trainer.log_every); at each of
    those log points the bare loop runs `window` steps of its own, then hands back. So the timeline is
    bare, runner, bare, runner, ..., bare: each runner window is bracketed by two bare windows, seconds
    apart, and its ratio is taken against their mean (a load that drifts across the three cancels to first
    order, and the bare side's jitter is averaged over two windows). A repeat's ratio is the median over its
    pairs (a burst of load spoils a pair or two, not the median). A runner window runs from the moment the
    loop gets control back to its next log point, progress bar included, so every cost of the runner's loop
    is inside it.
  - The load of other processes is read (psutil) during each repeat (the machine's busy CPU time less
    this process's, in cores) and printed beside the ratio: a spread that comes with a load says why.
  - Windows sized by time, not by steps: before the repeats the bare loop's seconds per step are measured,
    and each window gets the steps that last ~0.4 s on this machine (--window-seconds: 1 step on a 2-core
    EPYC, 2 on the Xeon), 56 timed a repeat. Short windows because the machine's own speed drifts over
    seconds (one 1.7 s window to the next: ±15 % with no other process running): bracketing cancels a drift
    only when the three windows are close in time, and a 1-step pair scatters no more than a 4-step one did
    (7–9 % vs 5–12 %, 2026-12-07), so 56 short pairs pin a repeat's median about twice as well as 12 long
    ones in the same time. The same method then takes about the same time on a slow CPU as on a fast one.
  - Warm-up excluded: the first ~2 s of steps of each repeat (allocator, caches, lazy init) on both sides.
  - 9 repeats on the CPU by default (the fewest an IQR is read from), each a fresh train() call (fresh model, data, MLflow run) and a
    fresh bare model: what varies between runs (memory layout, init) is sampled, not just the load.
  - Threads pinned: torch uses a fixed number of threads (the cores this process may run on, or --threads),
    the same for both sides. The garbage collector is off inside each timed repeat (collected before), so a
    collection pause cannot land in one side's window only.
  - The spread judged is the interquartile range of the per-repeat ratios (with ≥ 9 repeats); max − min is
    printed beside it. Both are in ratio units (0.02 = 2 %).
A case that compares the runner with itself on another case (the JPEG folder against resident tensors)
alternates whole runs in ABBA order instead, each run's rate the median over its windows.

Also measured: time from `runner` process start to the end of training step 1 (the real CLI in a subprocess,
no compile), and the projected wall time of the ResNet CIFAR protocol (ResNet-20, 64k steps of batch 128).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from runner import console as runner_console
from runner.config.identity import config_hash
from runner.data import Context, build_data
from runner.models import build_model
from runner.models.layers import init_weights, make_act
from runner.tracking.store import Tracker
from runner.train.loop import JobInfo, train

REPO = Path(__file__).resolve().parent.parent
PROTOCOL_STEPS, PROTOCOL_BATCH = 64_000, 128  # He et al. 2015, Sec. 4.2: 64k iterations of batch 128
out = Console(highlight=False, soft_wrap=True)  # a repeat's line stays one line in a log


@dataclass
class Case:
    name: str
    overrides: list[str]  # Hydra overrides on conf/config.yaml
    warm: int  # steps not timed at the start of each repeat (a multiple of the window)
    steps: int  # timed steps (a multiple of the window)
    batch: int
    compare: str = "bare"  # bare: against the bare loop | <case name>: runner against runner on that case
    note: str = ""
    window: int = 0  # steps per timed window: the runner's log_every (its host-sync interval); 0: warm // 2
    window_s: float = (
        0.0  # > 0: window, warm and steps sized on this machine so a window lasts about this long
    )
    step_s: float | None = None  # the bare loop's seconds per step, measured to size the windows
    runner: list[float] = field(default_factory=list)  # img/s per repeat (median over its windows)
    other: list[float] = field(default_factory=list)
    paired: list[float] = field(default_factory=list)  # per repeat: median of the per-window ratios
    data_ms: float | None = None  # the runner's data path alone, ms per batch
    load: list[float] = field(default_factory=list)  # per repeat: cores busy with other processes

    def __post_init__(self) -> None:
        self.window = self.window or max(1, self.warm // 2)

    def ratios(self) -> list[float]:
        return self.paired or [r / o for r, o in zip(self.runner, self.other, strict=False)]


# --- config -----------------------------------------------------------------------------------------------
def compose(overrides: list[str]) -> dict[str, Any]:
    from runner.config.compose import compose as runner_compose

    return runner_compose(overrides)


def case_config(case: Case, tmp: Path) -> dict[str, Any]:
    """The case's overrides plus a budget: one epoch of exactly warm + steps batches, a tiny test set."""
    images = (case.warm + case.steps) * case.batch
    sized = [f"dataset.subset={images}", "dataset.val_split=0"]
    if any(o == "dataset=synthetic" for o in case.overrides):
        sized = [f"dataset.train_size={images}", "dataset.test_size=256", "dataset.val_split=0"]
    return compose(
        [
            *case.overrides,
            *sized,
            "dataset.test_subset=256",
            f"trainer.batch_size={case.batch}",
            f"trainer.max_steps={case.warm + case.steps}",
            f"trainer.log_every={case.window}",
            "trainer.progress=true",
            f"trainer.ckpt_dir={tmp / 'checkpoints'}",
            f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
            f"tracking.artifact_root={tmp / 'mlartifacts'}",
            "tracking.experiment=bench",
        ]
    )


# --- the runner's side: train() with its log points timed ------------------------------------------------
class _Tty(io.TextIOBase):
    """stdout that says it is a terminal: TrainProgress then draws its bars (into the buffer console)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return self.inner.write(s)

    def flush(self) -> None:
        self.inner.flush()


class Windows:
    """The seconds of each timed window: the runner's (log point to log point, measured from the moment its
    loop got control back) and, when paired, the bare loop's, run at each log point."""

    def __init__(self, window: int, bare: BareLoop | None) -> None:
        self.window, self.bare = window, bare
        self.runner: list[float] = []  # runner[k]: the window that ends at log point k + 1
        self.other: list[float] = []  # other[k]: the bare window run at log point k
        self.resumed: float | None = None
        self.epoch = -1

    def log_point(self, epoch: int) -> None:
        now = time.perf_counter()
        if self.resumed is not None and epoch == self.epoch:
            self.runner.append(now - self.resumed)
        elif self.resumed is not None:  # a new epoch: the window held its evaluation; not a training window
            self.runner.append(math.nan)
        self.epoch = epoch
        if self.bare is not None:
            self.other.append(self.bare.window(self.window))
        self.resumed = time.perf_counter()

    def timed(self, warm: int) -> tuple[list[float], list[float]]:
        """(runner seconds, bare seconds) of the pairs after the warm-up; bare empty when not paired. Runner
        window k ran between bare windows k and k + 1: its bare time is their mean."""
        skip = max(0, warm // self.window - 1)  # runner[0] ends at step 2 × window
        keep = [k for k in range(skip, len(self.runner)) if not math.isnan(self.runner[k])]
        bare = [(self.other[k] + self.other[k + 1]) / 2 for k in keep] if self.bare else []
        return [self.runner[k] for k in keep], bare


WINDOWS: Windows | None = None  # the recorder of the runner_rate call in progress


class TimedProgress(runner_console.TrainProgress):
    """The runner's progress bars; after each log point's drawing, WINDOWS records it (and runs the bare side)."""

    epoch = 0

    def start_epoch(self, epoch: int, step_in_epoch: int) -> None:
        self.epoch = epoch
        super().start_epoch(epoch, step_in_epoch)

    def steps(self, completed: int, loss: float, lr: float, images_per_s: float) -> None:
        super().steps(completed, loss, lr, images_per_s)
        if WINDOWS is not None:
            WINDOWS.log_point(self.epoch)


@contextlib.contextmanager
def offscreen_progress() -> Iterator[None]:
    saved = runner_console.console, runner_console.TrainProgress, sys.stdout
    runner_console.console = Console(file=io.StringIO(), force_terminal=True, width=120)
    runner_console.TrainProgress = TimedProgress  # type: ignore[misc]
    sys.stdout = _Tty(sys.stdout)
    try:
        yield
    finally:
        runner_console.console, runner_console.TrainProgress, sys.stdout = saved


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """The garbage collector off while timing (collected first): its pauses would hit one side only."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


BUSY = ("user", "nice", "system", "irq", "softirq", "steal")  # steal: a hypervisor's other guests


def busy_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process) so far, from psutil (the
    fields this platform has; guest time is inside user and nice already)."""
    machine, own = psutil.cpu_times(), psutil.Process().cpu_times()
    return sum(getattr(machine, f, 0.0) for f in BUSY), own.user + own.system


def other_cores(before: tuple[float, float], after: tuple[float, float], seconds: float) -> float:
    """Cores kept busy by other processes between two busy_seconds() readings `seconds` apart."""
    machine, own = after[0] - before[0], after[1] - before[1]
    return max(0.0, machine - own) / seconds


@contextlib.contextmanager
def other_load(into: list[float]) -> Iterator[None]:
    """Appends to `into` the cores other processes used while the block ran."""
    before, t0 = busy_seconds(), time.perf_counter()
    yield
    into.append(other_cores(before, busy_seconds(), time.perf_counter() - t0))


class Store:
    """One temporary MLflow sqlite store for all runner repeats (created once: its migrations take seconds)."""

    def __init__(self, tmp: Path) -> None:
        self.uri = f"sqlite:///{tmp / 'mlflow.db'}"
        self.tracker = Tracker(self.uri, str(tmp / "mlartifacts"))
        self.experiment = self.tracker.experiment_id("bench")


def runner_windows(
    case: Case, cfg: dict[str, Any], store: Store, tmp: Path, repeat: int, bare: BareLoop | None
) -> tuple[list[float], list[float]]:
    """One train() run of the case; the seconds of its timed windows (and of the paired bare windows)."""
    global WINDOWS
    run_id = store.tracker.start(store.experiment, f"{case.name}-{repeat}", {"bench": case.name})
    job = JobInfo(
        config_hash=config_hash(cfg),
        ckpt_path=str(tmp / "checkpoints" / f"{case.name}-{repeat}.pt"),
        cwd=str(REPO),  # ./data is looked for here, as `make run` would
        run_id=run_id,
        tracking_uri=store.uri,
    )
    WINDOWS = Windows(case.window, bare)
    try:
        with offscreen_progress(), quiet_gc():
            outcome = train(cfg, job)
    finally:
        windows, WINDOWS = WINDOWS, None
    store.tracker.end("FINISHED")
    if outcome.status != "finished":
        raise RuntimeError(f"{case.name}: the runner's run ended {outcome.status}: {outcome.detail}")
    runner, other = windows.timed(case.warm)
    if not runner:
        raise RuntimeError(f"{case.name}: no timed window: raise --steps")
    return runner, other


# --- the bare side ------------------------------------------------------------------------------------------
def device_of(cfg: dict[str, Any]) -> torch.device:
    return torch.device(
        "cuda" if torch.cuda.is_available() and cfg["trainer"]["accelerator"] != "cpu" else "cpu"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resident_batches(
    cfg: dict[str, Any], count: int
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], Any, float]:
    """`count` batches from the runner's own training loader, materialised; and its time per batch (ms)."""
    trainer, device = cfg["trainer"], device_of(cfg)
    ctx = Context(device, 0, 1, trainer["batch_size"], cfg["seed"], trainer["channels_last"], REPO)
    data = build_data(cfg["dataset"], ctx)
    batches = []
    it = data.train.batches(0)
    for _ in range(min(3, len(data.train))):  # warm-up of the loader itself
        next(it)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(count):
        batches.append(next(it))
    sync(device)
    return batches, data, 1000 * (time.perf_counter() - t0) / count


class BareLoop:
    """A plain PyTorch loop over tensors already on the device, run one window at a time; the device is
    synchronised at both ends of each window."""

    def __init__(
        self, cfg: dict[str, Any], batches: list[tuple[torch.Tensor, torch.Tensor]], data: Any
    ) -> None:
        trainer, self.device = cfg["trainer"], device_of(cfg)
        torch.manual_seed(cfg["seed"])
        model = build_model(cfg["model"], num_classes=data.num_classes, in_channels=data.in_channels,
                            image_size=data.image_size, act=make_act(cfg["act"]))  # fmt: skip
        init_weights(model, cfg["init"], cfg["act"])
        fmt = torch.channels_last if trainer["channels_last"] else torch.preserve_format
        model = model.to(self.device, memory_format=fmt).train()
        self.net = torch.compile(model) if trainer["compile"] else model
        optim = cfg["optim"]
        self.opt = torch.optim.SGD(model.parameters(), lr=optim["lr"], momentum=optim["momentum"],
                                   weight_decay=optim["weight_decay"])  # fmt: skip
        self.bf16 = trainer["precision"] == "bf16"
        self.batches, self.i = batches, 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = F.cross_entropy(self.net(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def window(self, steps: int) -> float:
        """Seconds for `steps` steps."""
        sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step(*self.batches[self.i % len(self.batches)])
            self.i += 1
        sync(self.device)
        return time.perf_counter() - t0


def seconds_per_step(window: Callable[[int], float], at_least: float = 1.0) -> float:
    """A loop's seconds per step from `window(steps)` (its seconds for that many steps): two steps of warm-up,
    then windows of doubling length until one lasts `at_least` seconds (a timer's and a step's jitter small)."""
    window(2)
    steps = 2
    while (seconds := window(steps)) < at_least:
        steps *= 2
    return seconds / steps


def sized_by_time(case: Case, step_s: float) -> None:
    """Keep the case's windows (timed and warm-up) and size each to last about `case.window_s` at `step_s` a
    step: the same method on a machine of any speed, in about the same time (a fixed 10 steps took 1.7 s a
    window on the Xeon the method was tuned on, 3.2 s on a 2-core EPYC, where `make bench` ran past 25 min).
    The warm-up lasts at least WARM_SECONDS, whatever the window."""
    timed, warm = case.steps // case.window, max(1, case.warm // case.window)
    case.window = max(1, round(case.window_s / step_s))
    warm = max(warm, math.ceil(WARM_SECONDS / (case.window * step_s)))
    case.steps, case.warm, case.step_s = timed * case.window, warm * case.window, step_s


def measure_paired(case: Case, store: Store, tmp: Path, repeats: int) -> None:
    """Runner against bare: each repeat one train() run with the bare loop's windows between its own."""
    cfg = case_config(case, tmp)
    batches, data, case.data_ms = resident_batches(cfg, min(case.steps, 32))
    if case.window_s:  # the bare loop of this machine sizes the windows, then the config is composed again
        sized_by_time(case, seconds_per_step(BareLoop(cfg, batches, data).window))
        cfg = case_config(case, tmp)
    for r in range(repeats):
        with other_load(case.load):
            runner, bare = runner_windows(case, cfg, store, tmp, r, BareLoop(cfg, batches, data))
        images = case.window * case.batch
        case.runner.append(statistics.median(images / t for t in runner))
        case.other.append(statistics.median(images / t for t in bare))
        case.paired.append(statistics.median(b / t for t, b in zip(runner, bare, strict=True)))
        report_repeat(case, r, repeats, len(runner))


def measure_runs(case: Case, base: Case, store: Store, tmp: Path, repeats: int) -> None:
    """Runner against runner on another case: whole runs alternated in ABBA order."""
    cfg, base_cfg = case_config(case, tmp), case_config(base, tmp)
    images = case.window * case.batch

    def mine(r: int) -> None:
        case.runner.append(
            statistics.median(images / t for t in runner_windows(case, cfg, store, tmp, r, None)[0])
        )

    def theirs(r: int) -> None:
        windows = runner_windows(base, base_cfg, store, tmp, 100 + r, None)[0]
        case.other.append(statistics.median(base.window * base.batch / t for t in windows))

    for r in range(repeats):
        with other_load(case.load):
            for run in (mine, theirs) if r % 2 == 0 else (theirs, mine):
                run(r)
        report_repeat(case, r, repeats, case.steps // case.window)


def report_repeat(case: Case, r: int, repeats: int, windows: int) -> None:
    load = f", other processes {case.load[-1]:.2f} cores" if case.load else ""
    out.print(f"  {case.name} repeat {r + 1}/{repeats}: runner {case.runner[-1]:,.0f} img/s, "
              f"{case.compare} {case.other[-1]:,.0f} img/s, ratio {case.ratios()[-1]:.3f} "
              f"({windows} windows of {case.window} steps{load})")  # fmt: skip


def spread(ratios: list[float]) -> tuple[float, float]:
    """(interquartile range, max − min) of the per-repeat ratios; the IQR is the range below 4 repeats."""
    full = max(ratios) - min(ratios)
    if len(ratios) < 4:
        return full, full
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q3 - q1, full


# --- cases ----------------------------------------------------------------------------------------------
WINDOW_SECONDS = 0.4  # a timed window's length on any CPU: 1 step of the 2-core EPYC, 2 of the Xeon
WARM_SECONDS = 2.0  # untimed steps at the start of each repeat, on both sides
TIMED_WINDOWS = 56  # a repeat's timed pairs when the windows are sized by time


def cpu_cases(quick: bool, steps: int | None, window_s: float = WINDOW_SECONDS) -> list[Case]:
    timed = window_s if steps is None and not quick else 0.0
    n = steps or (20 if quick else 10 * TIMED_WINDOWS if timed else 120)
    # ResNet-20 at the paper's width 16 on Fashion-MNIST (crop+flip, batch 128, channels_last, fp32): the
    # paper's net and augmentation, as in runs 1-9 of README, not the default run's (width 8, no augmentation).
    # Sized by time: TIMED_WINDOWS windows of ~WINDOW_SECONDS (the module's docstring says why short ones);
    # 12 windows of ~1.7 s left repeats 0.95–1.03 apart on the EPYC (IQR 0.039, 2026-12-07). --steps (or
    # --quick) fixes the steps instead: 10 a window, n timed.
    paper = ["trainer.accelerator=cpu", "model.width=16", "dataset.augment=[crop,flip]"]
    return [Case("resnet20_fmnist", paper, warm=20, steps=n, batch=128, window=10, window_s=timed,
                 note="ResNet-20, width 16, crop + flip")]  # fmt: skip


def gpu_cases(quick: bool, steps: int | None, tmp: Path) -> list[Case]:
    n = steps or (100 if quick else 200)
    cifar = ["dataset=synthetic", "dataset.image_size=32", "dataset.in_channels=3", "dataset.num_classes=10"]
    fp32 = ["trainer.precision=fp32", "trainer.channels_last=false"]
    bf16 = ["trainer.precision=bf16", "trainer.channels_last=true"]
    inet = ["dataset.image_size=224", "dataset.in_channels=3", "dataset.num_classes=8", "model=resnet50"]
    r50 = 40 if quick else 60  # 224² uint8 resident on the device: (20 + 60) × 256 images = 3 GB
    cases = [
        Case("resnet20_cifar_b128", ["model=resnet20", *cifar], 50, n, 128, note="default trainer; protocol"),
        Case("resnet56_b128_fp32", ["model=resnet56", *cifar, *fp32], 50, n, 128),
        Case("resnet56_b128_bf16_cl", ["model=resnet56", *cifar, *bf16], 50, n, 128),
        Case("resnet56_b512_fp32", ["model=resnet56", *cifar, *fp32], 50, n, 512),
        Case("resnet56_b512_bf16_cl", ["model=resnet56", *cifar, *bf16], 50, n, 512),
        Case("resnet50_b256_bf16_cl", ["dataset=synthetic", *inet, *bf16], 20, r50, 256),
        Case(
            "resnet50_b256_bf16_cl_compile",
            ["dataset=synthetic", *inet, *bf16, "trainer.compile=true"],
            20,
            r50,
            256,
        ),  # fmt: skip
    ]
    # ImageFolder of JPEGs (DataLoader workers, PIL) against the same model on resident tensors.
    jpeg_steps = 20 if quick else 30
    root = tmp / "imagenet"
    folder = ["dataset=imagenet", f"dataset.root={root}", "model=resnet50", *bf16]
    resident = ["dataset=synthetic", *inet, *bf16]
    cases += [
        Case("resnet50_b256_resident", resident, 10, jpeg_steps, 256, note="runner on resident tensors"),
        Case(
            "resnet50_b256_jpeg",
            folder,
            10,
            jpeg_steps,
            256,
            compare="resnet50_b256_resident",
            note="ratio: JPEG folder / resident",
        ),  # fmt: skip
    ]
    return cases


def make_jpegs(root: Path, images: int, procs: int) -> None:
    """benchmarks/bench_data.make_folder in parallel: `procs` parts, merged into one ImageFolder tree."""
    from concurrent.futures import ProcessPoolExecutor

    from benchmarks.bench_data import make_folder

    parts = [root.parent / f"part{k}" for k in range(procs)]
    with ProcessPoolExecutor(procs) as pool:
        list(pool.map(make_folder, parts, [-(-images // procs)] * procs))
    for k, part in enumerate(parts):
        for path in part.rglob("*.JPEG"):
            split = path.parent.parent.name
            if split == "val" and k > 0:
                continue
            target = root / split / path.parent.name / f"{k}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)


# --- time to first step ---------------------------------------------------------------------------------
# The real CLI (`runner.cli.main:run`, the console script), plus one global optimizer hook (a public torch API)
# that writes the time of step 1's end. The hook is registered when the runner itself imports
# torch.optim.optimizer: importing torch here first would move torch's import ahead of the MLflow helper's
# start, which is not what the command does.
BOOT = """
import importlib.abc, importlib.util, os, sys, time
def first(opt, args, kwargs):
    with open(os.environ["BENCH_STEP1"], "w") as f:
        f.write(repr(time.time()))
    handle.remove()
class HookOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch.optim.optimizer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module
        def exec_module(module):
            global handle
            run_module(module)
            handle = module.register_optimizer_step_post_hook(first)
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, HookOnImport())
sys.argv = ["runner", *sys.argv[1:]]
from runner.cli.main import run
sys.exit(run())
"""


def time_to_first_step(tmp: Path, tag: str) -> tuple[float, float]:
    """(seconds from process start to the end of step 1, seconds to exit) of a tiny `runner` run."""
    mark = tmp / f"step1-{tag}"
    overrides = [
        "trainer.max_steps=1", "dataset.subset=1024", "dataset.val_split=0", "dataset.test_subset=256",
        "trainer.compile=false", "resume=never", f"trainer.ckpt_dir={tmp / 'ttfs-checkpoints'}",
        f"tracking.uri=sqlite:///{tmp / 'ttfs.db'}", f"tracking.artifact_root={tmp / 'ttfs-artifacts'}",
        f"hydra.run.dir={tmp / 'outputs' / tag}",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_STEP1": str(mark)}
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", BOOT, *overrides], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    end = time.time()
    if proc.returncode != 0 or not mark.exists():
        raise RuntimeError(f"runner exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return float(mark.read_text()) - start, end - start


# --- main -----------------------------------------------------------------------------------------------
def fmt_h(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer timed steps and repeats")
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats per case (CPU 9, quick 3; GPU 5, quick 2)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per repeat, windows of 10 (default: sized by time)",
    )
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=WINDOW_SECONDS,
        help=f"CPU: each timed window lasts about this long on this machine (default {WINDOW_SECONDS})",
    )
    parser.add_argument(
        "--cases", default="", help="comma-separated case names (default: all for the device)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the usable cores)")
    parser.add_argument("--no-ttfs", action="store_true", help="skip the time-to-first-step subprocess runs")
    return parser.parse_args()


def result_row(case: Case, device: str, threads: int) -> dict[str, Any]:
    iqr, full = spread(case.ratios())
    return {
        "case": case.name,
        "device": device,
        "runner_img_s": round(statistics.median(case.runner), 1),
        "bare_img_s" if case.compare == "bare" else f"{case.compare}_img_s": round(
            statistics.median(case.other), 1
        ),
        "ratio": round(statistics.median(case.ratios()), 4),
        "spread_iqr": round(iqr, 4),
        "spread_range": round(full, 4),
        "ratios": [round(x, 4) for x in case.ratios()],
        "repeats": len(case.ratios()),
        "method": "bracketed windows" if case.compare == "bare" else "ABBA runs",
        "window_steps": case.window,
        "batch": case.batch,
        "timed_steps": case.steps,
        "window_s_target": case.window_s
        or None,  # windows sized by time: the target, and the step it measured
        "bare_step_s": None if case.step_s is None else round(case.step_s, 4),
        "threads": threads,
        "data_ms_per_batch": None if case.data_ms is None else round(case.data_ms, 2),
        "other_cores_mean": round(statistics.fmean(case.load), 3) if case.load else None,
        "other_cores_max": round(max(case.load), 3) if case.load else None,
    }


def print_table(cases: list[Case], results: list[dict[str, Any]], device: str) -> None:
    table = Table(title=f"runner vs bare PyTorch — {device}")
    columns = ("case", "runner img/s", "baseline img/s", "ratio (median)", "spread (IQR)", "max − min", "ratios",
               "data ms/batch", "note")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col in ("case", "ratios", "note") else "right")
    for case, row in zip(cases, results, strict=True):
        baseline = f"{statistics.median(case.other):,.0f}" + (
            "" if case.compare == "bare" else f" ({case.compare})"
        )
        table.add_row(case.name, f"{row['runner_img_s']:,.0f}", baseline, f"{row['ratio']:.3f}",
                      f"{row['spread_iqr']:.3f}", f"{row['spread_range']:.3f}",
                      " ".join(f"{x:.3f}" for x in sorted(row["ratios"])),
                      "" if case.data_ms is None else f"{case.data_ms:.1f}", case.note)  # fmt: skip
    out.print(table)


def extras(cases: list[Case], tmp: Path, ttfs: bool) -> list[dict[str, Any]]:
    """The protocol projection and the time to first step (printed here, returned as JSON lines)."""
    items: list[dict[str, Any]] = []
    protocol_case = next((c for c in cases if "protocol" in c.note or c.note == "default config"), None)
    if protocol_case is not None:
        img_s = statistics.median(protocol_case.runner)
        seconds = PROTOCOL_STEPS * PROTOCOL_BATCH / img_s
        items.append({"case": "protocol_projection", "from": protocol_case.name, "runner_img_s": round(img_s, 1),
                      "steps": PROTOCOL_STEPS, "batch": PROTOCOL_BATCH, "train_seconds": round(seconds)})  # fmt: skip
        out.print(f"ResNet CIFAR protocol ({PROTOCOL_STEPS:,} steps × {PROTOCOL_BATCH}) at {img_s:,.0f} img/s "
                  f"({protocol_case.name}): {fmt_h(seconds)} of training steps (evaluation not included)")  # fmt: skip
    if ttfs:
        cold = time_to_first_step(tmp, "cold")  # creates the sqlite store (MLflow's migrations)
        warm = time_to_first_step(tmp, "warm")  # the store exists, as on every later run
        items.append({"case": "time_to_first_step", "step1_s": round(warm[0], 2), "exit_s": round(warm[1], 2),
                      "step1_s_new_store": round(cold[0], 2)})  # fmt: skip
        out.print(f"time to first step (`runner` process start → end of step 1, no compile): "
                  f"{warm[0]:.1f} s (new MLflow store: {cold[0]:.1f} s)")  # fmt: skip
    return items


def main() -> None:
    args = parse_args()
    gpu = torch.cuda.is_available()
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)  # both sides, every repeat: the same threads
    repeats = (
        args.repeats
        or {(False, False): 9, (False, True): 3, (True, False): 5, (True, True): 2}[gpu, args.quick]
    )
    device = torch.cuda.get_device_name(0) if gpu else f"cpu ({os.cpu_count()} cores, {threads} threads)"
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as name:
        tmp = Path(name)
        cases = (
            gpu_cases(args.quick, args.steps, tmp)
            if gpu
            else cpu_cases(args.quick, args.steps, args.window_seconds)
        )
        by_name = {c.name: c for c in cases}  # a compared case runs even when --cases leaves it out
        if args.cases:
            cases = [c for c in cases if c.name in set(args.cases.split(","))]
        out.print(f"[bold]runner vs bare PyTorch[/] on {device}, torch {torch.__version__}: "
                  f"{len(cases)} case(s) × {repeats} repeats")  # fmt: skip
        if any(c.name.endswith("_jpeg") for c in cases):
            jpeg = next(c for c in cases if c.name.endswith("_jpeg"))
            count = (jpeg.warm + jpeg.steps) * jpeg.batch
            out.print(f"generating {count} JPEGs (500×375) ...")
            make_jpegs(tmp / "imagenet", count, max(1, (os.cpu_count() or 2) - 1))
        store = Store(tmp)
        for case in cases:
            if case.compare == "bare":
                measure_paired(case, store, tmp, repeats)
            else:
                measure_runs(case, by_name[case.compare], store, tmp, repeats)
        results = [result_row(c, device, threads) for c in cases]
        print_table(cases, results, device)
        extra = extras(cases, tmp, not args.no_ttfs)
    for item in results + extra:
        print(json.dumps(item), flush=True)


if __name__ == "__main__":
    main()
