"""The training loop in-process (runner/train/loop.py) through its public functions: a run interrupted and
resumed ends bit for bit where the uninterrupted run ends, `max_steps` stops mid-epoch at that step,
`evaluate` runs in eval mode and leaves batch-norm statistics alone, the plateau watches the monitored error
and the warm-up the recent training error. The kill/resume tests through the real `runner` are in e2e/.

Every run here is a 1/16-width VGG-A on 128 synthetic 32×32 images: dropout 0.5, random crop and flip, SGD
with momentum, a plateau schedule that drops whenever it stalls; about a tenth of a second an epoch.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import compose
from torch.optim.optimizer import register_optimizer_step_post_hook

from runner import console
from runner.config.identity import config_hash
from runner.tracking import helper
from runner.train import checkpoint, schedule
from runner.train import metrics as named_metrics
from runner.train.flops import describe, run_multiply_adds
from runner.train.loop import (
    Interrupted,
    JobInfo,
    Outcome,
    build_parts,
    evaluate,
    inject_fault_for_tests,
    log_summary,
    model_summary,
    open_tracker,
    train,
)

# 96 training images (32 held out) in batches of 16: 6 steps an epoch. patience 1 with an unreachable
# threshold: every epoch after the first is a stall, so the lr drops at the end of epochs 2 and 3.
DATA = [
    "dataset=synthetic",
    "dataset.train_size=128",
    "dataset.val_split=32",
    "dataset.test_size=32",
    "dataset.in_channels=1",
    "trainer.batch_size=16",
    "trainer.epochs=3",
    "trainer.log_every=100",
    "trainer.progress=false",
    "trainer.accelerator=cpu",
    "optim.lr=0.01",
]
SMALL = ["model=vgg_a", "model.width_mult=0.0625", *DATA, "schedule=plateau", "schedule.patience=1",
         "schedule.threshold=1000"]  # fmt: skip
STEPS_PER_EPOCH = 6
TIMINGS = ("epoch_seconds", "images_per_s")  # the only metrics that may differ between two equal runs


@pytest.fixture(scope="module")
def small() -> dict[str, Any]:
    return compose(SMALL)


def job_in(folder: Path, cfg: dict[str, Any]) -> JobInfo:
    return JobInfo(config_hash(cfg), str(folder / "last.pt"), str(folder))


@pytest.fixture
def optimizer_steps() -> Iterator[list[int]]:
    """The number of optimiser steps taken so far in the test (every optimizer, through torch's global hook)."""
    steps = [0]

    def count(*args: object) -> None:
        steps[0] += 1

    handle = register_optimizer_step_post_hook(count)
    yield steps
    handle.remove()


def run_with_ctrl_c_at(
    cfg: dict[str, Any], job: JobInfo, stops: tuple[int, ...]
) -> tuple[Outcome, list[str]]:
    """Train; a real SIGINT arrives right after each optimiser step numbered in `stops` (counted over the
    whole run), and each interrupted run is resumed as a re-run does. The outcome and each interruption's
    message (the exit status 128 + signum follows from its signum: SIGINT's, checked here)."""
    taken, interrupted = [0], []

    def ctrl_c(*args: object) -> None:
        taken[0] += 1
        if taken[0] in stops:
            os.kill(os.getpid(), signal.SIGINT)  # the loop's handler notes it; the loop acts on it itself

    handle = register_optimizer_step_post_hook(ctrl_c)
    try:
        while True:
            try:
                return train(cfg, job), interrupted
            except Interrupted as e:
                assert e.signum == signal.SIGINT
                interrupted.append(str(e))
                job.resume = True
    finally:
        handle.remove()


def test_a_run_interrupted_twice_and_resumed_ends_where_the_uninterrupted_run_ends(
    tmp_path: Path, small: dict[str, Any]
) -> None:
    """Interrupted mid-epoch 2, just before the plateau's first drop (its best and its count of stalled
    epochs decide that drop), and mid-epoch 3, after it (its factor decides the lr): weights, momentum,
    schedule, running sums, the dropout masks (torch's generator) and the augmented batches must all come
    back for the two runs to agree."""
    reference = train(small, job_in(tmp_path / "a", small))
    resumed, interruptions = run_with_ctrl_c_at(small, job_in(tmp_path / "b", small), stops=(9, 16))
    assert interruptions == ["stopped by SIGINT at step 9", "stopped by SIGINT at step 16"]
    assert reference.steps == resumed.steps == 3 * STEPS_PER_EPOCH and resumed.epochs == 3
    expected = {k: v for k, v in reference.metrics.items() if k not in TIMINGS}
    assert {k: v for k, v in resumed.metrics.items() if k not in TIMINGS} == expected
    a, b = (checkpoint.load(tmp_path / d / "last.pt", config_hash(small)) for d in "ab")
    assert a["schedule"]["drops"] == 2 and a["schedule"]["factor"] == pytest.approx(0.01)  # the case holds
    assert a["schedule"] == b["schedule"]
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    pairs = zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True)
    momenta = [(s["momentum_buffer"], t["momentum_buffer"]) for s, t in pairs]
    assert momenta and all(torch.equal(m, n) for m, n in momenta)
    assert a["train_state"] == {**b["train_state"], "epoch_seconds": a["train_state"]["epoch_seconds"]}


