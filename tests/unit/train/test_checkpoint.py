"""The checkpoint file in-process (runner/train/checkpoint.py): what it restores, and each file it refuses, by its
exact line. The kill/resume tests through the real `runner` are in e2e/test_faults.py."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from runner.errors import CheckpointError
from runner.train import checkpoint
from runner.train.checkpoint import TrainState
from runner.train.schedule import build_schedule


def draws() -> tuple:
    """One draw from every generator a run uses, the cached Gaussians included."""
    return (random.random(), random.gauss(0, 1), np.random.rand(), np.random.normal(), torch.rand(2).tolist())


def test_a_checkpoint_brings_back_state_rng_and_weights(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    plateau = {"name": "plateau", "factor": 0.1, "patience": 1, "threshold": 0.01, "max_drops": 3}
    schedule = build_schedule(optimizer, plateau, total_steps=10, model="x")
    schedule.epoch_end(50.0)
    schedule.epoch_end(50.0)  # one drop
    state = TrainState(epoch=3, step_in_epoch=7, global_step=97, best=12.5, epoch_seconds=4.25,
                       sums={"loss": 1.5, "error": 3.0, "images": 64.0})  # fmt: skip
    random.seed(0), np.random.seed(0)  # then one Gaussian each: the second of its pair stays cached
    random.gauss(0, 1), np.random.normal()
    assert np.random.get_state(legacy=False)["has_gauss"] == 1 and random.getstate()[2] is not None
    path = tmp_path / "ck" / "job" / "last.pt"  # folders that do not exist yet
    checkpoint.save(path, checkpoint.snapshot("abc", "run1", model, optimizer, schedule, state))
    expected = draws()
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temporary file left

    draws()  # move every generator on
    saved = checkpoint.load(path, "abc")
    checkpoint.set_rng_state(saved["rng"])
    assert draws() == expected
    assert checkpoint.train_state(saved) == state
    assert saved["run_id"] == "run1" and saved["format"] == checkpoint.FORMAT == 2
    again = build_schedule(torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1), plateau, 10, "x")
    again.load_state_dict(saved["schedule"])
    assert (again.lr, again.drops, again.best) == (pytest.approx(0.01), 1, 50.0)
    assert torch.equal(saved["model"]["weight"], model.weight.detach())
    assert saved["optimizer"]["state"][0]["momentum_buffer"].shape == (2, 3)


def test_a_new_checkpoint_replaces_the_old_one_whole(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"n": 1})
    checkpoint.save(path, {"n": 2})
    assert torch.load(path, weights_only=True) == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def valid(**changes: object) -> dict:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = build_schedule(optimizer, {"name": "constant"}, 10, "x")
    return {**checkpoint.snapshot("abc", "run1", model, optimizer, schedule, TrainState()), **changes}


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "checkpoint {path} does not exist"),
        (b"PK\x03\x04 truncated", "checkpoint {path} cannot be read ("),
        ({"partial": [1.0, 2.0, 3.0], "model": {}},
         "checkpoint {path} was written by an older runner (running sums by position, format 1; this runner "
         "reads format 2); delete it to start afresh"),
        ({"format": 2, "config_hash": "abc"},
         "checkpoint {path} is not a runner checkpoint (no run_id); delete it to start afresh"),
        ([1, 2], "checkpoint {path} is not a runner checkpoint (no everything); delete it to start afresh"),
        ("format3", "checkpoint {path} has format 3; this runner reads format 2; delete it to start afresh"),
        ("other", "checkpoint {path} belongs to another config (hash zzz, this one is abc); delete it to start "
                  "afresh"),
    ],
)  # fmt: skip
def test_each_file_that_is_not_this_configs_checkpoint_is_refused_in_one_line(
    tmp_path: Path, content: object, line: str
) -> None:
    path = tmp_path / "last.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "format3":
        checkpoint.save(path, valid(format=3))
    elif content == "other":
        checkpoint.save(path, valid(config_hash="zzz"))
    elif content is not None:
        checkpoint.save(path, content)
    with pytest.raises(CheckpointError) as refused:
        checkpoint.load(path, "abc")
    message = str(refused.value)
    assert message.startswith(line.format(path=path)) and "\n" not in message
    checkpoint.save(path, valid())
    assert checkpoint.load(path, "abc")["config_hash"] == "abc"


@pytest.mark.skipif(torch.cuda.is_available(), reason="what a CPU machine does with a GPU checkpoint's RNG")
def test_a_gpu_checkpoints_rng_state_restores_on_a_cpu_machine(tmp_path: Path) -> None:
    """A checkpoint written on a GPU machine carries the CUDA generators' state; resumed on a CPU machine,
    the CPU generators come back and the CUDA entry is left alone (there is no CUDA to give it to)."""
    state = checkpoint.rng_state()
    expected = draws()
    checkpoint.set_rng_state({**state, "cuda": [torch.zeros(16, dtype=torch.uint8)]})
    assert draws() == expected


class NotATensor:
    """Pickled by reference: a file holding it is not something weights_only loads."""


def test_a_file_that_needs_arbitrary_unpickling_is_refused_not_run(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save({**valid(), "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError) as refused:
        checkpoint.load(path, "abc")
    assert str(refused.value).startswith(f"checkpoint {path} cannot be read (Weights only load failed")


@pytest.mark.parametrize(("error", "shown"), [(ValueError("first line\nsecond line"), "first line"),
                                              (ValueError("  "), "ValueError")])  # fmt: skip
def test_an_unreadable_file_is_named_with_the_first_line_of_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, shown: str
) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"x")

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(torch, "load", broken)
    with pytest.raises(CheckpointError) as refused:
        checkpoint.load(path, "abc")
    assert str(refused.value) == f"checkpoint {path} cannot be read ({shown}); delete it to start afresh"


def test_the_format_number_decides_not_an_old_key(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save(path, valid(partial=[1.0, 2.0, 3.0]))  # format 2 with a key named as format 1's was
    assert checkpoint.load(path, "abc")["format"] == 2


def test_a_save_that_fails_half_way_leaves_the_previous_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up in the middle of writing: the error reaches the caller, the file at the path is
    still the previous checkpoint, and no partial file is left beside it."""
    path = tmp_path / "last.pt"
    checkpoint.save(path, valid(run_id="previous"))
    real_save = torch.save

    def half_then_full(state: object, f: object) -> None:
        import io

        whole = io.BytesIO()
        real_save(state, whole)
        f.write(whole.getvalue()[: len(whole.getvalue()) // 2])  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(path, valid(run_id="next"))
    assert checkpoint.load(path, "abc")["run_id"] == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_save_is_on_disk_before_it_replaces_the_file_and_the_rename_is_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda a, b: (calls.append(f"replace {Path(b).name}"), real_replace(a, b))[1]
    )
    checkpoint.save(tmp_path / "last.pt", valid())
    assert calls == ["fsync", "replace last.pt", "fsync"]  # the file's bytes, the rename, the folder


@pytest.mark.parametrize(
    "saved_hash",
    ["abcdef0123456788", "abcdef01", "abcdef0123456789ff", "bcdef0123456789", "bbcdef0123456789"],
)
def test_a_checkpoint_whose_hash_matches_only_in_part_is_another_configs(
    tmp_path: Path, saved_hash: str
) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save(path, valid(config_hash=saved_hash))
    with pytest.raises(CheckpointError, match=f"belongs to another config \\(hash {saved_hash}, this one is"):
        checkpoint.load(path, "abcdef0123456789")
