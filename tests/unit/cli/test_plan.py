"""`runner --plan` (issue 18): every job of a sweep with train / resume from epoch k / skip, and a projected time
from the store's measured throughput; nothing is written (store, checkpoints, Hydra's output dirs).

The store is made by hand: a FINISHED run of one job (with its images_per_s), a KILLED run of another whose
checkpoint stands at epoch 1, and nothing for the third.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
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


def test_a_job_the_plan_refuses_says_why_in_its_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (item,) = [plan.plan_job(j, [], tmp_path, {}) for j in plan.expand([*BASE, "dataset.subset=100"])[0]]
    assert item.action == "refused" and "dataset.val_split" in item.detail


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