@pytest.mark.parametrize(
    "schedule_of",
    [
        ["schedule=cosine"],  # a new lr every step
        ["schedule=multistep", "schedule.milestones=[9]"],  # ÷10 from the step after the interruption
        ["schedule=multistep", "schedule.warmup_lr=0.001", "schedule.warmup_models=null",
         "schedule.warmup_until_error=1"],  # warming up all along, at a tenth of optim.lr
    ],
)  # fmt: skip
def test_a_run_interrupted_mid_schedule_resumes_at_the_lr_of_its_next_step(
    tmp_path: Path, schedule_of: list[str]
) -> None:
    """A checkpoint written at a signal precedes the schedule's call for the next step; resumed, that step
    must still train at the lr the uninterrupted run gives it."""
    cfg = compose([*SMALL[:2], *DATA, "trainer.epochs=2", *schedule_of])
    reference = train(cfg, job_in(tmp_path / "a", cfg))
    resumed, interruptions = run_with_ctrl_c_at(cfg, job_in(tmp_path / "b", cfg), stops=(9,))
    assert (
        interruptions == ["stopped by SIGINT at step 9"] and resumed.metrics["lr"] == reference.metrics["lr"]
    )
    a, b = (checkpoint.load(tmp_path / d / "last.pt", config_hash(cfg))["model"] for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_steps_ends_the_run_mid_epoch_at_exactly_that_step(
    tmp_path: Path, small: dict[str, Any], optimizer_steps: list[int]
) -> None:
    cfg = compose([*SMALL, f"trainer.max_steps={STEPS_PER_EPOCH + 2}", "trainer.epochs=1"])
    outcome = train(cfg, job_in(tmp_path, cfg))
    assert optimizer_steps[0] == outcome.steps == STEPS_PER_EPOCH + 2
    assert outcome.epochs == 2 and outcome.metrics["epoch"] == 2
    assert "test_top1_error" in outcome.metrics  # the partial epoch is the last: the test set is evaluated
    # The last epoch's throughput: its 2 steps of 16 images over its seconds.
    assert outcome.metrics["images_per_s"] == pytest.approx(2 * 16 / outcome.metrics["epoch_seconds"])
    saved = checkpoint.load(tmp_path / "last.pt", config_hash(cfg))
    assert saved["train_state"]["global_step"] == STEPS_PER_EPOCH + 2 and saved["train_state"]["epoch"] == 2
    assert saved["run_id"] == ""  # no MLflow run: nothing for a resume to continue


def test_evaluate_runs_in_eval_mode_and_leaves_batch_norm_statistics_alone(tmp_path: Path) -> None:
    cfg = compose(["model=resnet20", "model.width=4", *DATA])
    parts = build_parts(cfg, job_in(tmp_path, cfg))
    model = parts.model
    for x, _ in parts.data.train.batches(0):  # move the running statistics off their initial values
        model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = evaluate(model, parts.data.test, parts.autocast, world_size=1)
    assert model.training  # back to training mode for the next step
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    def loss(training: bool) -> float:
        model.train(training)
        with torch.no_grad():
            pairs = [(model(x), y) for x, y in parts.data.test.batches(0)]
        model.train(True)
        logits, labels = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        return torch.nn.functional.cross_entropy(logits, labels).item()

    assert got["loss"] == pytest.approx(loss(training=False), rel=1e-5)
    assert got["loss"] != pytest.approx(loss(training=True), rel=1e-3)  # batch statistics would show


class Recorded:
    """Schedules that note what the loop hands them: the monitored error of each epoch, the recent training
    error of each host sync."""

    monitored: list[float]
    recent: list[float]

    @classmethod
    def wrap(cls, base: type[schedule.Schedule]) -> type[schedule.Schedule]:
        cls.monitored, cls.recent = [], []

        class Recording(base):  # type: ignore[misc, valid-type]
            def epoch_end(self, monitored_error: float) -> None:
                cls.monitored.append(monitored_error)
                super().epoch_end(monitored_error)

            def iteration(self, step: int, train_error: float | None = None) -> None:
                if train_error is not None:
                    cls.recent.append(train_error)
                super().iteration(step, train_error)

        return Recording


@pytest.mark.parametrize(("val_split", "watched"), [(32, "val_top1_error"), (0, "train_error")])
def test_the_plateau_watches_the_validation_error_else_the_training_error_and_best_is_the_lowest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, val_split: int, watched: str
) -> None:
    monkeypatch.setitem(schedule.SCHEDULES, "plateau", Recorded.wrap(schedule.Plateau))
    cfg = compose([*SMALL, f"dataset.val_split={val_split}", "dataset.train_size=96"])
    outcome = train(cfg, job_in(tmp_path, cfg))
    assert len(Recorded.monitored) == 3 and Recorded.monitored[-1] == outcome.metrics[watched]
    others = {k: v for k, v in outcome.metrics.items() if k.endswith(("error", "loss")) and k != watched}
    assert outcome.metrics[watched] not in others.values()  # the case tells the watched error apart
    best = checkpoint.load(tmp_path / "last.pt", config_hash(cfg))["train_state"]["best"]
    assert best == min(Recorded.monitored) != Recorded.monitored[-1]


