"""`runner-eval` (issue 18): a finished run's checkpoint, or a checkpoint file, evaluated on the test set and
logged to a new run linked to its source. The numbers are the run's own: same code, same view, same device."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, STORE_GROUP, TINY, compose, finished_tiny_run, mlflow_runs

from runner.cli import evaluate as evaluate_cli
from runner.cli.evaluate import run as evaluate
from runner.errors import CheckpointError, ConfigError

pytestmark = pytest.mark.xdist_group(STORE_GROUP)  # opens MLflow stores: one worker imports MLflow


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, empty_store: Path):
    """A finished tiny run (test metrics logged at the end) and its directory."""
    cwd = tmp_path_factory.mktemp("eval")
    return cwd, finished_tiny_run(cwd, empty_store, ["tracking.system_metrics=false"])


def newest(cwd: Path):
    return mlflow_runs(cwd)[-1]


@pytest.mark.whole_run
def test_eval_of_a_finished_run_reproduces_its_logged_test_error_exactly(
    finished, capsys: pytest.CaptureFixture[str]
) -> None:
    cwd, source = finished
    capsys.readouterr()
    assert evaluate([source.info.run_id], cwd) == 0
    run = newest(cwd)
    assert run.info.run_id != source.info.run_id and run.info.status == "FINISHED"
    assert run.info.experiment_id == source.info.experiment_id
    assert run.info.run_name == f"eval-{source.info.run_name}-whole"
    out = capsys.readouterr().out
    assert f"\neval of {source.info.run_id} (whole)\n" in out  # the summary table's title
    assert f"| eval_top1_error | {run.data.metrics['eval_top1_error']:.4g} " in out
    assert out.endswith(f"\nMLflow run {run.info.run_id} (runner.eval_of={source.info.run_id})\n")
    assert (
        run.data.tags["runner.eval_of"] == source.info.run_id and run.data.tags["runner.eval_view"] == "whole"
    )
    assert "runner.config_hash" not in run.data.tags  # a re-run of the training command never finds this run
    for name in ("loss", "top1_error", "top5_error"):
        assert run.data.metrics[f"eval_{name}"] == source.data.metrics[f"final_test_{name}"], name


@pytest.mark.whole_run
def test_eval_of_a_checkpoint_file_checks_its_config_and_takes_another_view(finished) -> None:
    cwd, source = finished
    (ckpt,) = (cwd / "checkpoints").rglob("last.pt")
    assert evaluate([str(ckpt), *TINY, "--view", "dense"], cwd) == 0
    run = newest(cwd)
    assert (
        run.data.tags["runner.eval_of"] == str(ckpt.resolve())
        and run.data.tags["runner.eval_view"] == "dense"
    )
    # A file's run goes to its config's experiment, named after the file's (config hash) directory.
    assert run.info.experiment_id == source.info.experiment_id
    assert run.info.run_name == f"eval-{ckpt.parent.name}-dense"
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


def test_the_arguments_parse_to_the_source_its_overrides_and_typed_flags() -> None:
    args = evaluate_cli.parse(
        ["abc123", "tracking.uri=sqlite:///other.db", "--view", "dense", "--batch-size", "32"]
        + ["--accelerator", "cpu", "--test-subset", "100", "--data-root", "/data"]
    )
    assert vars(args) == {
        "source": "abc123",
        "overrides": ["tracking.uri=sqlite:///other.db"],
        "view": "dense",
        "batch_size": 32,  # numbers, as the schema's rules for the keys want them
        "accelerator": "cpu",
        "test_subset": 100,
        "data_root": "/data",
    }
    assert vars(evaluate_cli.parse(["abc123"])) == {
        "source": "abc123",
        "overrides": [],
        **dict.fromkeys(["view", "batch_size", "accelerator", "test_subset", "data_root"]),  # the run's own
    }


def test_runner_eval_help_names_the_program_what_it_does_and_each_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        evaluate_cli.parse(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert text.startswith("usage: runner-eval [-h] [--view VIEW] [--batch-size BATCH_SIZE]")
    for said in (
        "Evaluate a run's checkpoint (by run id) or a checkpoint file on the test set; log eval_* metrics to a "
        "new MLflow run tagged runner.eval_of.",
        "source an MLflow run id, or a checkpoint file (last.pt)",
        "overrides run id: tracking.* only; file: the training overrides",
        "--view VIEW test view: whole, center, ten_crop, dense (default: the run's)",
        "--batch-size BATCH_SIZE evaluation batch size (default: the run's)",
        "--accelerator ACCELERATOR auto, cpu or cuda (default: the run's)",
        "--test-subset TEST_SUBSET the first N test images (default: the run's)",
        "--data-root DATA_ROOT where the data set lies on this machine (default: the run's)",
    ):
        assert said in text, said


def test_the_flags_change_a_copy_of_the_training_config_for_the_evaluation_only() -> None:
    cfg = compose(TINY)
    args = evaluate_cli.parse(["x", "--view", "center", "--batch-size", "16", "--data-root", "/data"])
    out = evaluate_cli.with_flags(cfg, args)
    assert (out["dataset"]["test_view"], out["trainer"]["batch_size"], out["dataset"]["root"]) == (
        "center",
        16,
        "/data",
    )
    assert (
        out["dataset"]["test_subset"] == 256
        and out["trainer"]["accelerator"] == cfg["trainer"]["accelerator"]
    )
    assert cfg == compose(TINY)  # the training config itself is untouched
    with pytest.raises(ConfigError, match=r"trainer\.batch_size"):
        evaluate_cli.with_flags(cfg, evaluate_cli.parse(["x", "--batch-size", "0"]))


class FakeStore:
    """A store holding one run (or none): its config.yaml text and its checkpoint file (None: no such artifact)."""

    uri = "sqlite:////store/mlflow.db"

    def __init__(self, run_id: str | None, config_text: str | None, checkpoint_file: Path | None) -> None:
        self.id, self.config_text, self.checkpoint_file = run_id, config_text, checkpoint_file
        self.downloads: list[tuple[str, str, Path]] = []

    def run_id_or_none(self, run_id: str) -> str | None:
        return run_id if run_id == self.id else None

    def get_run(self, run_id: str):
        from types import SimpleNamespace

        return SimpleNamespace(info=SimpleNamespace(experiment_id="7", run_name="resnet20-relu"))

    def read_artifact_text(self, run_id: str, path: str) -> str | None:
        return self.config_text if (run_id, path) == (self.id, "config.yaml") else None

    def download_artifact(self, run_id: str, path: str, dst: Path) -> Path | None:
        self.downloads.append((run_id, path, dst))
        ok = (run_id, path) == (self.id, "checkpoint/last.pt") and self.checkpoint_file is not None
        return self.checkpoint_file if ok else None


def write_checkpoint(path: Path, config_hash: str) -> None:
    from runner.train import checkpoint

    saved = {key: {} for key in checkpoint.KEYS}
    saved.update(
        format=checkpoint.FORMAT, config_hash=config_hash, run_id="r1", train_state={"global_step": 6}
    )
    checkpoint.save(path, saved)


def test_a_runs_config_and_checkpoint_come_from_its_artifacts_with_the_store_we_are_in(
    tmp_path: Path,
) -> None:
    """The run's config.yaml names the store it was trained with; the evaluation logs where it runs now."""
    import yaml

    from runner.config.identity import config_hash

    trained = compose(TINY)
    here = compose([*TINY, "tracking.uri=sqlite:///here.db", "tracking.experiment=elsewhere"])
    write_checkpoint(tmp_path / "last.pt", config_hash(trained))
    store = FakeStore("r1", yaml.safe_dump(trained), tmp_path / "last.pt")
    cfg, saved, experiment_id, name = evaluate_cli.from_run(store, "r1", here, tmp_path / "dl")
    assert cfg == {**trained, "tracking": here["tracking"]}
    assert saved["config_hash"] == config_hash(trained) and saved["train_state"] == {"global_step": 6}
    assert (experiment_id, name) == ("7", "resnet20-relu")
    assert store.downloads == [("r1", "checkpoint/last.pt", tmp_path / "dl")]


