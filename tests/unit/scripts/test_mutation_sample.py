"""scripts/mutation_sample.py: which mutants `make mutants` tests — a fixed random draw per module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the script imports mutation_score beside it, as `python scripts/…` allows
spec = importlib.util.spec_from_file_location("mutation_sample", SCRIPTS / "mutation_sample.py")
mutation_sample = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation_sample)
sys.path.remove(str(SCRIPTS))

BIG = [f"runner.train.loop.x_train__mutmut_{n}" for n in range(1, 101)]
SMALL = [f"runner.models.vgg.x_vgg__mutmut_{n}" for n in range(1, 8)]


def test_each_module_gives_at_most_its_share_and_a_small_module_all() -> None:
    drawn = mutation_sample.sample(BIG + SMALL, 10, seed=1)
    assert sorted(n for n in drawn if ".vgg." in n) == sorted(SMALL)
    loop = [n for n in drawn if ".loop." in n]
    assert len(loop) == 10 and set(loop) <= set(BIG)
    assert drawn == sorted(drawn)
    # Not the first ten by name or number: a draw.
    assert loop != sorted(BIG)[:10] and loop != BIG[:10]


def test_the_draw_is_the_same_whatever_the_order_and_another_seed_draws_anew() -> None:
    once = mutation_sample.sample(BIG + SMALL, 10, seed=1)
    assert mutation_sample.sample(list(reversed(BIG + SMALL)), 10, seed=1) == once
    other = mutation_sample.sample(BIG + SMALL, 10, seed=2)
    assert len(other) == len(once) and other != once
    # A module's draw does not depend on the other modules: adding mutants elsewhere leaves it.
    more = [f"runner.data.cifar.x_load__mutmut_{n}" for n in range(1, 50)]
    assert [n for n in mutation_sample.sample(BIG + more, 10, seed=1) if ".loop." in n] == [
        n for n in once if ".loop." in n
    ]


def test_all_takes_every_mutant() -> None:
    assert mutation_sample.sample(BIG + SMALL, None, seed=1) == sorted(BIG + SMALL)