def test_the_warm_up_reads_the_training_error_since_the_last_host_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a host sync after every step, the recent error is each batch's error (in %, 1/16 steps of 6.25),
    and over the epoch they average to the epoch's training error."""
    monkeypatch.setitem(schedule.SCHEDULES, "multistep", Recorded.wrap(schedule.MultiStep))
    cfg = compose([*SMALL[:2], *DATA, "schedule=multistep", "schedule.warmup_lr=0.001", "schedule.warmup_models=null",
                   "schedule.warmup_until_error=1", "trainer.log_every=1", "trainer.epochs=1"])  # fmt: skip
    outcome = train(cfg, job_in(tmp_path, cfg))
    assert len(Recorded.recent) == STEPS_PER_EPOCH
    assert all(e / 6.25 == round(e / 6.25) for e in Recorded.recent)
    assert sum(Recorded.recent) / STEPS_PER_EPOCH == pytest.approx(outcome.metrics["train_error"])
    assert len(set(Recorded.recent)) > 1


class FakeTracker:
    """A RunLog that keeps what the loop logs, in place of MLflow; `connect` hands out `FakeTracker.last`."""

    last: FakeTracker

    def __init__(self, uri: str | None, artifact_root: str | None = None, retries: Any = None) -> None:
        FakeTracker.last = self
        self.connected = (uri, artifact_root, retries)
        self.run_id: str | None = None
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.series: list[tuple[int, dict[str, float]]] = []
        self.texts: dict[str, str] = {}
        self.tags: dict[str, Any] = {}
        self.datasets: list[tuple[str, Any]] = []
        self.files: list[tuple[str, str | None]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_series(self, points: list[tuple[int, dict[str, float]]]) -> None:
        self.series.extend(points)

    def last_step(self, key: str) -> int:
        return max((step for step, logged in self.metrics if key in logged), default=-1)

    def log_text(self, text: str, filename: str) -> None:
        self.texts[filename] = text

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.tags.update(tags)

    def log_dataset(self, name: str, provenance: Any) -> None:
        self.datasets.append((name, provenance))

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        self.files.append((Path(path).name, artifact_path))


def test_rank_0_logs_the_model_each_epoch_the_curves_and_the_final_metrics_to_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helper, "connect", FakeTracker)
    cfg = compose([*SMALL, "trainer.epochs=2", "trainer.log_every=3", "tracking.retry_seconds=[7]"])
    job = JobInfo(
        config_hash(cfg),
        str(tmp_path / "last.pt"),
        str(tmp_path),
        run_id="run1",
        tracking_uri="sqlite:///t.db",
    )
    outcome = train(cfg, job)
    tracker = FakeTracker.last
    assert tracker.connected == ("sqlite:///t.db", None, [7]) and tracker.run_id == "run1"

    parts = build_parts(cfg, job)  # the same model and data, to say what should have been logged
    macs = run_multiply_adds(cfg)
    assert tracker.tags == {
        "runner.parameters": sum(p.numel() for p in parts.model.parameters()),
        "runner.world_size": 1,
        "runner.multiply_adds": macs,
    }
    assert tracker.texts == {"model_summary.txt": model_summary(parts.model, describe(macs, 1, 32))}
    assert tracker.datasets == [("synthetic", parts.data.provenance)]

    # Each epoch's metrics at its last step, then the summary at the run's last step.
    assert [step for step, _ in tracker.metrics] == [6, 12, 12]
    assert [logged["epoch"] for _, logged in tracker.metrics[:2]] == [1, 2]
    assert tracker.metrics[1][1] == outcome.metrics
    best = checkpoint.load(tmp_path / "last.pt", config_hash(cfg))["train_state"]["best"]
    final = {f"final_{k}": v for k, v in outcome.metrics.items() if k.startswith(("val_", "test_"))}
    assert tracker.metrics[2][1] == {**final, "best_monitored_error": best}
    assert "final_test_top1_error" in final and "final_val_top1_error" in final
    assert [step for step, _ in tracker.series] == [3, 6, 9, 12]  # a point at each host sync
    assert set(tracker.series[0][1]) == {"train_loss_interval", "train_error_interval"}
    assert tracker.files == [("last.pt", "checkpoint")]


