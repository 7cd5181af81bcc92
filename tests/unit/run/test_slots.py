"""A parallel sweep job on its GPU slot (runner/run/slots.py `OnSlot`): the slot it claims, the devices, threads and
start method it sets before CUDA starts, and the line it appends to gpu-slots.jsonl. CUDA, torch, the CPU count,
the clock and Hydra's job number are faked: no GPU and no worker process needed."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hydra.core.hydra_config import HydraConfig

from runner.run import slots
from runner.run.slots import LOCK_DIR, LOG_NAME, OnSlot, _cuda_initialised


class FakeTorch:
    """What OnSlot and _cuda_initialised ask torch: whether CUDA started, and the thread count it is given."""

    def __init__(self, cuda_started: bool = False) -> None:
        self.cuda = SimpleNamespace(is_initialized=lambda: cuda_started)
        self.threads: list[int] = []

    def set_num_threads(self, n: int) -> None:
        self.threads.append(n)


class StartMethod:
    """multiprocessing's start method as a worker sees it: what it reports, and what OnSlot sets."""

    def __init__(self, current: str | None) -> None:
        self.current = current
        self.asked: list[Any] = []
        self.set: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def get(self, allow_none: Any = False) -> str | None:
        self.asked.append(allow_none)
        return self.current

    def set_method(self, *args: Any, **kwargs: Any) -> None:
        self.set.append((args, kwargs))


