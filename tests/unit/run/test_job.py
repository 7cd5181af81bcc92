"""The skip / resume / new decision of a job (runner/run/job.py:decide), every branch, in-process: the runs of
the store are a fake that answers `find_runs` by tag as MLflow does, the checkpoints are real files. The same
decisions through the real `runner` are in e2e/."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from runner.errors import CheckpointError
from runner.run.job import Decision, Spec, decide
from runner.train import checkpoint
from runner.train.checkpoint import TrainState
from runner.train.schedule import build_schedule

HASH, OTHER = "0123456789abcdef", "fedcba9876543210"
EXPERIMENT = "7"


def run(run_id: str, status: str, ended: str | None = None, config: str = HASH) -> SimpleNamespace:
    """An MLflow run as `find_runs` returns it: its status, its tags (runner.status when the job set it)."""
    tags = {"runner.config_hash": config, **({"runner.status": ended} if ended else {})}
    return SimpleNamespace(
        info=SimpleNamespace(run_id=run_id, status=status), data=SimpleNamespace(tags=tags)
    )


class Store:
    """The runs of experiment EXPERIMENT; `find_runs` keeps those carrying every tag asked for, newest first."""

    def __init__(self, *runs: SimpleNamespace) -> None:
        self.runs = list(runs)

    def find_runs(self, experiment_id: str, tags: dict[str, str]) -> list[Any]:
        if experiment_id != EXPERIMENT:
            return []
        return [r for r in self.runs if all(r.data.tags.get(k) == v for k, v in tags.items())]


def spec(tmp_path: Path, resume: str = "auto", resume_from: Path | None = None) -> Spec:
    return Spec(
        resolved={"resume": resume},
        choices={},
        overrides=[],
        cwd=tmp_path,
        devices=1,
        rank=0,
        uri="sqlite:///mlflow.db",
        config_hash=HASH,
        ckpt_path=tmp_path / "checkpoints" / HASH / "last.pt",
        name="job",
        resume_from=resume_from,
        carried=checkpoint.load(resume_from, HASH) if resume_from else None,
    )


def write_checkpoint(path: Path, run_id: str, config: str = HASH, epoch: int = 1) -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = build_schedule(optimizer, {"name": "constant"}, 10, "x")
    state = TrainState(epoch=epoch, global_step=6 * epoch)
    checkpoint.save(path, checkpoint.snapshot(config, run_id, model, optimizer, schedule, state))


@pytest.mark.parametrize(
    ("status", "ended", "detail"),
    [
        ("FINISHED", "finished", "finished"),
        ("FINISHED", None, "finished"),
        ("FAILED", "diverged", "diverged"),
    ],
)
def test_a_run_that_finished_or_diverged_is_skipped_even_with_a_checkpoint(
    tmp_path: Path, status: str, ended: str | None, detail: str
) -> None:
    job = spec(tmp_path)
    write_checkpoint(job.ckpt_path, "done")
    store = Store(
        run("newer", "KILLED", "killed"), run("done", status, ended), run("x", "FINISHED", config=OTHER)
    )
    assert decide(job, store, EXPERIMENT) == Decision("skip", run_id="done", detail=detail)


def test_another_configs_finished_run_is_not_this_ones(tmp_path: Path) -> None:
    store = Store(run("x", "FINISHED", "finished", config=OTHER))
    assert decide(spec(tmp_path), store, EXPERIMENT) == Decision("new")


@pytest.mark.parametrize(("status", "ended"), [("KILLED", "killed"), ("FAILED", "failed"), ("RUNNING", None)])
def test_an_interrupted_or_failed_run_with_its_checkpoint_is_resumed_in_that_run(
    tmp_path: Path, status: str, ended: str | None
) -> None:
    job = spec(tmp_path)
    write_checkpoint(job.ckpt_path, "r1")
    store = Store(run("r2", "KILLED", "killed"), run("r1", status, ended))
    assert decide(job, store, EXPERIMENT) == Decision("resume", run_id="r1")


@pytest.mark.parametrize(("status", "ended"), [("KILLED", "killed"), ("FAILED", "failed")])
def test_an_interrupted_or_failed_run_without_a_checkpoint_trains_anew(
    tmp_path: Path, status: str, ended: str | None
) -> None:
    assert decide(spec(tmp_path), Store(run("r1", status, ended)), EXPERIMENT) == Decision("new")


@pytest.mark.parametrize("others", [[], [run("r9", "KILLED", "killed")]])
def test_a_checkpoint_whose_run_is_gone_is_carried_into_a_new_run(tmp_path: Path, others: list) -> None:
    job = spec(tmp_path)
    write_checkpoint(job.ckpt_path, "deleted", epoch=2)
    decision = decide(job, Store(*others), EXPERIMENT)
    assert (decision.action, decision.run_id, decision.source) == ("new", None, job.ckpt_path)
    assert decision.carried is not None
    assert decision.carried["run_id"] == "deleted" and decision.carried["train_state"]["epoch"] == 2


def test_another_configs_checkpoint_at_the_path_is_refused_not_replaced(tmp_path: Path) -> None:
    job = spec(tmp_path)
    write_checkpoint(job.ckpt_path, "r1", config=OTHER)
    with pytest.raises(CheckpointError, match="belongs to another config"):
        decide(job, Store(run("r1", "KILLED", "killed")), EXPERIMENT)
    assert job.ckpt_path.exists()


def test_a_checkpoint_named_by_resume_from_is_carried_whatever_the_store_holds(tmp_path: Path) -> None:
    copied = tmp_path / "copied.pt"
    write_checkpoint(copied, "elsewhere", epoch=3)
    job = spec(tmp_path, resume_from=copied)
    write_checkpoint(job.ckpt_path, "done")
    decision = decide(job, Store(run("done", "FINISHED", "finished")), EXPERIMENT)
    assert (decision.action, decision.run_id, decision.source) == ("new", None, copied)
    assert decision.carried is job.carried and decision.carried["train_state"]["epoch"] == 3


def test_resume_never_trains_anew_past_a_finished_run_and_a_checkpoint(tmp_path: Path) -> None:
    job = spec(tmp_path, resume="never")
    write_checkpoint(job.ckpt_path, "r1")
    store = Store(run("r1", "KILLED", "killed"), run("r0", "FINISHED", "finished"))
    assert decide(job, store, EXPERIMENT) == Decision("new")