def test_the_summary_is_logged_once_and_the_checkpoint_only_when_asked(tmp_path: Path) -> None:
    """A run killed after its summary and resumed does not log it again; tracking.log_checkpoint=false keeps
    the checkpoint off the run, and a checkpoint that is not there is not logged."""
    outcome = Outcome("finished", {"train_error": 9.0, "val_top1_error": 5.0, "test_top5_error": 1.0}, 2, 12)
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"x")
    tracker = FakeTracker(None)
    log_summary(tracker, {"tracking": {"log_checkpoint": False}}, outcome, 4.0, ckpt)  # type: ignore[arg-type]
    assert tracker.metrics == [(12, {"final_val_top1_error": 5.0, "final_test_top5_error": 1.0,
                                     "best_monitored_error": 4.0})]  # fmt: skip
    assert tracker.files == []
    log_summary(tracker, {"tracking": {"log_checkpoint": True}}, outcome, 4.0, ckpt)  # type: ignore[arg-type]
    assert len(tracker.metrics) == 1 and tracker.files == [("last.pt", "checkpoint")]
    log_summary(tracker, {"tracking": {"log_checkpoint": True}}, outcome, 4.0, tmp_path / "gone.pt")  # type: ignore[arg-type]
    assert tracker.files == [("last.pt", "checkpoint")]


