"""`make bench`: the runner's real training path against a bare PyTorch loop, in one process, interleaved.

    python -m benchmarks               # CPU: ResNet-20 on Fashion-MNIST (the default config); GPU: the GPU table
    python -m benchmarks --quick       # fewer steps and repeats
    python -m benchmarks --repeats 7 --steps 100 --cases resnet20_fmnist

Per case and repeat, interleaved in ABBA order (runner, bare, bare, runner, ...) so machine noise hits both:
  runner  `runner.train.train(cfg, JobInfo)` on a config composed from conf/ (Hydra compose API), logging to
          a temporary MLflow sqlite store: its model builder and init, its resident data path with the
          configured augmentation, its loop, its host syncs, its progress bars (drawn into a buffer, so their
          cost counts even when this output is piped). The steady-state rate is read at the loop's own log
          points (each right after its one host sync per `log_every` steps): from the first log point, which
          ends the warm-up, to the last. Evaluation and checkpoints after the last step are not timed.
  bare    the same model (same builder, init, memory format, precision), plain torch.optim.SGD, batches already
          on the device: pre-augmented, normalised tensors taken from the runner's loader before timing. No
          logging, no loss accumulation. So the runner's on-device augmentation counts as its overhead.
The ratio is runner / bare per repeat; the table shows the median over repeats.

Also measured: time from `runner` process start to the end of training step 1 (the real CLI in a subprocess,
no compile), and the projected wall time of the ResNet CIFAR protocol (ResNet-20, 64k steps of batch 128).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from runner import console as runner_console
from runner.cli import CONF_DIR
from runner.config import config_hash
from runner.data import Context, build_data
from runner.models import build_model
from runner.nn import init_weights, make_act
from runner.tracking import Tracker
from runner.train import JobInfo, train

REPO = Path(__file__).resolve().parent.parent
PROTOCOL_STEPS, PROTOCOL_BATCH = 64_000, 128  # He et al. 2015, Sec. 4.2: 64k iterations of batch 128
out = Console(highlight=False)


@dataclass
class Case:
    name: str
    overrides: list[str]  # Hydra overrides on conf/config.yaml
    warm: int  # steps before the first timed point; also the runner's log_every (its host-sync interval)
    steps: int  # timed steps (a multiple of warm)
    batch: int
    compare: str = "bare"  # bare: against the bare loop | <case name>: runner against runner on that case
    note: str = ""
    runner: list[float] = field(default_factory=list)  # img/s per repeat
    other: list[float] = field(default_factory=list)
    data_ms: float | None = None  # the runner's data path alone, ms per batch

    def ratios(self) -> list[float]:
        return [r / o for r, o in zip(self.runner, self.other, strict=False)]


# --- config -----------------------------------------------------------------------------------------------
def compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="bench"):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


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
            f"trainer.log_every={case.warm}",
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


MARKS: list[tuple[float, int, int]] = []  # (perf_counter, epoch, step in epoch) at each log point


class TimedProgress(runner_console.TrainProgress):
    """The runner's progress bars, plus a timestamp at each log point (called right after the host sync)."""

    epoch = 0

    def start_epoch(self, epoch: int, step_in_epoch: int) -> None:
        self.epoch = epoch
        super().start_epoch(epoch, step_in_epoch)

    def steps(self, completed: int, loss: float, lr: float, images_per_s: float) -> None:
        MARKS.append((time.perf_counter(), self.epoch, completed))
        super().steps(completed, loss, lr, images_per_s)


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


def rate_from_marks(batch: int) -> float:
    """Images/s between the first and the last log point, over consecutive points of the same epoch."""
    images, seconds = 0, 0.0
    for (t0, e0, s0), (t1, e1, s1) in zip(MARKS, MARKS[1:], strict=False):
        if e0 == e1:
            images, seconds = images + (s1 - s0) * batch, seconds + (t1 - t0)
    if seconds <= 0:
        raise RuntimeError("fewer than two log points: raise --steps")
    return images / seconds


class Store:
    """One temporary MLflow sqlite store for all runner repeats (created once: its migrations take seconds)."""

    def __init__(self, tmp: Path) -> None:
        self.uri = f"sqlite:///{tmp / 'mlflow.db'}"
        self.tracker = Tracker(self.uri, str(tmp / "mlartifacts"))
        self.experiment = self.tracker.experiment_id("bench")