def test_a_runs_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    import yaml

    from runner.errors import CheckpointError

    write_checkpoint(tmp_path / "last.pt", "0123456789abcdef")
    store = FakeStore("r1", yaml.safe_dump(compose(TINY)), tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="belongs to another config"):
        evaluate_cli.from_run(store, "r1", compose(TINY), tmp_path)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (
            FakeStore(None, None, None),
            "r1: no such checkpoint file, and no run with that id in sqlite:////store/mlflow.db",
        ),
        (FakeStore("r1", None, None), "run r1 has no config.yaml artifact: not a runner run"),
        (
            FakeStore("r1", "model: {}\n", None),
            "run r1 has no checkpoint/last.pt artifact (unfinished, or tracking.log_checkpoint=false); pass the "
            "checkpoint file instead",
        ),
    ],
)
def test_a_run_without_what_evaluation_needs_is_refused_naming_what_is_missing(
    store: FakeStore, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        evaluate_cli.from_run(store, "r1", compose([]), tmp_path)
    assert str(refused.value) == message


class RecordingTracker:
    """What log_eval_run writes, in order."""

    run_id = "new-run"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def test_the_eval_run_records_its_source_view_config_and_metrics_at_the_checkpoints_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    from runner.config.schema import flatten

    monkeypatch.setattr(sys, "argv", ["runner-eval", "my runner dir/last.pt", "--view", "dense"])
    cfg = evaluate_cli.with_flags(compose(TINY), evaluate_cli.parse(["x", "--view", "dense"]))
    saved = {"config_hash": "abcd", "train_state": {"global_step": 42}}
    tracker = RecordingTracker()
    run_id = evaluate_cli.log_eval_run(
        tracker, "7", "resnet20-relu", "/ckpt/last.pt", cfg, saved, {"loss": 0.5, "top1_error": 12.5}
    )
    assert run_id == "new-run"
    command = "runner-eval 'my runner dir/last.pt' --view dense"  # only the program's name is replaced
    tags = {
        "runner.eval_of": "/ckpt/last.pt",
        "runner.eval_view": "dense",
        "runner.eval_config_hash": "abcd",
        "runner.model": "resnet20",
        "runner.dataset": "fashion_mnist",
        "runner.status": "finished",
        "runner.command": command,
        "mlflow.note.content": f"Evaluation of /ckpt/last.pt, produced by:\n\n    {command}",
    }
    params = flatten({k: v for k, v in cfg.items() if k != "expected"})
    assert not any(k.startswith("expected") for k in params)
    assert tracker.calls == [
        ("start", ("7", "eval-resnet20-relu-dense", tags), {}),
        ("log_params", (params,), {}),
        ("log_text", (yaml.safe_dump(cfg, sort_keys=False), "config.yaml"), {}),
        ("log_metrics", ({"eval_loss": 0.5, "eval_top1_error": 12.5},), {"step": 42}),
        ("end", ("FINISHED",), {}),
    ]


def test_the_store_opened_is_the_configs_resolved_against_the_start_directory(tmp_path: Path) -> None:
    tracking = {"uri": "http://127.0.0.1:1", "artifact_root": "arts", "retry_seconds": [0.5, 2]}
    tracker = evaluate_cli.open_store(tracking, tmp_path)
    assert (tracker.uri, tracker.artifact_root, tracker.retries) == (
        "http://127.0.0.1:1",
        str(tmp_path.resolve() / "arts"),
        (0.5, 2),
    )


def test_a_source_that_is_neither_a_file_nor_a_run_in_an_existing_store_is_refused_writing_nothing(
    tmp_path: Path,
) -> None:
    # A run id takes tracking.* overrides (where its store is): the store looked in is the override's.
    with pytest.raises(ConfigError) as refused:
        evaluate(["no-such-run", "tracking.uri=sqlite:///elsewhere.db"], tmp_path)
    assert str(refused.value) == (
        f"no-such-run: no such checkpoint file, and no MLflow store at sqlite:///{tmp_path.resolve()}/elsewhere.db"
    )
    assert list(tmp_path.iterdir()) == []  # opening the missing sqlite file would have created it


def test_a_pt_source_is_a_checkpoint_file_even_where_it_is_missing(tmp_path: Path) -> None:
    """A .pt name is taken for a file (its training overrides allowed), so a typo in it names the file."""
    with pytest.raises(CheckpointError) as refused:
        evaluate(["runs/last.pt", "model.width=8"], tmp_path)
    assert str(refused.value) == f"checkpoint {tmp_path.resolve()}/runs/last.pt does not exist"
    assert list(tmp_path.iterdir()) == []