@pytest.mark.parametrize(("rank", "run_id"), [(0, None), (0, ""), (1, "run1")])
def test_only_rank_0_of_a_job_with_a_run_opens_a_tracker(
    monkeypatch: pytest.MonkeyPatch, rank: int, run_id: str | None
) -> None:
    monkeypatch.setattr(helper, "connect", lambda *args: pytest.fail("connected"))
    job = JobInfo("h", "last.pt", ".", run_id=run_id, tracking_uri="sqlite:///t.db", rank=rank)
    assert open_tracker({"tracking": {"retry_seconds": [1]}}, job) is None


def test_the_model_summary_gives_the_size_of_the_model_and_of_each_part() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1000))
    # one line a child: its name in 12 columns, a space, its parameters right-aligned in 14
    parts = "\n".join(["0" + " " * 25 + "8", "1" + " " * 25 + "0", "2" + " " * 21 + "3,000"])
    assert model_summary(model) == f"parameters: 3,008\n\n{parts}\n\n{model}"
    assert (
        model_summary(model, "multiply-adds: 7")
        == f"parameters: 3,008\nmultiply-adds: 7\n\n{parts}\n\n{model}"
    )


@pytest.mark.parametrize(("log_every", "step"), [(100, STEPS_PER_EPOCH), (4, 4)])
def test_a_non_finite_loss_ends_the_run_as_diverged_at_the_step_it_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_every: int, step: int
) -> None:
    """The summed loss turns infinite from the first step: a host sync sees it (log_every 4), or else the
    end of the epoch does. A result, not a crash: no epoch is counted and no final metrics are logged."""

    def infinite(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.tensor(float("inf"))

    loss, error = named_metrics.TRAIN_METRICS
    monkeypatch.setattr(
        named_metrics, "TRAIN_METRICS", (named_metrics.Metric("loss", infinite, False), error)
    )
    monkeypatch.setattr(helper, "connect", FakeTracker)
    cfg = compose([*SMALL, f"trainer.log_every={log_every}"])
    job = JobInfo(config_hash(cfg), str(tmp_path / "last.pt"), str(tmp_path), run_id="run1")
    outcome = train(cfg, job)
    assert (outcome.status, outcome.detail) == ("diverged", f"non-finite loss at step {step}")
    assert (outcome.epochs, outcome.steps, outcome.metrics) == (0, step, {})
    assert FakeTracker.last.metrics == []


class StoppedBeforeTraining(Exception):
    """Raised by a test's stand-in once it has seen what it checks: the run need not train."""


def test_the_progress_bars_are_asked_for_on_rank_0_when_trainer_progress_is_on_and_show_the_loss_per_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only rank 0 draws bars (another rank of a DDP job would draw a second set). A step's bar shows the mean
    loss per image of the epoch so far: after one step of one image, that image's loss, which is also the
    epoch's training loss."""
    asked: list[tuple[int, int, bool]] = []
    shown: list[tuple[int, float]] = []
    ended: list[float] = []

    class Recording(console.TrainProgress):
        def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True) -> None:
            asked.append((epochs, steps_per_epoch, enabled))
            if len(asked) == 3:  # the rank-1 job: what it asks for is all this test reads
                raise StoppedBeforeTraining
            super().__init__(epochs, steps_per_epoch, enabled=False)  # not drawn in the test's output

        def steps(self, completed: int, loss: float, lr: float, images_per_s: float) -> None:
            shown.append((completed, loss))

        def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
            ended.append(metrics["train_loss"])

    monkeypatch.setattr(console, "TrainProgress", Recording)
    one_image = compose([*SMALL, "trainer.batch_size=1", "trainer.max_steps=1", "trainer.log_every=1",
                         "dataset.val_split=0", "dataset.test_size=1"])  # fmt: skip
    for rank, progress in ((0, True), (0, False), (1, True)):
        cfg = {**one_image, "trainer": {**one_image["trainer"], "progress": progress}}
        folder = tmp_path / f"{rank}{progress}"
        job = JobInfo(config_hash(cfg), str(folder / "last.pt"), str(folder), rank=rank)
        if rank == 0:
            train(cfg, job)
        else:
            with pytest.raises(StoppedBeforeTraining):
                train(cfg, job)
    assert asked == [(1, 128, True), (1, 128, False), (1, 128, False)]
    assert [step for step, _ in shown] == [1, 1] and len(ended) == 2
    assert shown[0][1] == ended[0] > 0


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_bf16_precision_autocasts_the_steps_and_fp32_does_not(
    tmp_path: Path, small: dict[str, Any], precision: str, dtype: torch.dtype
) -> None:
    cfg = compose([*SMALL, f"trainer.precision={precision}"])
    parts = build_parts(cfg, job_in(tmp_path, cfg))
    with parts.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == dtype