def runner_rate(case: Case, cfg: dict[str, Any], store: Store, tmp: Path, repeat: int) -> float:
    run_id = store.tracker.start(store.experiment, f"{case.name}-{repeat}", {"bench": case.name})
    job = JobInfo(
        config_hash=config_hash(cfg),
        ckpt_path=str(tmp / "checkpoints" / f"{case.name}-{repeat}.pt"),
        cwd=str(REPO),  # ./data is looked for here, as `make run` would
        run_id=run_id,
        tracking_uri=store.uri,
    )
    MARKS.clear()
    with offscreen_progress():
        outcome = train(cfg, job)
    store.tracker.end("FINISHED")
    if outcome.status != "finished":
        raise RuntimeError(f"{case.name}: the runner's run ended {outcome.status}: {outcome.detail}")
    return rate_from_marks(case.batch)


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


def bare_rate(cfg: dict[str, Any], batches: list[tuple[torch.Tensor, torch.Tensor]], data: Any, warm: int,
              steps: int) -> float:  # fmt: skip
    """A plain PyTorch loop over tensors already on the device; the device is synchronised at both ends."""
    trainer, device = cfg["trainer"], device_of(cfg)
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], num_classes=data.num_classes, in_channels=data.in_channels,
                        image_size=data.image_size, act=make_act(cfg["act"]))  # fmt: skip
    init_weights(model, cfg["init"], cfg["act"])
    fmt = torch.channels_last if trainer["channels_last"] else torch.preserve_format
    model = model.to(device, memory_format=fmt).train()
    net = torch.compile(model) if trainer["compile"] else model
    optim = cfg["optim"]
    opt = torch.optim.SGD(model.parameters(), lr=optim["lr"], momentum=optim["momentum"],
                          weight_decay=optim["weight_decay"])  # fmt: skip
    bf16 = trainer["precision"] == "bf16"

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(warm):
        step(*batches[i % len(batches)])
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(*batches[i % len(batches)])
    sync(device)
    return steps * trainer["batch_size"] / (time.perf_counter() - t0)


def measure(case: Case, store: Store, tmp: Path, repeats: int, base: Case | None) -> None:
    """`repeats` interleaved pairs in ABBA order: a load that rises or falls during the run hits both alike."""
    cfg = case_config(case, tmp)
    if base is None:  # against the bare loop, on batches taken from the runner's own loader
        batches, data, case.data_ms = resident_batches(cfg, min(case.steps, 32))

    def mine(r: int) -> None:
        case.runner.append(runner_rate(case, cfg, store, tmp, r))

    def theirs(r: int) -> None:
        if base is None:
            case.other.append(bare_rate(cfg, batches, data, min(case.warm, 10), case.steps))
        else:  # another case's runner rate, re-measured here so that the two interleave
            case.other.append(runner_rate(base, case_config(base, tmp), store, tmp, 100 + r))

    for r in range(repeats):
        for run in (mine, theirs) if r % 2 == 0 else (theirs, mine):
            run(r)
        out.print(f"  {case.name} repeat {r + 1}/{repeats}: runner {case.runner[-1]:,.0f} img/s, "
                  f"{case.compare} {case.other[-1]:,.0f} img/s, ratio {case.ratios()[-1]:.3f}")  # fmt: skip


