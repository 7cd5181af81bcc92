"""What every run logs besides its metrics (issue 18): the model's multiply-adds, MLflow's system metrics and
the data set as an MLflow dataset input, read back through MLflow's client from one real tiny run (in-process,
through `runner.cli.main`); and the digest that tells two copies of a data set apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY, compose, finished_tiny_run, mlflow_runs, run_in_process

from runner.data import Context, build_data, dataset_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, empty_store: Path):
    """One finished tiny run, system metrics sampled every 0.2 s so that even a few seconds log points."""
    cwd = tmp_path_factory.mktemp("run")
    return cwd, finished_tiny_run(cwd, empty_store, ["tracking.system_metrics_seconds=0.2"])


def client(cwd: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")


@pytest.mark.whole_run
def test_a_run_is_tagged_with_its_multiply_adds_and_says_them_in_its_summary(tiny_run) -> None:
    cwd, run = tiny_run
    from runner.train.flops import run_multiply_adds

    expected = run_multiply_adds(compose(TINY))  # ResNet-20 at width 4 on 1×32×32 Fashion-MNIST
    assert run.data.tags["runner.multiply_adds"] == str(expected) and 1e5 < expected < 1e7
    local = client(cwd).download_artifacts(run.info.run_id, "model_summary.txt", str(cwd))
    assert f"multiply-adds: {expected:,}" in Path(local).read_text()
    assert "per 1×32×32 image, conv and linear layers" in Path(local).read_text()


@pytest.mark.whole_run
def test_a_run_logs_mlflow_system_metrics(tiny_run) -> None:
    cwd, run = tiny_run
    keys = set(client(cwd).get_run(run.info.run_id).data.metrics)
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= keys


@pytest.mark.whole_run
def test_system_metrics_are_off_with_one_key(tmp_path: Path, empty_store: Path) -> None:
    (tmp_path / "mlflow.db").write_bytes(empty_store.read_bytes())
    run_in_process(tmp_path, [*TINY, "tracking.system_metrics=false", "tracking.system_metrics_seconds=0.2"])
    (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "FINISHED"
    assert not [k for k in run.data.metrics if k.startswith("system/")]


@pytest.mark.whole_run
def test_a_run_logs_its_data_set_as_an_mlflow_dataset_input(tiny_run) -> None:
    cwd, run = tiny_run
    (logged,) = client(cwd).get_run(run.info.run_id).inputs.dataset_inputs
    dataset = logged.dataset
    assert dataset.name == "fashion_mnist" and len(dataset.digest) == 12
    assert dataset.source_type == "local" and Path(json.loads(dataset.source)["uri"]).is_dir()
    # TINY: 512 training images, 128 of them held out, 256 test images
    assert json.loads(dataset.profile) == {"train_size": 384, "val_size": 128, "test_size": 256}
    assert {(t.key, t.value) for t in logged.tags} == {("mlflow.data.context", "train")}


def cifar_copy(root: Path, seed: int) -> None:
    """A CIFAR-10 folder in torchvision's layout, 10 images per batch, random pixels drawn from `seed`."""
    import pickle

    import numpy as np

    from runner.data import cifar

    layout = cifar.LAYOUTS["cifar10"]
    folder = root / layout.folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in layout.train + layout.test:
        data = rng.integers(0, 256, (10, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [int(v) for v in rng.integers(0, 10, 10)]}, f)


def provenance(cwd: Path, name: str, **cfg):
    ctx = Context(torch.device("cpu"), 0, 1, 8, 0, False, cwd)
    return build_data(dataset_config(name, **cfg), ctx).provenance


def test_two_copies_of_cifar10_with_different_contents_get_different_digests(tmp_path: Path) -> None:
    for copy, seed in (("a", 0), ("b", 0), ("c", 1)):
        cifar_copy(tmp_path / copy, seed)
    a, b, c = (provenance(tmp_path, "cifar10", root=copy, val_split=10) for copy in "abc")
    assert a.digest == b.digest != c.digest  # the same bytes elsewhere: the same data; other bytes: not
    assert a.source == str((tmp_path / "a" / "cifar-10-batches-py").resolve())
    assert a.sizes == {"train": 40, "val": 10, "test": 10}


def test_synthetic_data_digests_follow_its_seed_and_imagenet_folders_their_file_list(tmp_path: Path) -> None:
    from fakes import write_folder

    small = {"train_size": 64, "test_size": 16}  # the default's 11,000 images take seconds to make and digest
    one, same, other = (provenance(tmp_path, "synthetic", data_seed=s, **small) for s in (0, 0, 1))
    assert one.digest == same.digest != other.digest and one.generated
    write_folder(tmp_path / "imagenet")
    cfg = {"root": "imagenet", "num_classes": 3, "val_split": 3, "workers": 0}
    before = provenance(tmp_path, "imagenet", **cfg)
    assert before.sizes == {"train": 15, "val": 3, "test": 6}
    (tmp_path / "imagenet" / "val" / "cat" / "0.jpg").write_bytes(b"another file")
    assert provenance(tmp_path, "imagenet", **cfg).digest != before.digest