def test_the_test_view_dense_selects_vggs_dense_evaluation(tmp_path: Path, small: dict[str, Any]) -> None:
    assert build_parts(small, job_in(tmp_path, small)).dense_test is False
    cfg = compose([*SMALL, "dataset.test_view=dense"])
    assert build_parts(cfg, job_in(tmp_path, cfg)).dense_test is True


def test_deterministic_turns_on_torchs_deterministic_algorithms_warning_where_an_op_has_none(
    tmp_path: Path,
) -> None:
    cfg = compose([*SMALL, "trainer.deterministic=true"])
    try:
        build_parts(cfg, job_in(tmp_path, cfg))
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # a warning, not a failed run
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize(("scale_lr", "lr"), [("true", 0.02), ("false", 0.01)])
def test_scale_lr_multiplies_the_lr_by_the_number_of_devices(
    tmp_path: Path, scale_lr: str, lr: float
) -> None:
    """Goyal et al. 2017's linear scaling, for a job of 2 devices: built here as its rank 0, in a one-process
    gloo group (DDP wraps the model; what is checked is the optimiser's lr, 2 × optim.lr=0.01)."""
    import torch.distributed as dist

    cfg = compose([*SMALL, f"trainer.scale_lr={scale_lr}"])
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path / 'store'}")
    try:
        job = JobInfo(config_hash(cfg), str(tmp_path / "last.pt"), str(tmp_path), world_size=2)
        parts = build_parts(cfg, job)
    finally:
        dist.destroy_process_group()
    assert isinstance(parts.net, torch.nn.parallel.DistributedDataParallel)
    assert [g["lr"] for g in parts.optimizer.param_groups] == [pytest.approx(lr)]
    assert parts.schedule.lr == pytest.approx(lr)


def test_the_injected_fault_raises_on_its_rank_right_after_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test-only hook (runner.env.FAULT = "<rank>:<step>") of the DDP fault tests: counted on from the
    steps a resumed run has done; other ranks train on."""
    from runner import env

    weight = torch.nn.Parameter(torch.zeros(1))
    monkeypatch.setenv(env.FAULT, "1:3")
    other, faulty = torch.optim.SGD([weight], lr=0.1), torch.optim.SGD([weight], lr=0.1)
    inject_fault_for_tests(other, rank=0, done_steps=0)
    inject_fault_for_tests(faulty, rank=1, done_steps=1)
    for _ in range(4):
        other.step()
    faulty.step()  # step 2
    with pytest.raises(RuntimeError, match="injected fault on rank 1 at step 3"):
        faulty.step()
