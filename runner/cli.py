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

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

from runner.config import CONF_DIR as _CONF

CONF_DIR = str(_CONF)  # runner/conf, inside the package: a wheel carries it
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


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def explain(error: Exception, override_list: list[str]) -> str:
    """Turn a Hydra/OmegaConf composition error into one line naming the key and what is allowed."""
    from hydra.errors import MissingConfigException

    text = str(error)
    if isinstance(error, MissingConfigException) and error.options is not None:
        group = (error.missing_cfg_file or "?").split("/")[0]
        wanted = next((o for o in override_list if o.lstrip("+~").split("=")[0] == group), group)
        return f"{wanted}: unknown {group}; allowed: {', '.join(sorted(error.options))}"
    cause = error.__cause__ or error.__context__
    full_key = getattr(cause, "full_key", None) or getattr(error, "full_key", None)
    if "not in struct" in text or (cause is not None and "not in struct" in str(cause)):
        key = full_key or _first_line(text)
        return f"{key}: unknown key; check the spelling, or add a new key with +{key}=..."
    if full_key:
        return f"{full_key}: {_first_line(str(cause or error))}"
    first = _first_line(text)
    if first.startswith("Ambiguous value"):
        return first + " (a sweep over several values needs --multirun)"
    return first


def sweep_variants(overrides: list[str]) -> list[list[str]]:
    """One override list per value of each sweep (`act=relu,prelu` → two lists), others at their first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    values: list[list[str]] = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            values.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            values.append([override.input_line])
    base = [v[0] for v in values]
    variants = [base]
    for i, options in enumerate(values):
        for option in options[1:]:
            variants.append(base[:i] + [option] + base[i + 1 :])
    return variants


def _name_the_key(line: str, variant: list[str], compose: Any) -> str:
    """Some Hydra errors name no key (`act=1`: "must be a string"): find the override that fails alone."""
    keys = [o.lstrip("+~").split("=", 1)[0] for o in variant]
    if any(key in line for key in keys):
        return line
    for override, key in zip(variant, keys, strict=True):
        try:
            compose(config_name="config", overrides=[override])
        except Exception:  # the same error as above, now with its culprit known
            options = sorted(p.stem for p in (Path(CONF_DIR) / key).glob("*.yaml"))
            return f"{key}: {line}" + (f"; allowed: {', '.join(options)}" if options else "")
    return line


def precheck(argv: list[str]) -> str | None:
    """Compose and validate what the command asks for; the error line, or None when it is fine."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from runner.config import validate
    from runner.errors import ConfigError

    overrides = [a for a in argv if not a.startswith("-") and not a.startswith("hydra")]
    multirun = "-m" in argv or "--multirun" in argv
    try:
        variants = sweep_variants(overrides) if multirun else [overrides]
    except HydraException as e:
        return f"cannot parse the overrides: {_first_line(str(e))}"
    uris: set[str] = set()
    configs: list[dict[str, Any]] = []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="runner"):
        for variant in variants:
            try:
                cfg = compose(config_name="config", overrides=variant)
                configs.append(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
                validate(configs[-1])
                uris.add(str(cfg.tracking.uri))
            except ConfigError as e:
                return str(e)
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                return _name_the_key(explain(e, variant), variant, compose)
    from runner.errors import TrackingError
    from runner.tracking import check_reachable

    for uri in sorted(uris):  # a tracking server that does not answer: say so before anything starts
        try:
            check_reachable(uri)
        except TrackingError as e:
            return str(e)
    if not _with_helper:
        return dry_build(configs)
    from runner import tracking_helper

    tracking_helper.start()  # the torch-free checks passed: MLflow's import now overlaps torch's and the dry build
    reading = read_data_beside(configs[0]["dataset"])
    problem = dry_build(configs)
    if problem is None and reading is not None:
        reading.join()
    return problem


def read_data_beside(dataset: dict[str, Any]) -> threading.Thread | None:
    """Decode the first job's data files in a thread while the dry build imports torch._dynamo (~0.8 s; its
    first meta-device op does: pure-Python imports on one core, while the decompression releases the GIL):
    the job's own check then finds them decoded (runner/data/common.py: read_once). Resident data sets only
    (a folder set is listed, not decoded, by its check); never downloads; an error is left to the job's
    check to say. The data modules (and torch) are imported here, before the thread starts: two threads
    importing one module graph can deadlock on its import locks."""
    from runner.config import FOLDER_DATASETS

    if dataset["name"] in FOLDER_DATASETS:
        return None
    from runner.data import check_data

    def read() -> None:
        with contextlib.suppress(Exception):
            check_data({**dataset, "download": False}, Path.cwd())

    thread = threading.Thread(target=read, name="runner-read-data", daemon=True)
    thread.start()
    return thread


def dry_build(configs: list[dict[str, Any]]) -> str | None:
    """What only torch can tell, once the torch-free checks passed and still before Hydra creates its output
    directory: each variant's model, forward pass, optimizer, schedule and augmentation, built on the meta
    device (runner/job.py: check_model, check_parts). The error line, or None."""
    from runner.config import check_registered
    from runner.errors import ConfigError
    from runner.job import check_model, check_parts

    for cfg in configs:
        try:
            check_registered(cfg)
            check_model(cfg)
            check_parts(cfg)
        except ConfigError as e:
            return str(e)
    return None


def _hydra_entry(exit_codes: list[int]) -> None:
    """Hydra returns nothing from a run or a sweep: each job's exit code is collected here instead."""
    import hydra

    @hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
    def task(cfg: Any) -> int:
        from runner.job import run_job

        code = run_job(cfg)
        exit_codes.append(code)
        return code

    task()


PLAN_FLAG = "--plan"  # print what the command would do (runner/plan.py) and exit: nothing runs
# Set by `run` (the command): precheck starts MLflow's helper process once the torch-free checks passed.
_with_helper = False


def main() -> None:
    argv = sys.argv[1:]
    if not any(a.split("=")[0] in INFO_FLAGS for a in argv):
        problem = precheck([a for a in argv if a != PLAN_FLAG])
        if problem:
            from runner.console import error

            error(problem)
            sys.exit(2)
    if PLAN_FLAG in argv:  # before Hydra's main: its launcher would create an output directory
        from runner.plan import main as plan

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
    """The `runner` command: `main` with MLflow in a helper process (runner/tracking_helper.py), started as soon
    as the config passed its torch-free checks, so that MLflow is imported beside torch's import and the dry
    build. A config error costs no MLflow import; --plan and torchrun's other ranks log nothing."""
    global _with_helper
    _with_helper = PLAN_FLAG not in sys.argv[1:] and int(os.environ.get("RANK", "0")) == 0
    main()


if __name__ == "__main__":
    run()