def never_waits(seconds: float) -> None:
    """A free slot is taken at once: a worker polling for one here would loop forever."""
    pytest.fail(f"claim_slot waited {seconds} s although a slot was free")


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A fresh worker process, faked: no slot held yet, torch imported without CUDA, 16 CPUs, job 3 of the sweep,
    a clock reading 100.0 then 105.5, a start method that is loky's, and no CUDA_VISIBLE_DEVICES or
    OMP_NUM_THREADS in its environment."""
    held: dict[str, tuple[int, int]] = {}
    monkeypatch.setattr(slots, "_held", held)  # this process's real slots stay untouched
    torch = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", torch)  # the real torch's thread count is the session's
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    clock = iter([100.0, 105.5])
    monkeypatch.setattr(slots, "time", SimpleNamespace(time=lambda: next(clock), sleep=never_waits))
    monkeypatch.setattr(HydraConfig, "get", lambda: SimpleNamespace(job=SimpleNamespace(num=3)))
    start = StartMethod("loky")
    monkeypatch.setattr(multiprocessing, "get_start_method", start.get)
    monkeypatch.setattr(multiprocessing, "set_start_method", start.set_method)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield SimpleNamespace(torch=torch, start=start, held=held)
    for _, fd in held.values():
        os.close(fd)


def log_lines(sweep_dir: Path) -> list[dict[str, Any]]:
    text = (sweep_dir / LOG_NAME).read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def test_a_job_runs_on_the_first_free_slot_with_its_gpus_threads_and_start_method_set(
    tmp_path: Path, worker: SimpleNamespace
) -> None:
    # Another worker holds slot 0: this one must take slot 1 and its GPUs "2,3".
    (tmp_path / LOCK_DIR).mkdir()
    other = os.open(tmp_path / LOCK_DIR / "slot-0.lock", os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    seen: list[Any] = []

    def task(cfg: Any) -> str:
        seen.append((cfg, os.environ["CUDA_VISIBLE_DEVICES"], os.environ["OMP_NUM_THREADS"]))
        return "job result"

    cfg = {"seed": 1}
    try:
        assert OnSlot(task, ["0,1", "2,3", "0,1", "2,3"], str(tmp_path))(cfg) == "job result"
    finally:
        os.close(other)
    assert seen == [(cfg, "2,3", "4")]  # set before the job starts: 16 CPUs over 4 slots
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3" and os.environ["OMP_NUM_THREADS"] == "4"
    assert worker.torch.threads == [4]  # torch already imported: told too
    assert worker.held[str(tmp_path / LOCK_DIR)][0] == 1 and (tmp_path / LOCK_DIR / "slot-1.lock").exists()
    # loky made itself the default start method: a DDP job's workers need spawn instead.
    assert worker.start.asked == [True]
    assert worker.start.set == [(("spawn",), {"force": True})]
    assert log_lines(tmp_path) == [
        {"job": 3, "devices": "2,3", "slot": 1, "pid": os.getpid(), "start": 100.0, "end": 105.5}
    ]


def test_a_failed_job_is_logged_too_and_lines_are_appended(tmp_path: Path, worker: SimpleNamespace) -> None:
    (tmp_path / LOG_NAME).write_text('{"job": 0}\n')  # an earlier job's line stays

    def task(cfg: Any) -> None:
        raise ValueError("diverged")

    with pytest.raises(ValueError, match="diverged"):
        OnSlot(task, ["0"], str(tmp_path))(None)
    assert log_lines(tmp_path) == [
        {"job": 0},
        {"job": 3, "devices": "0", "slot": 0, "pid": os.getpid(), "start": 100.0, "end": 105.5},
    ]


def test_threads_never_drop_below_one_and_an_unknown_cpu_count_counts_as_one(
    tmp_path: Path, worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    OnSlot(lambda cfg: None, ["0", "1", "2", "3"], str(tmp_path / "a"))(None)
    assert os.environ["OMP_NUM_THREADS"] == "1" and worker.torch.threads == [1]  # 2 // 4 = 0 → 1

    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    monkeypatch.setattr(slots, "time", SimpleNamespace(time=lambda: 0.0, sleep=never_waits))
    OnSlot(lambda cfg: None, ["0"], str(tmp_path / "b"))(None)
    assert os.environ["OMP_NUM_THREADS"] == "1" and worker.torch.threads == [1, 1]


def test_a_thread_count_the_user_set_is_kept_and_torch_is_not_imported_for_it(
    tmp_path: Path, worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    OnSlot(lambda cfg: None, ["0", "1"], str(tmp_path / "a"))(None)
    assert os.environ["OMP_NUM_THREADS"] == "7" and worker.torch.threads == []

    # No torch in this worker yet: the count goes to the environment only, and nothing imports torch.
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(slots, "time", SimpleNamespace(time=lambda: 0.0, sleep=never_waits))
    OnSlot(lambda cfg: None, ["0", "1"], str(tmp_path / "b"))(None)
    assert os.environ["OMP_NUM_THREADS"] == "8" and "torch" not in sys.modules


def test_a_worker_whose_start_method_is_not_lokys_keeps_it(tmp_path: Path, worker: SimpleNamespace) -> None:
    worker.start.current = "fork"
    OnSlot(lambda cfg: None, ["0"], str(tmp_path))(None)
    assert worker.start.asked == [True] and worker.start.set == []


def test_cuda_started_on_other_devices_stops_the_job_before_it_runs(
    tmp_path: Path, worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slots, "_cuda_initialised", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    ran: list[Any] = []
    with pytest.raises(
        RuntimeError, match=r"^CUDA was initialised in this worker before it took GPU\(s\) 1,2$"
    ):
        OnSlot(ran.append, ["1,2"], str(tmp_path))(None)
    assert ran == [] and os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_cuda_started_on_the_slots_own_devices_lets_the_job_run(
    tmp_path: Path, worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slots, "_cuda_initialised", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")
    assert OnSlot(lambda cfg: "ran", ["1,2"], str(tmp_path))(None) == "ran"


def test_devices_already_visible_without_cuda_started_are_simply_replaced(
    tmp_path: Path, worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # inherited from the sweep process; CUDA not started
    assert OnSlot(lambda cfg: "ran", ["1,2"], str(tmp_path))(None) == "ran"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,2"


def test_cuda_counts_as_initialised_only_where_torch_is_imported_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(cuda_started=True))
    assert _cuda_initialised() is True
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(cuda_started=False))
    assert _cuda_initialised() is False
    monkeypatch.delitem(sys.modules, "torch")  # never imported: CUDA cannot have started
    assert _cuda_initialised() is False


# --- claiming a slot ------------------------------------------------------------------------------------------


class NoWait:
    """slots.time for claim_slot: each sleep recorded; `then` runs at the first (another worker exits)."""

    def __init__(self, then: Callable[[], None] | None = None) -> None:
        self.sleeps: list[float] = []
        self.then = then

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.then is None or len(self.sleeps) > 1:
            pytest.fail(f"claim_slot waited ({self.sleeps}) although a slot was free")
        self.then()


def lock(path: Path) -> int:
    """Hold `path`'s flock the way another worker process would (its own open file description)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases it again if taken


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, tuple[int, int]]]:
    """A worker that holds no slot yet, and whose torch has not started CUDA; its slots released at the end."""
    held: dict[str, tuple[int, int]] = {}
    monkeypatch.setattr(slots, "_held", held)
    monkeypatch.setitem(sys.modules, "torch", FakeTorch())
    yield held
    for _, fd in held.values():
        os.close(fd)


def test_a_busy_slot_is_passed_over_for_the_next_free_one_without_waiting(
    tmp_path: Path, fresh: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slots, "time", NoWait())
    locks = tmp_path / "sweep" / LOCK_DIR  # made by the first worker to claim
    locks.mkdir(parents=True)
    others = [lock(locks / "slot-0.lock"), lock(locks / "slot-2.lock")]
    try:
        assert slots.claim_slot(str(locks), 4) == 1
        assert slots.claim_slot(str(locks), 4) == 1  # the same slot for every later job of this worker
    finally:
        for fd in others:
            os.close(fd)
    assert not is_free(locks / "slot-1.lock")
    assert sorted(p.name for p in locks.iterdir()) == [f"slot-{i}.lock" for i in range(3)]  # 3 not tried


def test_lock_files_are_made_readable_by_all_and_executable_by_none(
    tmp_path: Path, fresh: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slots, "time", NoWait())
    umask = os.umask(0o022)  # the usual one: what the mode asked for is what the file gets
    try:
        assert slots.claim_slot(str(tmp_path / "new" / LOCK_DIR), 2) == 0
    finally:
        os.umask(umask)
    assert sorted(p.name for p in (tmp_path / "new" / LOCK_DIR).iterdir()) == ["slot-0.lock"]
    assert (tmp_path / "new" / LOCK_DIR / "slot-0.lock").stat().st_mode & 0o777 == 0o644


def test_with_every_slot_busy_a_worker_polls_until_one_is_released(
    tmp_path: Path, fresh: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A finished worker's replacement may start before the old process has exited and released its slot.
    locks = tmp_path / LOCK_DIR
    locks.mkdir()
    others = [lock(locks / "slot-0.lock"), lock(locks / "slot-1.lock")]
    clock = NoWait(then=lambda: os.close(others.pop(1)))  # the holder of slot 1 exits during the wait
    monkeypatch.setattr(slots, "time", clock)
    try:
        assert slots.claim_slot(str(locks), 2, poll_s=0.05) == 1
    finally:
        for fd in others:
            os.close(fd)
    assert clock.sleeps == [0.05]


def test_a_worker_that_used_cuda_cannot_move_to_another_sweeps_slot(
    tmp_path: Path, fresh: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slots, "time", NoWait())
    first, second = tmp_path / "sweep-1" / LOCK_DIR, tmp_path / "sweep-2" / LOCK_DIR
    assert slots.claim_slot(str(first), 2) == 0
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(cuda_started=True))  # bound to the first slot's GPUs
    with pytest.raises(RuntimeError) as refused:
        slots.claim_slot(str(second), 2)
    assert str(refused.value) == "this worker already used CUDA on another sweep's devices; cannot switch"
    assert not is_free(first / "slot-0.lock") and not second.exists()  # its slot kept, nothing claimed


def test_a_worker_without_cuda_moves_to_the_next_sweep_and_releases_its_old_slot(
    tmp_path: Path, fresh: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # loky reuses a worker for the next sweep of one `runner -m` (a preset's sweeps run one after another).
    monkeypatch.setattr(slots, "time", NoWait())
    first, second = tmp_path / "sweep-1" / LOCK_DIR, tmp_path / "sweep-2" / LOCK_DIR
    assert slots.claim_slot(str(first), 2) == 0
    assert slots.claim_slot(str(second), 2) == 0
    assert is_free(first / "slot-0.lock") and not is_free(second / "slot-0.lock")
    assert list(fresh) == [str(second)]


# --- the pre-flight's check of the launcher -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("launcher", "line"),
    [
        ({"gpus": [0, 1], "devices": 3, "jobs_per_gpu": 1}, "trainer.devices=3 but hydra.launcher.gpus has 2: ['0', '1']"),
        ({"gpus": [0, 1], "devices": 1, "jobs_per_gpu": 0}, "hydra.launcher.jobs_per_gpu=0; allowed: 1 or more"),
        ({"gpus": "0,1", "devices": "auto", "jobs_per_gpu": "-1"}, "hydra.launcher.jobs_per_gpu=-1; allowed: 1 or more"),
        ({"gpus": [], "devices": 1, "jobs_per_gpu": 1}, "hydra/launcher=gpus: no GPU is visible; list them with hydra.launcher.gpus=[0,1]"),
    ],
)  # fmt: skip
def test_the_launcher_without_the_gpus_its_jobs_need_is_one_config_error_line(
    launcher: dict[str, Any], line: str
) -> None:
    from runner.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        slots.check_launcher(launcher)
    assert str(refused.value) == line
    assert refused.value.__cause__ is None and refused.value.__suppress_context__  # no traceback chain


def test_the_launcher_with_its_gpus_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    slots.check_launcher({"gpus": [0, 1, 2, 3], "devices": 2, "jobs_per_gpu": "2"})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # no list given: the sweep's own GPUs
    slots.check_launcher({"gpus": None, "devices": "auto", "jobs_per_gpu": 1})


def test_the_launcher_without_joblib_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from runner.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "hydra_plugins.hydra_joblib_launcher" else real(name, *a),
    )
    with pytest.raises(ConfigError) as refused:
        slots.check_launcher({"gpus": [0], "devices": 1, "jobs_per_gpu": 1})
    assert str(refused.value) == "hydra/launcher=gpus needs hydra-joblib-launcher: pip install -e '.[gpu]'"
