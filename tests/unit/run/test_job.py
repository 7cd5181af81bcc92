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


# --- open the run, train, record how it ended (runner/run/job.py), with a recording stand-in for the store ------


class Tracker:
    """A RunLog that records what the job asks of it, in order."""

    run_id = "r7"

    def __init__(self, end_error: Exception | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.end_error = end_error

    def attach(self, run_id: str) -> None:
        self.calls.append(("attach", run_id))

    def start(
        self, experiment_id: str, name: str, tags: dict[str, str], parent_id: str | None = None
    ) -> None:
        self.calls.append(("start", experiment_id, name, parent_id))
        self.tags = tags

    def log_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def log_text(self, text: str, name: str) -> None:
        self.calls.append(("text", name, text))

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.calls.append(("tags", tags))

    def end(self, status: str) -> None:
        self.calls.append(("end", status))
        if self.end_error is not None:
            raise self.end_error

    def run_url(self) -> str:
        return "http://store/r7"

    def system_metrics(self, seconds: float, resume: bool) -> Any:
        import contextlib

        self.calls.append(("system_metrics", seconds, resume))
        return contextlib.nullcontext()


def full_spec(tmp_path: Path, system_metrics: bool = False) -> Spec:
    """A job spec with the keys the recording steps read (trainer, tracking, a preset's `expected`)."""
    job = spec(tmp_path)
    job.resolved = {
        "resume": "auto",
        "seed": 3,
        "model": {"name": "resnet20", "width": 4},
        "trainer": {"accelerator": "cpu", "devices": 1},
        "tracking": {"system_metrics": system_metrics, "system_metrics_seconds": 2.5},
        "expected": {"test_top1_error": 8.75},
    }
    job.choices, job.overrides = {"model": "resnet20", "experiment": "cifar"}, ["model.width=4", "seed=3"]
    return job


def trained(monkeypatch: pytest.MonkeyPatch, outcome: Any = None, error: BaseException | None = None) -> list:
    """run_training replaced: returns `outcome` or raises `error`; the JobInfo it got is appended to the list."""
    from runner.run import ddp

    jobs: list = []

    def run_training(cfg: dict[str, Any], job: Any, devices: int) -> Any:
        jobs.append(job)
        if error is not None:
            raise error
        return outcome

    monkeypatch.setattr(ddp, "run_training", run_training)
    return jobs


def test_a_finished_job_is_tagged_finished_ended_finished_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.run.job import train_and_record

    outcome = SimpleNamespace(status="finished", metrics={"test_top1_error": 8.5, "lr": 0.1})
    jobs = trained(monkeypatch, outcome)
    tracker, job = Tracker(), full_spec(tmp_path)
    assert train_and_record(job, tracker, resume=True) == 0
    assert tracker.calls == [("tags", {"runner.status": "finished"}), ("end", "FINISHED")]
    (info,) = jobs
    assert (info.config_hash, info.ckpt_path, info.cwd, info.run_id, info.tracking_uri, info.resume) == (
        HASH, str(job.ckpt_path), str(tmp_path), "r7", "sqlite:///mlflow.db", True,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "| test_top1_error | 8.5   |" in out and "lr" not in out.split("job — finished")[1]
    assert "MLflow run r7: http://store/r7" in out
    assert "expected" not in out and "8.75" not in out  # the config tree leaves a preset's claims out


def test_a_diverged_job_is_tagged_with_its_step_ended_failed_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.run.job import train_and_record

    trained(monkeypatch, SimpleNamespace(status="diverged", detail="loss nan", steps=12, metrics={}))
    tracker = Tracker()
    assert train_and_record(full_spec(tmp_path), tracker, resume=False) == 1
    assert tracker.calls == [
        (
            "tags",
            {"runner.status": "diverged", "runner.diverged_detail": "loss nan", "runner.diverged_step": 12},
        ),
        ("end", "FAILED"),
    ]


@pytest.mark.parametrize(("error", "code"), [("SIGTERM", 143), ("SIGINT", 130), ("Ctrl-C", 130)])
def test_an_interrupted_job_is_tagged_killed_ended_killed_and_exits_128_plus_the_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: str, code: int
) -> None:
    """The loop's Interrupted carries its signal; Ctrl-C before the loop took over is a KeyboardInterrupt (SIGINT)."""
    from runner.run.job import train_and_record
    from runner.train.loop import Interrupted

    signums = {"SIGTERM": 15, "SIGINT": 2}
    trained(
        monkeypatch, error=Interrupted(error, signums[error]) if error in signums else KeyboardInterrupt()
    )
    tracker, job = Tracker(), full_spec(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        train_and_record(job, tracker, resume=False)
    assert exit_.value.code == code
    assert tracker.calls == [("tags", {"runner.status": "killed"}), ("end", "KILLED")]
    err = capsys.readouterr().err
    assert (
        err.startswith("runner: error: job: ")
        and "; no checkpoint yet; run the same command again to resume\n" in err
    )
    if error in signums:
        assert f"runner: error: job: {error}; no checkpoint yet;" in err


def test_a_ctrl_c_before_the_loop_says_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.run.job import train_and_record

    trained(monkeypatch, error=KeyboardInterrupt())
    with pytest.raises(SystemExit) as exit_:
        train_and_record(full_spec(tmp_path), Tracker(), resume=False)
    # A bare KeyboardInterrupt's text is empty: the line must still say why (it once read "job: ; …").
    assert exit_.value.code == 130
    assert "runner: error: job: interrupted; no checkpoint yet;" in capsys.readouterr().err


def test_an_interrupted_job_with_a_checkpoint_says_where_it_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.run.job import train_and_record
    from runner.train.loop import Interrupted

    job = full_spec(tmp_path)
    write_checkpoint(job.ckpt_path, "r7")
    trained(monkeypatch, error=Interrupted("SIGUSR2", 12))
    with pytest.raises(SystemExit) as exit_:
        train_and_record(job, Tracker(), resume=False)
    assert exit_.value.code == 140
    assert f"job: SIGUSR2; checkpoint kept at {job.ckpt_path}; run the same" in capsys.readouterr().err


def test_a_failing_job_is_tagged_with_its_error_ended_failed_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.run.job import train_and_record

    trained(monkeypatch, error=ValueError("boom " + "x" * 600))
    tracker = Tracker()
    assert train_and_record(full_spec(tmp_path), tracker, resume=False) == 1
    tags, end = tracker.calls
    assert tags == ("tags", {"runner.status": "failed", "runner.error": ("boom " + "x" * 600)[:500]})
    assert end == ("end", "FAILED")
    assert "runner: error: job failed: ValueError: boom x" in capsys.readouterr().err


def test_a_users_error_is_raised_after_the_run_is_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.errors import ConfigError
    from runner.run.job import train_and_record

    trained(monkeypatch, error=ConfigError("dataset.root: missing"))
    tracker = Tracker()
    with pytest.raises(ConfigError, match="dataset.root: missing"):
        train_and_record(full_spec(tmp_path), tracker, resume=False)
    assert tracker.calls == [("end", "FAILED")]


def test_a_store_that_stops_taking_writes_at_the_end_gives_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.errors import TrackingError
    from runner.run.job import train_and_record

    trained(monkeypatch, SimpleNamespace(status="finished", metrics={}))
    job = full_spec(tmp_path)
    code = train_and_record(job, Tracker(end_error=TrackingError("the store is gone")), resume=False)
    assert code == TrackingError.exit_code == 2
    assert (
        f"runner: error: the store is gone; run r7 could not be closed; checkpoint kept at {job.ckpt_path}"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("resume", [False, True])
def test_system_metrics_are_sampled_at_the_configured_interval_when_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    from runner.run.job import train_and_record

    trained(monkeypatch, SimpleNamespace(status="finished", metrics={}))
    tracker = Tracker()
    train_and_record(full_spec(tmp_path, system_metrics=True), tracker, resume=resume)
    assert tracker.calls[0] == ("system_metrics", 2.5, resume)
    off = Tracker()
    train_and_record(full_spec(tmp_path), off, resume=resume)
    assert not any(call[0] == "system_metrics" for call in off.calls)


def test_a_resumed_run_is_attached_not_started(tmp_path: Path) -> None:
    from runner.run.job import open_run

    tracker, job = Tracker(), full_spec(tmp_path)
    write_checkpoint(job.ckpt_path, "r1")
    open_run(job, tracker, EXPERIMENT, Decision("resume", run_id="r1"))
    assert tracker.calls == [("attach", "r1")] and job.ckpt_path.exists()


def test_a_new_run_is_started_under_the_sweep_with_its_params_config_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """resume=never: the old checkpoint goes; the params are the group choices (not the preset) and every leaf
    but a preset's `expected` claims."""
    from runner import env
    from runner.run.job import open_run

    monkeypatch.setenv(env.PARENT_RUN_ID, "sweep9")
    tracker, job = Tracker(), full_spec(tmp_path)
    write_checkpoint(job.ckpt_path, "r1")
    open_run(job, tracker, EXPERIMENT, Decision("new"))
    assert not job.ckpt_path.exists()
    assert tracker.calls[0] == ("start", EXPERIMENT, "job", "sweep9")
    assert tracker.params == {
        "model": "resnet20", "resume": "auto", "seed": 3, "model.name": "resnet20", "model.width": 4,
        "trainer.accelerator": "cpu", "trainer.devices": 1, "tracking.system_metrics": False,
        "tracking.system_metrics_seconds": 2.5,
    }  # fmt: skip
    texts = {call[1]: call[2] for call in tracker.calls if call[0] == "text"}
    assert texts["overrides.txt"] == "model.width=4\nseed=3\n"
    assert "width: 4" in texts["config.yaml"] and "expected" in texts["config.yaml"]
    assert len(tracker.calls) == 3  # start and the two texts: no tag of a carried checkpoint


def test_a_carried_checkpoint_is_rewritten_as_the_new_runs_and_says_where_it_came_from(
    tmp_path: Path,
) -> None:
    from runner.run.job import open_run
    from runner.train import checkpoint

    copied = tmp_path / "copied.pt"
    write_checkpoint(copied, "elsewhere", epoch=3)
    tracker, job = Tracker(), full_spec(tmp_path)
    carried = checkpoint.load(copied, HASH)
    open_run(job, tracker, EXPERIMENT, Decision("new", carried=carried, source=copied))
    assert checkpoint.load(job.ckpt_path, HASH)["run_id"] == "r7"
    assert tracker.calls[-1] == ("tags", {"runner.resumed_from": str(copied)})


def test_the_run_tags_say_the_config_cell_versions_devices_command_and_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch as torch_module

    from runner.config.identity import cell_id
    from runner.run.job import run_tags

    monkeypatch.setattr("sys.argv", ["runner", "model=resnet20", "trainer.epochs=1"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    job = full_spec(tmp_path)
    tags = run_tags(job)
    command = "runner model=resnet20 trainer.epochs=1"
    assert tags["runner.config_hash"] == HASH and tags["runner.cell"] == cell_id(job.resolved)
    assert tags["runner.git_commit"] == "unknown"  # tmp_path is no git checkout
    assert tags["runner.torch"] == torch_module.__version__ and tags["runner.device"].startswith("cpu (")
    assert (tags["runner.devices"], tags["runner.cuda_visible_devices"]) == ("1", "2,3")
    assert (
        tags["runner.command"] == command and tags["mlflow.note.content"] == f"Produced by:\n\n    {command}"
    )
    assert (tags["runner.model"], tags["runner.experiment"]) == ("resnet20", "cifar")
    assert all(isinstance(v, str) for v in tags.values())


# --- prepare: the job's choices, devices, threads and the checkpoint it continues ----------------------------------

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def test_a_jobs_choices_are_its_config_groups_and_preset_not_hydras_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hydra's runtime choices also hold hydra/launcher, hydra/sweeper, … and the default_run: a run's choices
    (its name, params and tags) are only the config groups and the experiment preset."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from runner.run import job as job_module

    groups = {"model": "resnet20", "init": "kaiming", "act": "prelu", "dataset": "fashion_mnist",
              "schedule": "multistep", "optim": "sgd", "trainer": "default", "tracking": "mlflow"}  # fmt: skip
    hydras_own = {"default_run": "resnet20_fashion_mnist", "hydra/launcher": "joblib", "hydra/sweeper": "basic",
                  "hydra/output": "default"}  # fmt: skip
    hydra = SimpleNamespace(
        runtime=SimpleNamespace(
            choices={**groups, "experiment": "init_depth_small", **hydras_own}, cwd=str(tmp_path)
        ),
        overrides=SimpleNamespace(task=["act=prelu"]),
        launcher=OmegaConf.create({"_target_": JOBLIB, "n_jobs": 2}),
    )
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: hydra))
    prepared, asked = full_spec(tmp_path), []

    def prepare_spec(cfg: Any, choices: dict[str, str], overrides: list[str], cwd: Path) -> Spec:
        asked.append((cfg, choices, overrides, cwd))
        return prepared

    monkeypatch.setattr(job_module, "prepare_spec", prepare_spec)
    monkeypatch.setattr(job_module, "decide_threads", lambda spec, launcher: asked.append((spec, launcher)))
    cfg = OmegaConf.create({"seed": 3})
    assert job_module.prepare(cfg) is prepared
    assert asked == [
        (cfg, {**groups, "experiment": "init_depth_small"}, ["act=prelu"], tmp_path),
        (prepared, {"_target_": JOBLIB, "n_jobs": 2}),  # the launcher as a plain dict
    ]


@pytest.mark.parametrize(
    ("n_jobs", "threads", "why"),
    [(-1, 1, "8 core(s) ÷ 8 processes at once"), (-5, 2, "8 core(s) ÷ 4 processes at once"),
     (2, 4, "8 core(s) ÷ 2 processes at once")],
)  # fmt: skip
def test_a_joblib_sweeps_jobs_share_the_cores_counting_a_negative_n_jobs_as_joblib_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    n_jobs: int,
    threads: int,
    why: str,
) -> None:
    """joblib's n_jobs=-1 is every core, -5 all but four: each job's torch threads are the cores ÷ jobs at once."""
    from runner.run.job import decide_threads
    from runner.train import device

    monkeypatch.setattr(device, "usable_cores", lambda: 8)
    for name in ("OMP_NUM_THREADS", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    job = full_spec(tmp_path)
    job.resolved["trainer"]["threads"] = None
    decide_threads(job, {"_target_": JOBLIB, "n_jobs": n_jobs})
    assert job.resolved["trainer"]["threads"] == threads
    assert capsys.readouterr().out == f"torch threads: {threads} ({why})\n"


def test_a_torchrun_workers_spec_has_the_worker_envs_rank_and_world_size_and_the_checkpoint_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under torchrun (WORLD_SIZE > 1) the devices are the world size, not trainer.devices (1 here), and the rank
    is RANK; resume_from is resolved against the start directory and its checkpoint is loaded and checked."""
    from conftest import TINY, compose
    from omegaconf import OmegaConf

    from runner import env
    from runner.config.identity import config_hash
    from runner.run import preflight
    from runner.run.job import prepare_spec

    monkeypatch.setattr(preflight, "check_parts", lambda cfg: None)  # its dry forward pass: test_preflight's
    for name in (env.SPAWNED, env.SWEPT_KEYS, "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    resolved = compose([*TINY, "resume_from=saved/copied.pt"])
    chash = config_hash(resolved)  # resume_from is not hashed: the copied checkpoint is this config's
    write_checkpoint(tmp_path / "saved" / "copied.pt", "elsewhere", config=chash, epoch=2)
    spec = prepare_spec(
        OmegaConf.create(resolved), {"model": "resnet20"}, ["act=relu"], tmp_path, check_files=False
    )
    assert resolved["trainer"]["devices"] == 1 and (spec.devices, spec.rank) == (2, 1)
    assert spec.resume_from == (tmp_path / "saved" / "copied.pt").resolve()
    assert spec.carried is not None
    assert (spec.carried["run_id"], spec.carried["train_state"]["epoch"]) == ("elsewhere", 2)
    assert (spec.resolved, spec.config_hash, spec.uri) == (
        resolved,
        chash,
        f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}",
    )
    assert spec.ckpt_path == (tmp_path / "checkpoints" / "runner" / chash / "last.pt").resolve()


def test_a_users_error_before_the_run_is_one_line_and_the_jobs_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from omegaconf import OmegaConf

    from runner.errors import ConfigError
    from runner.run import job as job_module

    def prepare(cfg: Any) -> Spec:
        raise ConfigError("trainer.epochs=0: must be at least 1")

    monkeypatch.setattr(job_module, "prepare", prepare)
    assert job_module.run_job(OmegaConf.create({})) == ConfigError.exit_code == 2
    assert capsys.readouterr().err == "runner: error: trainer.epochs=0: must be at least 1\n"


def test_the_git_commit_is_the_checkouts_short_hash_as_text() -> None:
    import subprocess

    from conftest import ROOT

    from runner.run.job import git_commit

    asked = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert git_commit(ROOT) == (asked.stdout.strip() or "unknown")
    assert isinstance(git_commit(ROOT), str)  # a tag's value: text, never b'…'
