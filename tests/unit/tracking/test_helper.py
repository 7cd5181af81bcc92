"""MLflow in a helper process (runner/tracking/helper.py): what a job asks of its tracker comes back as if the
Tracker were in-process — results, the run id, TrackingError — and the helper outlives a Ctrl-C sent to the
whole process group, so that the job can still close its run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from runner.data import Provenance
from runner.errors import TrackingError
from runner.tracking.helper import Helper, RemoteTracker, connect
from runner.tracking.store import Tracker

pytestmark = (
    pytest.mark.slow
)  # each helper imports MLflow in a fresh process (~4 s): make test, not test-fast


@pytest.fixture(scope="module")
def helper():
    started = Helper()
    yield started
    started.close()


def test_a_run_written_through_the_helper_reads_back_from_the_store(helper: Helper, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = RemoteTracker(helper, uri, str(tmp_path / "art"), ())
    experiment = tracker.experiment_id("helper")
    run_id = tracker.start(experiment, "job", {"runner.cell": "c1"})
    assert tracker.run_id == run_id  # the run id set in the helper comes back with the answer
    tracker.log_params({"lr": 0.1})
    tracker.log_series([(10, {"train_loss_interval": 2.0}), (20, {"train_loss_interval": 1.5})])
    tracker.log_text("hello\n", "note.txt")
    tracker.log_dataset("fashion_mnist", Provenance("/data/f", "abc123", {"train": 512}))
    assert tracker.last_step("train_loss_interval") == 20
    with tracker.system_metrics(0.5, resume=False):
        pass
    assert [r.info.run_id for r in tracker.find_runs(experiment, {"runner.cell": "c1"})] == [run_id]
    tracker.end("FINISHED")

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert (run.info.status, run.data.params, run.data.tags["runner.cell"]) == (
        "FINISHED",
        {"lr": "0.1"},
        "c1",
    )
    history = client.get_metric_history(run_id, "train_loss_interval")
    assert [(m.step, m.value) for m in history] == [(10, 2.0), (20, 1.5)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
    (dataset,) = run.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == ("fashion_mnist", "abc123")


def test_a_write_that_fails_in_the_helper_raises_its_tracking_error_here(
    helper: Helper, tmp_path: Path
) -> None:
    tracker = RemoteTracker(helper, f"sqlite:///{tmp_path / 'mlflow.db'}", None, ())
    with pytest.raises(TrackingError, match=r"^MLflow set parent failed 1 times at sqlite"):
        tracker.adopt("no-such-run", "no-such-parent")
    assert tracker.experiment_id("still-answers")  # one failed call leaves the helper serving


def test_the_helper_ignores_a_ctrl_c_sent_to_the_process_group(helper: Helper, tmp_path: Path) -> None:
    tracker = RemoteTracker(helper, f"sqlite:///{tmp_path / 'mlflow.db'}", None, ())
    os.kill(helper.process.pid, signal.SIGINT)
    os.kill(helper.process.pid, signal.SIGTERM)
    assert tracker.experiment_id("after-signals")
    assert helper.process.is_alive()


def test_a_closed_helper_is_a_tracking_error_and_connect_falls_back_in_process(tmp_path: Path) -> None:
    gone = Helper()
    gone.close()  # never asked: stopped at once
    assert not gone.process.is_alive()
    with pytest.raises(TrackingError, match="the MLflow helper process exited"):
        RemoteTracker(gone, f"sqlite:///{tmp_path / 'mlflow.db'}", None, ())
    assert isinstance(connect(f"sqlite:///{tmp_path / 'mlflow.db'}"), Tracker)  # none started here


def test_runs_come_back_as_plain_data_that_does_not_import_mlflow_into_the_job(tmp_path: Path) -> None:
    """find_runs and get_run answer with namespaces of MLflow's shape: unpickling MLflow's entities would
    import MLflow (~2 s) into the job's process, the cost the helper exists to take off a `runner` start."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        from runner.tracking.helper import Helper, RemoteTracker
        if __name__ == "__main__":
            helper = Helper()
            tracker = RemoteTracker(helper, "sqlite:///{tmp_path / "mlflow.db"}", "{tmp_path / "art"}", ())
            experiment = tracker.experiment_id("helper")
            run_id = tracker.start(experiment, "job", {{"runner.cell": "c1"}})
            tracker.log_params({{"lr": 0.1}})
            tracker.log_metrics({{"loss": 0.5}}, step=3)
            (found,) = tracker.find_runs(experiment, {{"runner.cell": "c1"}})
            got = tracker.get_run(run_id)
            assert found.info.run_id == got.info.run_id == run_id and found.info.status == "RUNNING"
            assert got.data.tags["runner.cell"] == "c1" and got.data.params == {{"lr": "0.1"}}
            assert got.data.metrics == {{"loss": 0.5}} and got.info.experiment_id == experiment
            print("mlflow imported:", "mlflow" in sys.modules)
        """
    )
    (tmp_path / "job.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "job.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "mlflow imported: False"
