"""`runner --plan` (issue 18): every job of a sweep with train / resume from epoch k / skip, and a projected time
from the store's measured throughput; nothing is written (store, checkpoints, Hydra's output dirs).

The store is made by hand: a FINISHED run of one job (with its images_per_s), a KILLED run of another whose
checkpoint stands at epoch 1, and nothing for the third.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import TINY, compose, run_runner

from runner.cli import plan
from runner.config.identity import config_hash
from runner.train import checkpoint
from runner.train.device import device_name

# 384 training images (512 - 128 held out), batch 64: 6 steps an epoch, 18 in all.
BASE = [*TINY, "trainer.epochs=3", "trainer.accelerator=cpu"]
SWEEP = ["-m", *BASE, "act=relu,prelu,tanh"]
STEPS, BATCH, RATE = 18, 64, 100.0


def job(act: str) -> list[str]:
    return [*BASE, f"act={act}"]


def make_store(cwd: Path, empty_store: Path) -> None:
    """relu finished (images_per_s 100), prelu interrupted at epoch 1 (KILLED run + checkpoint), tanh new."""
    from mlflow.tracking import MlflowClient

    shutil.copy(empty_store, cwd / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.create_experiment("runner", artifact_location=(cwd / "mlartifacts").as_uri())
    for act, status in (("relu", "FINISHED"), ("prelu", "KILLED")):
        cfg = compose(job(act))
        tags = {
            "runner.config_hash": config_hash(cfg),
            "runner.device": device_name(cfg["trainer"]),
            "runner.devices": "1",
        }
        run = client.create_run(experiment, run_name=act, tags=tags)
        client.log_param(run.info.run_id, "model", "resnet20")
        client.log_param(run.info.run_id, "dataset", "fashion_mnist")
        client.log_metric(run.info.run_id, "images_per_s", RATE, step=6)
        client.set_terminated(run.info.run_id, status)
        if act == "prelu":
            state = checkpoint.TrainState(epoch=1, global_step=6)
            saved = {key: {} for key in checkpoint.KEYS}
            saved.update(format=checkpoint.FORMAT, config_hash=config_hash(cfg), run_id=run.info.run_id)
            saved["train_state"] = asdict(state)
            path = cwd / "checkpoints" / "runner" / config_hash(cfg) / "last.pt"
            checkpoint.save(path, saved)


def snapshot(cwd: Path) -> tuple[list[str], str, list[tuple]]:
    """Every path under cwd, the store's bytes, and its runs' rows."""
    paths = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
    db = cwd / "mlflow.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("select run_uuid, status, end_time from runs order by run_uuid").fetchall()
        rows += con.execute("select * from tags order by run_uuid, key").fetchall()
    return paths, hashlib.sha256(db.read_bytes()).hexdigest(), rows


@pytest.mark.whole_run
def test_a_sweep_plan_lists_train_resume_and_skip_and_writes_nothing(
    tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(tmp_path, empty_store)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    jobs, swept = plan.expand(SWEEP)
    assert swept == ["act"] and len(jobs) == 3
    items = [plan.plan_job(j, swept, tmp_path, {}) for j in jobs]
    assert [(i.swept["act"], i.action) for i in items] == [
        ("relu", "skip"),
        ("prelu", "resume"),
        ("tanh", "train"),
    ]
    assert items[0].detail.startswith("(finished in run ") and items[0].images == 0
    assert items[1].detail.startswith("from epoch 1 (step 6) in run ")
    assert items[1].images == (STEPS - 6) * BATCH and items[2].images == STEPS * BATCH
    assert items[2].img_s == RATE and items[2].seconds == pytest.approx(STEPS * BATCH / RATE)

    assert plan.main(SWEEP) == 0
    out = capsys.readouterr().out
    assert "resume from epoch 1 (step 6)" in out and "| skip (finished in run" in out
    assert "…" not in out  # not a terminal: a markdown table, no cell cut
    assert snapshot(tmp_path) == before


def test_a_plan_in_an_empty_directory_creates_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert plan.main([*BASE, "act=tanh"]) == 0
    assert "| train" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_preset_sweep_expands_to_its_cartesian_product() -> None:
    jobs, swept = plan.expand(["-m", "+experiment=init_depth_smoke", "seed=0,1"])
    assert swept == ["model", "init", "seed"]
    assert len(jobs) == 4 and {tuple(j) for j in jobs} == {
        ("model=plain_deep30", f"init={i}", "+experiment=init_depth_smoke", f"seed={s}")
        for i in ("kaiming", "xavier_he")
        for s in (0, 1)
    }
    # Sweeping the preset itself: the presets are the jobs, and `experiment` is no key of a run's name.
    jobs, swept = plan.expand(["-m", "+experiment=init_depth_smoke,vgg_depth_smoke"])
    assert swept == [] and len(jobs) == 2


def test_a_job_the_plan_refuses_says_why_in_its_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (item,) = [plan.plan_job(j, [], tmp_path, {}) for j in plan.expand([*BASE, "dataset.subset=100"])[0]]
    assert item.action == "refused" and "dataset.val_split" in item.detail
    # A value that does not compose (Hydra's error, not runner's) is refused the same way, in one line.
    item = plan.plan_job([*BASE, "act=rleu"], ["act"], tmp_path, {})
    assert (item.swept, item.action) == ({"act": "rleu"}, "refused")
    assert item.detail == "act=rleu: unknown act; allowed: lrelu, prelu, prelu_shared, relu, tanh"


def test_a_plan_never_downloads_the_data_files_a_job_would_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dataset.download=true: the job would fetch the missing files, so the plan leaves them alone (a plan
    writes nothing)."""
    monkeypatch.chdir(tmp_path)
    fetched: list[Path] = []
    monkeypatch.setattr("runner.data.cifar.download", lambda layout, root: fetched.append(root))
    job = [*BASE, "dataset=cifar10", "dataset.root=cifar", "dataset.download=true"]
    item = plan.plan_job(job, [], tmp_path, {})
    assert (item.action, item.detail, item.images, fetched) == ("train", "", STEPS * BATCH, [])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_runner_plan_through_the_entry_point_writes_nothing(workdir: Path, empty_store: Path) -> None:
    make_store(workdir, empty_store)
    before = snapshot(workdir)
    done = run_runner(["--plan", *SWEEP], workdir, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resume from epoch 1 (step 6)" in done.stdout and "skip (finished in run" in done.stdout, (
        done.stdout
    )
    assert "| 2 | tanh | train" in done.stdout.replace("  ", " ").replace("  ", " "), done.stdout
    assert snapshot(workdir) == before
    assert not (workdir / "outputs").exists() and not (workdir / "multirun").exists()


class MeasuredStore:
    """A store whose only runs are earlier measurements: `search_everywhere` keeps the runs matching every
    `key = 'value'` of the filter, as MLflow does (no experiment of this job, so nothing to skip or resume)."""

    def __init__(self, runs: list[dict[str, str]]) -> None:
        self.runs = runs

    def experiment_id_or_none(self, name: str) -> None:
        return None

    def search_everywhere(self, query: str, max_results: int = 20) -> list:
        from types import SimpleNamespace

        wanted = dict(term.split(" = ", 1) for term in query.split(" and "))
        found = [r for r in self.runs if all(f"'{r.get(k)}'" == v for k, v in wanted.items())]
        return [
            SimpleNamespace(data=SimpleNamespace(metrics={"images_per_s": float(r["rate"])})) for r in found
        ]


def measured(cfg: dict, devices: int, rate: float) -> dict[str, str]:
    return {
        "params.model": cfg["model"]["name"],
        "params.dataset": cfg["dataset"]["name"],
        "tags.`runner.device`": device_name(cfg["trainer"]),
        "tags.`runner.devices`": str(devices),
        "rate": str(rate),
    }


def test_the_projection_counts_the_steps_and_the_throughput_of_the_job_s_device_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """448 training images (576 - 128 held out), 64 a device: 7 steps an epoch on one device, 3 of 128 on
    two (the rest of the epoch is dropped); the throughput is the median of those measured with as many devices.
    Synthetic data: no file to check."""
    from runner.tracking.store import resolve_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("os.cpu_count", lambda: 4)  # CPU processes as devices, on any machine
    synthetic = ["dataset=synthetic", "dataset.train_size=576", "dataset.val_split=128", "trainer.batch_size=64",
                 "trainer.epochs=3", "trainer.accelerator=cpu", "model.width=4"]  # fmt: skip
    cfg = compose(synthetic)
    assert plan.total_steps(cfg, 1, tmp_path) == (21, 64)
    assert plan.total_steps(cfg, 2, tmp_path) == (9, 128)
    assert plan.total_steps(compose([*synthetic, "trainer.max_steps=5"]), 2, tmp_path) == (5, 128)
    store = MeasuredStore(
        [measured(cfg, 1, 100.0), measured(cfg, 2, 160.0), measured(cfg, 2, 400.0), measured(cfg, 2, 200.0)]
    )
    assert plan.throughput(store, cfg, 2) == (200.0, 3) and plan.throughput(store, cfg, 1) == (100.0, 1)
    stores = {resolve_uri(cfg["tracking"]["uri"], tmp_path): store}
    job = [*synthetic, "trainer.devices=2"]
    item = plan.plan_job(job, [], tmp_path, stores)
    assert (item.action, item.images, item.img_s) == ("train", 9 * 128, 200.0)
    assert item.seconds == pytest.approx(9 * 128 / 200.0)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (None, "unknown"),
        (0.0, "0 s"),
        (59.4, "59 s"),
        (60.0, "1.0 min"),  # a minute and more: minutes
        (90.0, "1.5 min"),
        (3599.0, "60.0 min"),
        (3600.0, "1.0 h"),  # an hour and more: hours
        (5400.0, "1.5 h"),
    ],
)
def test_a_duration_is_said_in_seconds_minutes_or_hours(seconds: float | None, said: str) -> None:
    assert plan._duration(seconds) == said