# --- cases ----------------------------------------------------------------------------------------------
def cpu_cases(quick: bool, steps: int | None) -> list[Case]:
    n = steps or (25 if quick else 50)
    # The default config (conf/config.yaml: ResNet-20, Fashion-MNIST, crop+flip, batch 128, channels_last, fp32).
    return [Case("resnet20_fmnist", ["trainer.accelerator=cpu"], warm=25, steps=n, batch=128,
                 note="default config")]  # fmt: skip


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
# The real CLI, plus one global optimizer hook (a public torch API) that writes the time of step 1's end.
BOOT = """
import os, sys, time
from torch.optim.optimizer import register_optimizer_step_post_hook
def first(opt, args, kwargs):
    with open(os.environ["BENCH_STEP1"], "w") as f:
        f.write(repr(time.time()))
    handle.remove()
handle = register_optimizer_step_post_hook(first)
sys.argv = ["runner", *sys.argv[1:]]
from runner.cli import main
sys.exit(main())
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer timed steps and repeats")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved repeats per case (CPU 5, quick 3; GPU 3, quick 2)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per repeat (a multiple of the warm-up)"
    )
    parser.add_argument(
        "--cases", default="", help="comma-separated case names (default: all for the device)"
    )
    parser.add_argument("--no-ttfs", action="store_true", help="skip the time-to-first-step subprocess runs")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    repeats = (
        args.repeats
        or {(False, False): 5, (False, True): 3, (True, False): 3, (True, True): 2}[gpu, args.quick]
    )
    device = (
        torch.cuda.get_device_name(0)
        if gpu
        else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    )
    results: list[dict[str, Any]] = []

    with tempfile.TemporaryDirectory(prefix="runner-bench-") as name:
        tmp = Path(name)
        cases = gpu_cases(args.quick, args.steps, tmp) if gpu else cpu_cases(args.quick, args.steps)
        if args.cases:
            wanted = set(args.cases.split(","))
            cases = [c for c in cases if c.name in wanted]
        out.print(f"[bold]runner vs bare PyTorch[/] on {device}, torch {torch.__version__}: "
                  f"{len(cases)} case(s) × {repeats} interleaved repeats")  # fmt: skip
        if any(c.name.endswith("_jpeg") for c in cases):
            jpeg = next(c for c in cases if c.name.endswith("_jpeg"))
            count = (jpeg.warm + jpeg.steps) * jpeg.batch
            out.print(f"generating {count} JPEGs (500×375) ...")
            make_jpegs(tmp / "imagenet", count, max(1, (os.cpu_count() or 2) - 1))
        store = Store(tmp)
        by_name = {c.name: c for c in cases}

        for case in cases:
            measure(case, store, tmp, repeats, by_name.get(case.compare))
            results.append({
                "case": case.name,
                "device": device,
                "runner_img_s": round(statistics.median(case.runner), 1),
                "bare_img_s" if case.compare == "bare" else f"{case.compare}_img_s": round(
                    statistics.median(case.other), 1),
                "ratio": round(statistics.median(case.ratios()), 4),
                "ratios": [round(x, 4) for x in case.ratios()],
                "repeats": repeats,
                "batch": case.batch,
                "timed_steps": case.steps,
                "data_ms_per_batch": None if case.data_ms is None else round(case.data_ms, 2),
            })  # fmt: skip

        extra: list[dict[str, Any]] = []
        protocol_case = next((c for c in cases if "protocol" in c.note or c.note == "default config"), None)
        if protocol_case is not None:
            img_s = statistics.median(protocol_case.runner)
            seconds = PROTOCOL_STEPS * PROTOCOL_BATCH / img_s
            extra.append({"case": "protocol_projection", "from": protocol_case.name, "runner_img_s": round(img_s, 1),
                          "steps": PROTOCOL_STEPS, "batch": PROTOCOL_BATCH, "train_seconds": round(seconds)})  # fmt: skip
        if not args.no_ttfs:
            cold = time_to_first_step(tmp, "cold")  # creates the sqlite store (MLflow's migrations)
            warm = time_to_first_step(tmp, "warm")  # the store exists, as on every later run
            extra.append({"case": "time_to_first_step", "step1_s": round(warm[0], 2), "exit_s": round(warm[1], 2),
                          "step1_s_new_store": round(cold[0], 2)})  # fmt: skip

    table = Table(title=f"runner vs bare PyTorch — {device}")
    for col in (
        "case",
        "runner img/s",
        "baseline img/s",
        "ratio (median)",
        "ratios",
        "data ms/batch",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("case", "ratios", "note") else "right")
    for case, row in zip(cases, results, strict=True):
        table.add_row(
            case.name,
            f"{row['runner_img_s']:,.0f}",
            f"{statistics.median(case.other):,.0f}"
            + ("" if case.compare == "bare" else f" ({case.compare})"),
            f"{row['ratio']:.3f}",
            " ".join(f"{x:.3f}" for x in row["ratios"]),
            "" if case.data_ms is None else f"{case.data_ms:.1f}",
            case.note,
        )
    out.print(table)
    for item in extra:
        if item["case"] == "protocol_projection":
            out.print(f"ResNet CIFAR protocol ({PROTOCOL_STEPS:,} steps × {PROTOCOL_BATCH}) at "
                      f"{item['runner_img_s']:,.0f} img/s ({item['from']}): {fmt_h(item['train_seconds'])} "
                      "of training steps (evaluation not included)")  # fmt: skip
        else:
            out.print(f"time to first step (`runner` process start → end of step 1, no compile): "
                      f"{item['step1_s']:.1f} s (new MLflow store: {item['step1_s_new_store']:.1f} s)")  # fmt: skip
    for item in results + extra:
        print(json.dumps(item), flush=True)


if __name__ == "__main__":
    main()
