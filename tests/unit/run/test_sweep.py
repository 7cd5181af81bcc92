"""The sweep's parent run (runner/run/sweep.py): its name (a preset by its name, an ad-hoc sweep by what it sweeps),
the keys a sweep varies, and the Hydra callback that opens it, closes it, reports and counts the failed jobs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import STORE_GROUP
from omegaconf import DictConfig, OmegaConf

from runner import env
from runner.run.sweep import NAME_LIMIT, SweepCallback, sweep_name, swept_keys

pytestmark = pytest.mark.xdist_group(STORE_GROUP)  # opens MLflow stores: one worker imports MLflow


def test_an_ad_hoc_sweep_is_named_by_the_keys_and_values_it_sweeps() -> None:
    overrides = ["act=relu,prelu", "model.width=4", "init=kaiming,xavier_he", "+seed=range(0,3)"]
    assert sweep_name(None, overrides) == "sweep act=relu,prelu × init=kaiming,xavier_he × seed=range(0,3)"
    assert sweep_name(None, ["model.width=4"]) == "sweep"  # -m without a sweep: one job


def test_a_preset_is_named_by_the_preset_whatever_the_command_adds() -> None:
    assert sweep_name("init_depth_smoke", ["optim.lr=0.002,1e6"]) == "init_depth_smoke"


def test_a_long_sweep_name_is_cut_to_what_mlflow_stores() -> None:
    name = sweep_name(None, [f"optim.lr={','.join(str(i / 1000) for i in range(1, 200))}"])
    assert len(name) == NAME_LIMIT and name.endswith("…") and name.startswith("sweep optim.lr=0.001,0.002")


# --- the parent run of a sweep: SweepCallback, called as Hydra calls it ------------------------------------------


def multirun_config(overrides: list[str]) -> DictConfig:
    """The config Hydra hands the callback of `runner -m <overrides>`: composed for a multirun (sweeps unexpanded),
    its hydra node included, hydra.runtime.cwd the current directory."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from runner.config.compose import hydra_context

    with hydra_context():
        return GlobalHydra.instance().hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN)


def node(data: dict[str, Any]) -> DictConfig:
    """The part of a multirun config swept_keys reads."""
    return OmegaConf.create(data)


def test_swept_keys_are_the_presets_then_the_command_lines_without_the_preset_itself() -> None:
    config = node(
        {
            "hydra": {
                "sweeper": {"params": {"model": "a,b", "experiment": "x,y", "init": "k,x"}},
                "overrides": {
                    "task": ["+experiment=p", "init=k,x", "model.width=4", "~Xtra=1,2", "+seed=range(0,3)"]
                },
            }
        }
    )
    # init: once; model.width: not swept; the + and ~ are not part of a key (even one starting with X).
    assert swept_keys(config) == ["model", "init", "Xtra", "seed"]


