"""`runner`: the Hydra app.

    runner                                             # ResNet-20 on Fashion-MNIST, logged to ./mlflow.db
    runner model=vgg_e init=kaiming act=prelu
    runner --multirun act=relu,prelu init=kaiming,xavier_he
    runner -m +experiment=init_depth                   # a paper's table, with the verdict
    runner --plan -m +experiment=init_depth            # what it would do: train / resume / skip, and how long

Before Hydra starts, the overrides are composed and validated here (every value of a sweep too), so a
typo prints one line naming the key and what is allowed, exits 2, and leaves no run and no output dir.
A config error the schema finds costs no torch or mlflow import; once it passes, each variant is also
built on torch's meta device (a model too deep for its input, a builder that rejects a value), still
before Hydra's output directory exists.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from runner.config import CONF_DIR

# Flags after which Hydra prints something and exits without running a job.
INFO_FLAGS = (
    "--help",
    "-h",
    "--hydra-help",
    "--info",
    "-i",
    "--cfg",
    "-c",
    "--version",
    "--shell-completion",
    "-sc",
)


def _hydra_entry(exit_codes: list[int]) -> None:
    """Hydra returns nothing from a run or a sweep: each job's exit code is collected here instead."""
    import hydra

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def task(cfg: Any) -> int:
        from runner.run.job import run_job

        code = run_job(cfg)
        exit_codes.append(code)
        return code

    task()


HELP_FLAGS = ("--help", "-h")  # runner/cli/help.py: what runner is, the groups, the presets
PLAN_FLAG = "--plan"  # print what the command would do (runner/cli/plan.py) and exit: nothing runs


def main(with_helper: bool = False) -> None:
    """`with_helper`: the pre-flight starts MLflow's helper process once the torch-free checks passed."""
    argv = sys.argv[1:]
    if any(a in HELP_FLAGS for a in argv):  # runner's own page; Hydra's template: --hydra-help
        from runner.cli.help import print_help

        print_help()
        sys.exit(0)
    if not any(a.split("=")[0] in INFO_FLAGS for a in argv):
        from runner.run.preflight import precheck

        problem = precheck([a for a in argv if a != PLAN_FLAG], with_helper=with_helper)
        if problem:
            from runner.console import error

            error(problem)
            sys.exit(2)
    if PLAN_FLAG in argv:  # before Hydra's main: its launcher would create an output directory
        from runner.cli.plan import main as plan

        sys.exit(plan([a for a in argv if a != PLAN_FLAG]))
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun's other ranks: no output dir, no logging setup
        import atexit
        import shutil
        import tempfile

        scratch = tempfile.mkdtemp(prefix="runner-rank")  # Hydra creates its job dir here, not in outputs/
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        sys.argv += [
            "hydra.output_subdir=null",
            "hydra/job_logging=none",
            "hydra/hydra_logging=none",
            f"hydra.run.dir={scratch}",
            f"hydra.sweep.dir={scratch}",
        ]
    exit_codes: list[int] = []
    try:
        _hydra_entry(exit_codes)
    except KeyboardInterrupt:  # Ctrl-C before a job's training loop took over: nothing to checkpoint yet
        from runner.console import error

        error("interrupted before a job started training; run the same command again to continue")
        sys.exit(130)
    if any(exit_codes):
        sys.exit(max(exit_codes))


def run() -> None:
    """The `runner` command: `main` with MLflow in a helper process (runner/tracking/helper.py), started as soon
    as the config passed its torch-free checks, so that MLflow is imported beside torch's import and the dry
    build. A config error costs no MLflow import; --plan and torchrun's other ranks log nothing."""
    main(with_helper=PLAN_FLAG not in sys.argv[1:] and int(os.environ.get("RANK", "0")) == 0)


if __name__ == "__main__":
    run()
