"""`runner-eval` (issue 18): a finished run's checkpoint, or a checkpoint file, evaluated on the test set and
logged to a new run linked to its source. The numbers are the run's own: same code, same view, same device."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, finished_tiny_run, mlflow_runs

from runner.cli import evaluate as evaluate_cli
from runner.cli.evaluate import run as evaluate
from runner.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, empty_store: Path):
    """A finished tiny run (test metrics logged at the end) and its directory."""
    cwd = tmp_path_factory.mktemp("eval")
    return cwd, finished_tiny_run(cwd, empty_store, ["tracking.system_metrics=false"])


def newest(cwd: Path):
    return mlflow_runs(cwd)[-1]


def test_eval_of_a_finished_run_reproduces_its_logged_test_error_exactly(finished) -> None:
    cwd, source = finished
    assert evaluate([source.info.run_id], cwd) == 0
    run = newest(cwd)
    assert run.info.run_id != source.info.run_id and run.info.status == "FINISHED"
    assert run.info.experiment_id == source.info.experiment_id
    assert (
        run.data.tags["runner.eval_of"] == source.info.run_id and run.data.tags["runner.eval_view"] == "whole"
    )
    assert "runner.config_hash" not in run.data.tags  # a re-run of the training command never finds this run
    for name in ("loss", "top1_error", "top5_error"):
        assert run.data.metrics[f"eval_{name}"] == source.data.metrics[f"final_test_{name}"], name


def test_eval_of_a_checkpoint_file_checks_its_config_and_takes_another_view(finished) -> None:
    cwd, source = finished
    (ckpt,) = (cwd / "checkpoints").rglob("last.pt")
    assert evaluate([str(ckpt), *TINY, "--view", "dense"], cwd) == 0
    run = newest(cwd)
    assert (
        run.data.tags["runner.eval_of"] == str(ckpt.resolve())
        and run.data.tags["runner.eval_view"] == "dense"
    )
    assert {"eval_loss", "eval_top1_error", "eval_top5_error"} <= set(run.data.metrics)
    before = len(mlflow_runs(cwd))
    with pytest.raises(CheckpointError, match="belongs to another config"):
        evaluate([str(ckpt), *TINY, "model.width=8"], cwd)  # not the config it was trained with
    with pytest.raises(ConfigError, match="dataset.test_view='sideways' is not allowed"):
        evaluate([source.info.run_id, "--view", "sideways"], cwd)
    with pytest.raises(ConfigError, match="model.width=8: a run's own config.yaml decides"):
        evaluate([source.info.run_id, "model.width=8"], cwd)
    with pytest.raises(ConfigError, match="no run with that id"):
        evaluate(["0123456789abcdef0123456789abcdef"], cwd)
    assert len(mlflow_runs(cwd)) == before  # nothing written


def test_the_entry_point_hands_its_arguments_and_directory_to_run_and_exits_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def run(argv: list[str], cwd: Path) -> int:
        calls.append((argv, cwd))
        return 0

    monkeypatch.setattr(evaluate_cli, "run", run)
    monkeypatch.setattr(sys, "argv", ["runner-eval", "abc123", "--view", "dense"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        evaluate_cli.main()
    assert exit_.value.code == 0
    assert calls == [(["abc123", "--view", "dense"], tmp_path)]  # the program name is not an argument


def test_the_entry_point_says_a_refused_override_in_one_line_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real run, refused before anything is composed or opened: a run id takes only tracking.* overrides."""
    monkeypatch.setattr(sys, "argv", ["runner-eval", "abc123", "model.width=8"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        evaluate_cli.main()
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "runner: error: model.width=8: a run's own config.yaml decides what it trained; allowed overrides: "
        "tracking.*; evaluation settings: --view, --batch-size, --accelerator, --test-subset, --data-root\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_entry_point_exits_with_the_errors_own_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Refused(ConfigError):
        exit_code = 3

    def run(argv: list[str], cwd: Path) -> int:
        raise Refused("refused")

    monkeypatch.setattr(evaluate_cli, "run", run)
    monkeypatch.setattr(sys, "argv", ["runner-eval", "x"])
    with pytest.raises(SystemExit) as exit_:
        evaluate_cli.main()
    assert exit_.value.code == 3


@pytest.mark.e2e
def test_the_console_script_says_a_bad_source_in_one_line_and_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runner.cli.evaluate", "no-such-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2, result.stderr
    assert "no such checkpoint file, and no MLflow store" in result.stderr + result.stdout
    assert len((result.stderr + result.stdout).strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []
