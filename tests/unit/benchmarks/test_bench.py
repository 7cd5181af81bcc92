"""The benchmark as a measuring instrument (benchmarks/__main__.py): which windows it pairs, the load it reads,
the spread it reports. The timings themselves are measured by `make bench`, never here."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

from benchmarks.__main__ import (
    TIMED_WINDOWS,
    WARM_SECONDS,
    WINDOW_SECONDS,
    Case,
    Windows,
    busy_seconds,
    cpu_cases,
    other_cores,
    other_load,
    seconds_per_step,
    sized_by_time,
    spread,
)


class Clock:
    """A perf_counter that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeBare:
    """A bare loop whose k-th window takes `seconds[k]` on the clock."""

    def __init__(self, clock: Clock, seconds: list[float]) -> None:
        self.clock, self.seconds = clock, iter(seconds)

    def window(self, steps: int) -> float:
        taken = next(self.seconds)
        self.clock.now += taken
        return taken


def drive(
    monkeypatch: pytest.MonkeyPatch, runner: list[float], bare: list[float], epochs: list[int]
) -> Windows:
    """Log points as the runner's loop makes them: bare window, then runner window, ..., then a last bare."""
    clock = Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    windows = Windows(10, FakeBare(clock, bare))  # type: ignore[arg-type]
    windows.log_point(epochs[0])
    for seconds, epoch in zip(runner, epochs[1:], strict=True):
        clock.now += seconds
        windows.log_point(epoch)
    return windows


def test_each_runner_window_is_paired_with_the_mean_of_the_bare_windows_around_it(monkeypatch):
    runner = [9.0, 2.0, 3.0, 4.0]  # the first is warm-up (warm = 20 steps: log points at 10 and 20)
    bare = [7.0, 1.0, 5.0, 2.0, 6.0]
    windows = drive(monkeypatch, runner, bare, [0] * 5)
    assert windows.runner == runner and windows.other == bare
    timed_runner, timed_bare = windows.timed(warm=20)
    assert timed_runner == [2.0, 3.0, 4.0]
    assert timed_bare == [(1.0 + 5.0) / 2, (5.0 + 2.0) / 2, (2.0 + 6.0) / 2]


def test_a_window_that_holds_an_epoch_change_is_left_out_with_its_bracket(monkeypatch):
    windows = drive(monkeypatch, [9.0, 2.0, 8.0, 4.0], [7.0, 1.0, 5.0, 2.0, 6.0], [0, 0, 0, 1, 1])
    assert math.isnan(windows.runner[2])
    assert windows.timed(warm=20) == ([2.0, 4.0], [3.0, 4.0])


def test_without_a_bare_loop_only_the_runner_windows_come_back(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    windows = Windows(10, None)
    for seconds in (0.0, 9.0, 2.0, 3.0):
        clock.now += seconds
        windows.log_point(0)
    assert windows.timed(warm=20) == ([2.0, 3.0], [])


def test_spread_is_the_interquartile_range_and_the_full_range():
    ratios = [0.90, 0.97, 0.98, 0.99, 1.00, 1.01, 1.02, 1.03, 1.10]
    iqr, full = spread(ratios)
    assert iqr == pytest.approx(1.02 - 0.98) and full == pytest.approx(0.20)
    assert spread([0.98, 1.01, 0.99]) == pytest.approx((0.03, 0.03))  # below 4 repeats: the range


def test_other_cores_is_the_machines_busy_time_less_ours_per_second():
    assert other_cores((100.0, 10.0), (104.0, 12.0), seconds=2.0) == pytest.approx(1.0)
    assert other_cores((100.0, 10.0), (101.0, 12.0), seconds=2.0) == 0.0  # tick rounding: never below 0


@pytest.mark.serial  # it reads the machine's load: alone, after the parallel tests (make test runs -n)
def test_a_busy_process_beside_us_is_read_as_about_one_core():
    load: list[float] = []
    spinner = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 1.0\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(0.15)  # the interpreter's start-up is over
        with other_load(load):
            time.sleep(0.6)
    finally:
        spinner.wait()
    assert 0.6 < load[0] < 1.6
    machine, own = busy_seconds()
    assert machine > own > 0


# --- windows sized by time (make bench on a slow CPU takes about as long as on a fast one) ---------------------


def test_seconds_per_step_times_windows_of_doubling_length_until_one_lasts_a_second() -> None:
    asked: list[int] = []

    def window(steps: int) -> float:  # 0.3 s a step, plus a fixed 0.05 s per window after the warm-up
        asked.append(steps)
        return 0.3 * steps + (0.05 if len(asked) > 1 else 5.0)

    assert seconds_per_step(window) == pytest.approx((0.3 * 4 + 0.05) / 4)
    assert asked == [2, 2, 4]  # warm-up (its 5 s of lazy init left out), 0.65 s (too short), 1.25 s


@pytest.mark.parametrize(
    ("step_s", "window", "warm", "steps"),
    [
        (0.17, 2, 12, 112),  # the Xeon: 2 steps a window; a warm-up of 6 windows (2.04 s)
        (0.38, 1, 6, 56),  # the 2-core EPYC (~340 img/s at batch 128): 1 step a window, 6 to warm up
        (0.03, 13, 78, 728),  # a fast machine: longer windows in steps, the same seconds
        (5.0, 1, 2, 56),  # slower than a window: one step a window, never zero; never fewer than 2 to warm up
    ],
)
def test_windows_keep_their_count_and_last_about_the_target(step_s, window, warm, steps) -> None:
    case = Case("c", [], warm=20, steps=10 * TIMED_WINDOWS, batch=128, window=10, window_s=WINDOW_SECONDS)
    sized_by_time(case, step_s)
    assert (case.window, case.warm, case.steps, case.step_s) == (window, warm, steps, step_s)
    assert case.steps // case.window == TIMED_WINDOWS == 56  # the method is unchanged
    assert case.warm * step_s >= min(
        WARM_SECONDS, 2 * case.window * step_s
    )  # warm for ~2 s, 2 windows at least


def test_the_default_cpu_case_is_sized_by_time_and_fixed_steps_are_still_asked_for() -> None:
    (timed,) = cpu_cases(quick=False, steps=None)
    assert (
        timed.window_s == WINDOW_SECONDS == 0.4 and timed.steps // timed.window == TIMED_WINDOWS
    )  # the paper's net and augmentation, not the default run's:
    assert {"model.width=16", "dataset.augment=[crop,flip]"} <= set(timed.overrides)
    (fixed,) = cpu_cases(quick=False, steps=60)
    assert fixed.window_s == 0 and (fixed.window, fixed.steps) == (10, 60)
    assert cpu_cases(quick=True, steps=None)[0].window_s == 0  # --quick only checks that it runs