def shown(items: list[plan.Planned], swept: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    plan.show(items, swept)
    return capsys.readouterr().out


def expected_table(title: str, swept: list[str], rows: list[list[str]], caption: str) -> str:
    """What `show` prints where stdout is no terminal: the title, a markdown table, the caption."""
    from runner.console import markdown_table

    header = ["#", *swept, "action", "images to train", "img/s (measured)", "projected"]
    return f"\n{title}\n\n{markdown_table(header, rows)}\n\n{caption}\n\n"


NOTE = "; evaluation not included; a plateau schedule may stop earlier. Nothing was run or written."


def test_the_plan_table_shows_each_jobs_action_size_rate_and_time_and_the_known_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Planned = plan.Planned
    skip = Planned({"act": "relu"}, "skip", "(finished in run r1)", images=0)  # nothing to train: 0 s
    resume = Planned(
        {"act": "prelu"}, "resume", "from epoch 1 (step 6) in run r2", 768, 100.0, "median of 2 run(s)"
    )
    train = Planned({"act": "tanh"}, "train", "", 1_152_000, 200.0, "median of 3 run(s)")  # 5,760 s
    unmeasured = Planned({"act": "lrelu"}, "train", "", 1_000, None, "unknown")
    refused = Planned({"act": "x"}, "refused", "act=x: unknown act")
    rows = [
        ["0", "relu", "skip (finished in run r1)", "0", "unknown", "0 s"],
        ["1", "prelu", "resume from epoch 1 (step 6) in run r2", "768", "100 (median of 2 run(s))", "8 s"],
        ["2", "tanh", "train", "1,152,000", "200 (median of 3 run(s))", "1.6 h"],
        ["3", "lrelu", "train", "1,000", "unknown", "unknown"],
        ["4", "x", "refused act=x: unknown act", "unknown", "unknown", "unknown"],
    ]  # fmt: skip
    out = shown([skip, resume, train, unmeasured, refused], ["act"], capsys)
    caption = "projected training time: 1.6 h for 3 of 5 jobs (the others' throughput or size is unknown)"
    assert out == expected_table(
        "plan: 5 job(s), 1 skip, 1 resume, 2 train, 1 refused", ["act"], rows, caption + NOTE
    )

    out = shown([skip, resume, train], ["act"], capsys)  # every time known: the total alone
    caption = "projected training time: 1.6 h"  # 0 + 7.68 + 5,760 s
    assert out == expected_table(
        "plan: 3 job(s), 1 skip, 1 resume, 1 train", ["act"], rows[:3], caption + NOTE
    )

    out = shown([skip, resume], ["act"], capsys)  # a skip adds nothing to the total, not even a second
    assert out.endswith(f"\n\nprojected training time: 8 s{NOTE}\n\n")  # 7.68 s

    out = shown([Planned({}, "train", "", 1_000, None, "unknown")], [], capsys)
    caption = "projected training time: unknown (no earlier run of these models on this device in the store)"
    row = ["0", "train", "1,000", "unknown", "unknown"]
    assert out == expected_table("plan: 1 job(s), 1 train", [], [row], caption + NOTE)


def test_a_folder_data_sets_training_images_are_counted_from_its_files(tmp_path: Path) -> None:
    """ImageNet: the validation split is held out of train/ first, then the subset is taken (imagenet.py)."""
    from fakes import write_folder

    data = {"name": "imagenet", "root": "imnet", "val_split": 3, "subset": None}
    assert plan.train_images(data, tmp_path) is None  # no files to count: unknown
    write_folder(tmp_path / "imnet", train=6, val=2)  # 3 classes of 6 training images
    (tmp_path / "imnet" / "train" / "README").write_text("not an image of a class")
    assert plan.train_images(data, tmp_path) == 18 - 3
    assert plan.train_images({**data, "subset": 10}, tmp_path) == 10
    assert plan.train_images({**data, "subset": 20}, tmp_path) == 15
    assert plan.train_images({**data, "val_split": None}, tmp_path) == 18


@pytest.mark.parametrize(
    ("data", "images"),
    [
        ({"name": "fashion_mnist", "val_split": 5000, "subset": None}, 55000),  # 60,000 in the files
        ({"name": "fashion_mnist", "val_split": 128, "subset": 512}, 384),  # the subset, then held out
        ({"name": "fashion_mnist", "val_split": None, "subset": None}, 60000),
        ({"name": "fashion_mnist", "val_split": 100, "subset": 70000}, 59900),  # a subset past the end
        ({"name": "synthetic", "train_size": 576, "val_split": 128, "subset": None}, 448),
    ],
)
def test_a_resident_data_sets_training_images_come_from_its_facts(
    data: dict, images: int, tmp_path: Path
) -> None:
    assert plan.train_images(data, tmp_path) == images


def test_the_steps_are_unknown_where_the_images_are_and_max_steps_decides_when_set(tmp_path: Path) -> None:
    trainer = {"batch_size": 64, "max_steps": 0, "epochs": 3}
    imagenet = {"name": "imagenet", "root": "imnet", "val_split": 3, "subset": None}
    assert plan.total_steps({"trainer": trainer, "dataset": imagenet}, 1, tmp_path) == (None, 64)
    capped = {"trainer": {**trainer, "max_steps": 5}, "dataset": imagenet}
    assert plan.total_steps(capped, 4, tmp_path) == (5, 256)  # 64 images a device, on 4 devices


class Runs:
    """A store answering every search with `rates` (None: a run without images_per_s), recording the limit."""

    def __init__(self, rates: list[float | None]) -> None:
        self.rates, self.limits = rates, []

    def search_everywhere(self, query: str, max_results: int = 1000) -> list:
        from types import SimpleNamespace

        self.limits.append(max_results)
        metrics = [{} if r is None else {"images_per_s": r} for r in self.rates]
        return [SimpleNamespace(data=SimpleNamespace(metrics=m)) for m in metrics]


def test_the_throughput_is_the_median_of_the_newest_measured_runs_or_unknown(tmp_path: Path) -> None:
    cfg = compose(BASE)
    assert plan.throughput(None, cfg, 1) == (None, 0)  # no store
    assert plan.throughput(Runs([]), cfg, 1) == (None, 0)  # no earlier run on this device
    assert plan.throughput(Runs([None]), cfg, 1) == (None, 0)  # one that logged no throughput
    store = Runs([300.0, None, 100.0, 120.0, 500.0])
    assert plan.throughput(store, cfg, 1) == (210.0, 4)
    assert store.limits == [plan.RECENT_RUNS]


def test_a_checkpoint_without_its_run_in_the_store_is_continued_in_a_new_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No store here (a copied checkpoints/ folder, a deleted run): the job carries the checkpoint's steps."""
    monkeypatch.chdir(tmp_path)
    cfg = compose(job("tanh"))
    saved = {key: {} for key in checkpoint.KEYS}
    saved.update(format=checkpoint.FORMAT, config_hash=config_hash(cfg), run_id="gone")
    saved["train_state"] = asdict(checkpoint.TrainState(epoch=2, global_step=12))
    checkpoint.save(tmp_path / "checkpoints" / "runner" / config_hash(cfg) / "last.pt", saved)
    item = plan.plan_job(job("tanh"), ["act"], tmp_path, {})
    assert (item.action, item.detail) == ("continue", "from epoch 2 (step 12) in a new run")
    assert item.images == (STEPS - 12) * BATCH and item.img_s is None and item.measured_by == "unknown"
    assert item.swept == {"act": "tanh"}


def test_a_plan_with_a_refused_job_exits_2_and_says_why_in_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert plan.main([*BASE, "dataset.subset=100"]) == 2
    assert "| refused dataset.val_split" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_slurm_plan_prints_the_sbatch_script_of_one_job_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built by submitit as hydra-submitit-launcher builds it; nothing submitted, no folder made. An `srun` that
    does nothing stands in for SLURM's (submitit writes the script only where it finds one): the edit loop runs
    where SLURM is not installed."""
    slurm_bin = tmp_path / "slurm-bin"
    slurm_bin.mkdir()
    (slurm_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (slurm_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{slurm_bin}{os.pathsep}{os.environ['PATH']}")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    jobs = [["seed=0", "trainer.devices=2"], ["seed=1", "trainer.devices=2"]]
    launcher = ["hydra/launcher=slurm", "hydra.launcher.timeout_min=30", "hydra.launcher.comment='[x]'"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = plan.slurm_script(["-m", *launcher, "seed=0,1", "trainer.devices=2"], jobs)
    # Each parameter under the name submitit takes for Slurm: no "Setting 'comment' is deprecated" on stderr.
    assert [str(w.message) for w in caught] == []
    assert text is not None and text.startswith("2 Slurm job(s), submitted as:\n#!/bin/bash\n")
    for line in (
        "--array=0-1%2",  # the jobs, all at once
        "--time=30",
        "--gpus-per-node=2",  # one task per device
        "--ntasks-per-node=2",
        "--cpus-per-task=8",
        "--mem=64GB",
        "--nodes=1",
        "--signal=USR2@120",
        "--requeue",
        r"--comment='\[x]'",  # console markup escaped: printed as [x]
    ):
        assert f"\n#SBATCH {line}\n" in text, line
    assert f"\n#SBATCH --output={cwd}/multirun/" in text and "-m submitit.core._submit" in text
    assert list(cwd.iterdir()) == []
    assert plan.slurm_script(["-m", "seed=0,1"], jobs) is None  # Hydra's own launcher: no script


def test_a_slurm_plan_on_a_machine_without_slurm_says_why_it_shows_no_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning a cluster's sweep from a laptop: no srun on the PATH, where submitit refuses to build Slurm's
    script. The plan says so in a line instead of a traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # submitit looks for srun
    text = plan.slurm_script(["-m", "hydra/launcher=slurm", "seed=0,1"], [["seed=0"], ["seed=1"]])
    assert text == "2 Slurm job(s): no sbatch script here (submitit writes it only where SLURM's srun is)"
    assert list(tmp_path.iterdir()) == []


def test_a_swept_value_holding_an_equals_sign_is_shown_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    jobs, swept = plan.expand(["--multirun", *BASE, "tracking.experiment='a=1','a=2'"])  # -m spelled out
    assert swept == ["tracking.experiment"] and len(jobs) == 2
    item = plan.plan_job(jobs[0], swept, tmp_path, {})
    assert item.swept == {"tracking.experiment": "'a=1'"} and item.action == "train"
