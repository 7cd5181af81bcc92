"""The torch threads of a job (runner/train/device.py): the cores it has, shared with the jobs beside it."""

from __future__ import annotations

import pytest
from conftest import compose

from runner.train.device import job_threads, jobs_at_once

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def test_a_job_alone_takes_every_core_and_jobs_side_by_side_share_them() -> None:
    assert job_threads(None, cores=2) == (2, "2 core(s)")
    assert job_threads(None, cores=2, jobs=2) == (1, "2 core(s) ÷ 2 processes at once")
    assert job_threads(None, cores=16, jobs=3)[0] == 5  # never more threads than cores in all
    assert job_threads(None, cores=16, jobs=2, processes=4)[0] == 2  # CPU DDP: ranks × jobs share them
    assert job_threads(None, cores=2, jobs=4)[0] == 1  # more jobs than cores: one each, not zero


def test_an_explicit_number_wins_then_omp_num_threads() -> None:
    assert job_threads(3, cores=2, jobs=2, omp="1") == (3, "trainer.threads")
    assert job_threads(None, cores=2, jobs=2, omp="2") == (2, "OMP_NUM_THREADS")
    assert job_threads(None, cores=4, jobs=2, omp="") == (2, "4 core(s) ÷ 2 processes at once")
    assert job_threads(None, cores=4, jobs=1, omp="0")[0] == 4  # not a thread count: ignored


@pytest.mark.parametrize(
    ("launcher", "cores", "expected"),
    [
        (None, 8, 1),  # a single run
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8, 1),
        ({"_target_": JOBLIB, "n_jobs": 2}, 8, 2),
        ({"_target_": JOBLIB, "n_jobs": -1}, 8, 8),  # joblib's -1: every core
        ({"_target_": JOBLIB, "n_jobs": -2}, 8, 7),  # all but one
        ({"_target_": JOBLIB, "n_jobs": -20}, 8, 1),
    ],
)
def test_jobs_at_once_reads_the_launcher(launcher: dict | None, cores: int, expected: int) -> None:
    assert jobs_at_once(launcher, cores) == expected


def test_the_default_leaves_threads_to_the_rule() -> None:
    assert compose([])["trainer"]["threads"] is None
    assert compose(["trainer.threads=1"])["trainer"]["threads"] == 1