def test_swept_keys_of_a_sweep_without_preset_params_come_from_the_command_line() -> None:
    config = node(
        {"hydra": {"sweeper": {"params": None}, "overrides": {"task": ["act=relu,prelu", "seed=1"]}}}
    )
    assert swept_keys(config) == ["act"]
    config = node({"hydra": {"sweeper": {}, "overrides": {"task": ["+experiment=a,b"]}}})
    assert swept_keys(config) == []


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`runner` started in tmp_path (no store there yet), rank 0, the sweep's variables not set: they are
    removed again after the test, whatever the callback set."""
    monkeypatch.chdir(tmp_path)
    for name in ("RANK", env.PARENT_RUN_ID, env.SWEPT_KEYS):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def runner_tags(run: Any) -> dict[str, str]:
    return {k: v for k, v in run.data.tags.items() if k.startswith(("runner.", "mlflow.note"))}


def test_a_preset_sweep_opens_one_parent_run_named_after_the_preset(
    started: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["+experiment=init_depth_small", "act=relu,prelu", "+expected.width=${model.width}"]
    # The store's path is an interpolation: the tracking node is read resolved.
    overrides = [*argv, "tracking.uri=sqlite:///${tracking.experiment}.db"]
    (started / "init_depth_small.db").write_bytes(empty_store.read_bytes())
    monkeypatch.setattr(sys, "argv", ["runner", "-m", *argv])
    config = multirun_config(overrides)

    callback = SweepCallback()
    callback.on_multirun_start(config, config_name="config")

    client = callback.tracker.client
    assert callback.tracker.uri == f"sqlite:///{(started / 'init_depth_small.db').resolve()}"
    exp = client.get_experiment_by_name("init_depth_small")
    assert exp.artifact_location == (started / "mlartifacts" / "init_depth_small").resolve().as_uri()
    (parent,) = client.search_runs([exp.experiment_id])
    run_id = parent.info.run_id
    assert callback.tracker.run_id == run_id
    assert parent.info.run_name == "init_depth_small" and parent.info.status == "RUNNING"
    command = "runner -m +experiment=init_depth_small act=relu,prelu '+expected.width=${model.width}'"
    assert runner_tags(parent) == {
        "runner.sweep": "parent",
        "runner.command": command,
        "mlflow.note.content": f"Produced by:\n\n    {command}",
        "runner.sweep_keys": "model,init,seed,act",  # the preset's, then the command line's
    }
    # What runner-report reads back: the preset, its keys and its expected block, resolved.
    expected = OmegaConf.to_container(config.expected, resolve=True)
    assert expected["width"] == 8 and expected["paper"].startswith("He et al. 2015")
    preset = started / "mlartifacts" / "init_depth_small" / run_id / "artifacts" / "preset.json"
    assert preset.read_text() == json.dumps(
        {
            "experiment": "init_depth_small",
            "sweep_keys": ["model", "init", "seed", "act"],
            "expected": expected,
        },
        indent=2,
    )
    # The jobs (other processes too) learn their parent and what their names should show.
    assert os.environ[env.PARENT_RUN_ID] == run_id
    assert os.environ[env.SWEPT_KEYS] == "model,init,seed,act"


def test_an_ad_hoc_sweep_is_named_by_what_it_sweeps_and_has_no_expected_block(
    started: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["act=relu,prelu", "init=kaiming,xavier_he", "model.width=4"]
    (started / "mlflow.db").write_bytes(empty_store.read_bytes())
    monkeypatch.setattr(sys, "argv", ["runner", "--multirun", *argv])
    callback = SweepCallback()
    callback.on_multirun_start(multirun_config(argv))

    client = callback.tracker.client
    exp = client.get_experiment_by_name("runner")  # the default experiment
    (parent,) = client.search_runs([exp.experiment_id])
    assert parent.info.run_name == "sweep act=relu,prelu × init=kaiming,xavier_he"
    assert runner_tags(parent)["runner.sweep_keys"] == "act,init"
    assert runner_tags(parent)["runner.command"] == "runner --multirun " + " ".join(argv)
    preset = started / "mlartifacts" / "runner" / parent.info.run_id / "artifacts" / "preset.json"
    assert json.loads(preset.read_text()) == {
        "experiment": None,
        "sweep_keys": ["act", "init"],
        "expected": None,
    }
    assert os.environ[env.PARENT_RUN_ID] == parent.info.run_id and os.environ[env.SWEPT_KEYS] == "act,init"


def test_torchruns_other_ranks_open_no_parent_run(started: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = multirun_config(["act=relu,prelu"])
    monkeypatch.setenv("RANK", "1")
    callback = SweepCallback()
    callback.on_multirun_start(config)
    assert callback.tracker is None and not (started / "mlflow.db").exists()
    assert env.PARENT_RUN_ID not in os.environ and env.SWEPT_KEYS not in os.environ


@pytest.fixture
def parent(tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> SweepCallback:
    """A callback whose sweep has started: its parent run open in a store under tmp_path, the variables set."""
    from runner.tracking.store import Tracker

    (tmp_path / "mlflow.db").write_bytes(empty_store.read_bytes())
    callback = SweepCallback()
    callback.tracker = Tracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "mlartifacts"), retries=()
    )
    experiment = callback.tracker.experiment_id("runner")
    callback.tracker.start(experiment, "sweep act=relu,prelu", {"runner.sweep": "parent"})
    monkeypatch.setenv(env.PARENT_RUN_ID, callback.tracker.run_id)
    monkeypatch.setenv(env.SWEPT_KEYS, "act")
    return callback


def add_job(callback: SweepCallback, status: str | None, parent_id: str | None = None) -> None:
    """A job of the sweep (or of another parent) as the store holds it, its runner.status tag `status`."""
    tracker = callback.tracker
    tags = {"mlflow.parentRunId": parent_id or tracker.run_id}
    if status is not None:
        tags["runner.status"] = status
    tracker.client.create_run(tracker.experiment_id("runner"), tags=tags)


@pytest.fixture
def sweep_report(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """The report at the end of the sweep, faked: the calls it gets (its own tests are the analysis')."""
    from runner.analysis import report

    calls: list[tuple[Any, Any]] = []
    monkeypatch.setattr(report, "sweep_report", lambda tracker, config: calls.append((tracker, config)))
    return calls


def test_the_end_of_a_sweep_reports_closes_the_parent_and_says_where_it_is(
    parent: SweepCallback, sweep_report: list[tuple[Any, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    add_job(parent, "finished")
    config = OmegaConf.create({"tracking": {"experiment": "runner"}})
    run_id = parent.tracker.run_id
    parent.on_multirun_end(config, config_name="config")

    assert sweep_report == [(parent.tracker, config)]
    assert parent.tracker.client.get_run(run_id).info.status == "FINISHED"
    out = capsys.readouterr()
    assert out.out == f"MLflow sweep (parent run) {run_id}; browse it with `make ui`\n" and out.err == ""
    assert env.PARENT_RUN_ID not in os.environ and env.SWEPT_KEYS not in os.environ


def test_a_sweep_with_failed_jobs_exits_1_after_closing_its_parent(
    parent: SweepCallback,
    sweep_report: list[tuple[Any, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_job(parent, "diverged")
    add_job(parent, "finished")
    url = f"http://127.0.0.1:5000/#/experiments/1/runs/{parent.tracker.run_id}"
    monkeypatch.setattr(parent.tracker, "run_url", lambda: url)  # a tracking server: the run's page
    with pytest.raises(SystemExit) as exit_:
        parent.on_multirun_end(OmegaConf.create({}))
    assert exit_.value.code == 1  # the jobs ran in other processes: this is their exit code
    assert parent.tracker.client.get_run(parent.tracker.run_id).info.status == "FINISHED"
    assert capsys.readouterr().out == f"MLflow sweep (parent run) {parent.tracker.run_id}: {url}\n"
    assert env.PARENT_RUN_ID not in os.environ and env.SWEPT_KEYS not in os.environ


def test_a_failing_report_marks_the_parent_failed_in_one_line_and_never_hides_the_jobs(
    parent: SweepCallback, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.analysis import report

    def broken(tracker: Any, config: Any) -> None:
        raise ValueError("no runs")

    monkeypatch.setattr(report, "sweep_report", broken)
    monkeypatch.delenv(env.PARENT_RUN_ID)  # already gone: closing must not mind
    monkeypatch.delenv(env.SWEPT_KEYS)
    parent.on_multirun_end(OmegaConf.create({}))  # no SystemExit: the jobs themselves did not fail

    assert parent.tracker.client.get_run(parent.tracker.run_id).info.status == "FAILED"
    out = capsys.readouterr()
    assert out.err == "runner: error: sweep report failed: ValueError: no runs\n"
    assert out.out == f"MLflow sweep (parent run) {parent.tracker.run_id}; browse it with `make ui`\n"


def test_the_end_of_a_sweep_whose_start_opened_nothing_does_nothing(
    sweep_report: list[tuple[Any, Any]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.PARENT_RUN_ID, "theirs")  # another rank's: not this process's to remove
    SweepCallback().on_multirun_end(OmegaConf.create({}))
    assert sweep_report == [] and capsys.readouterr() == ("", "")
    assert os.environ[env.PARENT_RUN_ID] == "theirs"


def test_failed_jobs_counts_the_sweeps_diverged_and_failed_jobs_only(parent: SweepCallback) -> None:
    for status in ("diverged", "failed", "finished", "skipped", None, "failed"):
        add_job(parent, status)
    other = parent.tracker.client.create_run(parent.tracker.experiment_id("runner")).info.run_id
    add_job(parent, "failed", parent_id=other)  # another sweep's job
    assert parent.failed_jobs() == 3
