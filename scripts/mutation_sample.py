"""The mutants `make mutants` tests: a random sample of each module's mutants, the same one on every run.

All of the package's mutants (14,677, 2026-12-07) take about two hours on 2 cores: ~0.3 s of pytest a mutant
plus its covering tests, every one of them for a survivor. A sample of --per-module mutants of each module (all
of a smaller one) estimates each module's score, with the interval scripts/mutation_score.py prints beside it,
in about twenty minutes at 20 a module. Random selection estimates the full score without the bias of choosing operators
(Zhang et al., "Is operator-based mutant selection superior to random mutant selection?", ICSE 2010).

The sample is each module's names with the lowest sha256 of "<seed>:<name>": the same on every run and machine
while the code stands, and a new --seed draws an independent one. Tests written against one sample's survivors
make that sample's score optimistic; the score after such tests is measured on a fresh seed.

    python scripts/mutation_sample.py [--per-module 20 | --all] [--seed 1] [--out FILE]

Generates the mutants into mutants/ (mutmut's own generator; an unchanged file keeps its mutants and verdicts),
writes the sample's names to --out, and prints those with no verdict yet, or a survivor's or "no tests" one
(what `mutmut run` has to test; a killed mutant stays killed while its function and tests are unchanged).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from mutation_score import RESULT, module_of

ROOT = Path(__file__).resolve().parents[1]
JUDGED = {"killed", "timeout"}


def sample(names: list[str], per_module: int | None, seed: int) -> list[str]:
    """Each module's `per_module` names of lowest sha256("<seed>:<name>") (all of them if None), sorted."""
    by_module: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_module[module_of(name)].append(name)
    chosen = []
    for module_names in by_module.values():
        module_names.sort(key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest())
        chosen += module_names[:per_module]
    return sorted(chosen)


def generate() -> None:
    """mutants/: the tree copied and every mutatable file's mutants written, as `mutmut run` starts by doing.
    mutmut's internals (pinned to 3.8 by the Makefile): its CLI generates only as part of a run."""
    from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants, setup_source_paths

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # it prints every file's path
        copy_src_dir()
        copy_also_copy_files()
        setup_source_paths()
        create_mutants(os.cpu_count() or 2)


def results() -> dict[str, str]:
    """Every generated mutant's name → mutmut's status ("not checked" before it ran)."""
    mutmut = Path(sys.executable).with_name("mutmut")
    done = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    return {m["name"]: m["status"] for m in map(RESULT.match, done.stdout.splitlines()) if m}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--per-module", type=int, default=20, help="mutants drawn per module (default 20)")
    size.add_argument("--all", action="store_true", help="every mutant (hours on 2 cores)")
    parser.add_argument("--seed", type=int, default=1, help="which sample (default 1)")
    parser.add_argument("--out", type=Path, help="write the sample's names here, one a line")
    args = parser.parse_args()
    if args.per_module < 1:
        parser.error(f"--per-module must be at least 1, not {args.per_module}")
    os.chdir(ROOT)
    generate()
    status = results()
    drawn = sample(list(status), None if args.all else args.per_module, args.seed)
    if args.out:
        args.out.write_text("".join(f"{name}\n" for name in drawn))
    print("".join(f"{name}\n" for name in drawn if status[name] not in JUDGED), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
