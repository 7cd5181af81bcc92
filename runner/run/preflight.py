"""The pre-flight every entry point runs before anything is written: compose and validate each variant
(torch-free), check the tracking store answers, then build each variant on torch's meta device (the model,
a forward pass, the optimizer, the schedule, the augmentation). Each problem is one line naming the key."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from runner.config.compose import (
    explain,
    first_line,
    hydra_context,
    job_config,
    name_the_key,
    sweep_variants,
)
from runner.errors import ConfigError


def precheck(argv: list[str], with_helper: bool = False, build: bool = True) -> str | None:
    """Compose and validate what the command asks for; the error line, or None when it is fine. With
    `with_helper` (the `runner` command) MLflow's helper process starts once the torch-free checks passed;
    `build=False` leaves out the dry build (runner-eval: the run's own config decides the model)."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from runner.config.schema import validate
    from runner.errors import ConfigError

    overrides = [a for a in argv if not a.startswith("-") and not a.startswith("hydra")]
    multirun = "-m" in argv or "--multirun" in argv
    try:
        variants = sweep_variants(overrides) if multirun else [overrides]
    except ConfigError as e:
        return str(e)
    hydra_args = [a for a in argv if a.startswith("hydra")]
    configs: list[dict[str, Any]] = []
    with hydra_context():
        for i, variant in enumerate(variants):
            try:
                if i == 0:  # one composition gives the first job's config and Hydra's settings for it
                    cfg, hydra = compose_first(compose, variant, hydra_args)
                else:
                    cfg = compose(config_name="config", overrides=variant)
                configs.append(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
                validate(configs[-1])
            except ConfigError as e:
                return str(e)
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                return name_the_key(explain(e, variant), variant, compose)
        try:  # Hydra's own settings, as the first job gets them: its output directory and the launcher
            output = (
                ("hydra.sweep.dir", str(hydra.sweep.dir))
                if multirun
                else ("hydra.run.dir", str(hydra.run.dir))
            )
            launcher = OmegaConf.to_container(hydra.launcher, resolve=True) if multirun else {}
        except (HydraException, OmegaConfBaseException, ValueError) as e:
            return hydra_settings_error(hydra_args, e)
    problem = check_touched(configs, output, launcher)  # type: ignore[arg-type]
    if problem is not None:
        return problem
    if not with_helper:
        return dry_build(configs) if build else None
    from runner.tracking import helper as tracking_helper

    tracking_helper.start()  # the torch-free checks passed: MLflow's import now overlaps torch's and the dry build
    reading = read_data_beside(configs[0]["dataset"])
    problem = dry_build(configs)
    if problem is None and reading is not None:
        reading.join()
    return problem


def compose_first(compose: Any, variant: list[str], hydra_args: list[str]) -> tuple[Any, Any]:
    """The first variant's config and its `hydra` node from one composition (see job_config). Where it fails with `hydra.*` overrides
    given, the variant is composed alone: its own error is raised, else the Hydra overrides are named."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = compose(config_name="config", overrides=[*hydra_args, *variant], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        if not hydra_args:
            raise
        compose(config_name="config", overrides=variant)  # raises the variant's own error
        raise ConfigError(hydra_settings_error(hydra_args, e)) from e
    return job_config(cfg), cfg.hydra


def hydra_settings_error(hydra_args: list[str], error: Exception) -> str:
    """Hydra names only the setting it could not use: the line leads with every `hydra*` override typed."""
    return f"{' '.join(hydra_args)}: {first_line(str(error))}"


def check_touched(
    configs: list[dict[str, Any]], output: tuple[str, str], launcher: dict[str, Any]
) -> str | None:
    """What the run will touch beyond the values typed: every directory it writes (Hydra's `output`, the
    checkpoints, the store, the artifacts) can be written, the file it resumes from exists, the launcher's
    resources are there, and the tracking store answers within a few seconds. The error line, or None."""
    from runner.errors import RunnerError
    from runner.tracking.store import check_reachable

    cwd = Path.cwd()
    try:
        paths = {cwd / output[1]: output}
        for cfg in configs:
            check_resume_from(cfg, cwd)
            paths.update(
                {path: named for path, named in written_paths(cfg, cwd).items() if path not in paths}
            )
        for path, (key, value) in paths.items():
            prove_writable(key, value, path)
        check_launcher(launcher)
        for uri in sorted({cfg["tracking"]["uri"] for cfg in configs}):  # before anything starts
            check_reachable(uri)
    except RunnerError as e:
        return str(e)
    return None


def written_paths(cfg: dict[str, Any], cwd: Path) -> dict[Path, tuple[str, str]]:
    """The directories a job of `cfg` writes, each with the key and value that name it: the checkpoints, a
    local store (sqlite's file or MLflow's file store) and, unless a server keeps them, the artifacts."""
    tracking, ckpt_dir = cfg["tracking"], cfg["trainer"]["ckpt_dir"]
    paths = {cwd / ckpt_dir: ("trainer.ckpt_dir", ckpt_dir)}
    uri, root = tracking["uri"], tracking["artifact_root"]
    if uri.startswith("sqlite:///"):
        paths.setdefault((cwd / uri.removeprefix("sqlite:///")).parent, ("tracking.uri", uri))
    elif uri.startswith("file://") or "://" not in uri:
        paths.setdefault(cwd / uri.removeprefix("file://"), ("tracking.uri", uri))
    if not uri.startswith(("http://", "https://")) and (root.startswith("file://") or "://" not in root):
        paths.setdefault(cwd / root.removeprefix("file://"), ("tracking.artifact_root", root))
    return paths


def prove_writable(key: str, value: str, path: Path) -> None:
    """`path` is a directory this process can create files in, or can be created: a probe directory is made
    (and removed) in its nearest existing ancestor. Asking os.access is not enough: as root it says yes to
    /proc and to read-only mounts."""
    import tempfile

    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".runner-probe-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{key}={value} cannot be written: {existing}: {e.strerror or e}") from None


def check_resume_from(cfg: dict[str, Any], cwd: Path) -> None:
    if cfg["resume_from"] and not (cwd / cfg["resume_from"]).is_file():
        raise ConfigError(f"resume_from={cfg['resume_from']} is not a file (relative to {cwd})")


# A launcher's check of its resources (hydra.launcher's _target_ → `module:function`), run in the pre-flight.
LAUNCHER_CHECKS = {
    "hydra_plugins.runner_gpu_launcher.gpu_launcher.GpuLauncher": "runner.run.slots:check_launcher"
}


def check_launcher(launcher: dict[str, Any]) -> None:
    import importlib

    where = LAUNCHER_CHECKS.get(str(launcher.get("_target_")))
    if where is not None:
        module, function = where.split(":")
        getattr(importlib.import_module(module), function)(launcher)


def read_data_beside(dataset: dict[str, Any]) -> threading.Thread | None:
    """Decode the first job's data files in a thread while the dry build imports torch._dynamo (~0.8 s; its
    first meta-device op does: pure-Python imports on one core, while the decompression releases the GIL):
    the job's own check then finds them decoded (runner/data/common.py: read_once). Resident data sets only
    (a folder set is listed, not decoded, by its check); never downloads; an error is left to the job's
    check to say. The data modules (and torch) are imported here, before the thread starts: two threads
    importing one module graph can deadlock on its import locks."""
    from runner.config.datasets import is_folder

    if is_folder(dataset["name"]):
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
    device (runner/run/job.py: check_model, check_parts). The error line, or None."""
    from runner.config.schema import check_registered
    from runner.errors import ConfigError
    from runner.run.preflight import check_model, check_parts

    for cfg in configs:
        try:
            check_registered(cfg)
            check_model(cfg)
            check_parts(cfg)
        except ConfigError as e:
            return str(e)
    return None


def check_model(cfg: dict[str, Any]) -> None:
    """The model's name and options: one line naming the key and what is allowed (check_parts builds it)."""
    from runner.models import model_names, model_options

    name = cfg["model"]["name"]
    if name not in model_names():
        raise ConfigError(f"model.name={name!r} is unknown; allowed: {', '.join(model_names())}")
    unknown = set(cfg["model"]) - {"name"} - model_options(name)
    if unknown:
        allowed = ", ".join(sorted(model_options(name)))
        raise ConfigError(f"model.{sorted(unknown)[0]} is not an option of {name}; allowed: {allowed}")


def check_parts(cfg: dict[str, Any]) -> None:
    """Dry-build what the job will build from the config, before any run exists: the model's forward at the
    data set's input size, the optimizer and the schedule (on the meta device: no memory, no compute), and
    the augmentation on a dummy batch or image. A builder's ValueError, TypeError, IndexError or
    RuntimeError becomes the one-line config error naming the part."""
    import torch

    from runner.data import dataset_shape
    from runner.models import build_for
    from runner.train.optim import build_optimizer
    from runner.train.schedule import build_schedule

    shape, data = dataset_shape(cfg["dataset"]), cfg["dataset"]
    size = f"{shape.size}×{shape.size}"
    part = f"model={cfg['model']['name']} on the {size} input of dataset={data['name']}"
    try:
        with torch.device("meta"):
            model = build_for(cfg, shape.classes, shape.channels, shape.size)
            model(torch.zeros(2, shape.channels, shape.size, shape.size))
            if data["test_view"] == "dense":  # a head without a dense form fails here, not at test time
                from runner.models.dense import dense_scores

                part = f"dataset.test_view=dense with model={cfg['model']['name']}"
                dense_scores(model.eval(), torch.zeros(1, shape.channels, shape.size, shape.size))
            part = f"schedule={cfg['schedule']['name']} with optim={cfg['optim']['name']}"
            optimizer = build_optimizer(model, cfg["optim"], cfg["optim"]["lr"])
            schedule = build_schedule(optimizer, cfg["schedule"], 100, cfg["model"]["name"])
            schedule.iteration(1, 50.0)
            schedule.epoch_end(50.0)
        part = f"dataset.augment={data['augment']!r} of dataset={data['name']}"
        _dry_augment(data, shape.channels, shape.size)
    except (ValueError, TypeError, IndexError, RuntimeError) as e:
        raise ConfigError(f"{part}: {first_line(str(e)) or type(e).__name__}") from None


def _dry_augment(data: dict[str, Any], channels: int, size: int) -> None:
    """One pass of the training and test views: over a dummy image (folder sets), or a dummy batch."""
    import random

    import torch

    from runner.config.datasets import is_folder

    if is_folder(data["name"]):
        from PIL import Image

        from runner.data.augment import TEST_VIEWS, TRAIN_VIEWS

        image, rng = Image.new("RGB", (500, 375)), random.Random(0)
        TRAIN_VIEWS[data["augment"]](data)(image, rng)
        TEST_VIEWS[data["test_view"]](data)(image, rng)
        return
    from runner.data.tensor_loader import AUGMENTS, check_test_view

    check_test_view(data)  # ImageNet's center or ten_crop asked of a 32×32 set: an error, not the whole image
    batch, gen = torch.zeros(2, channels, size, size), torch.Generator().manual_seed(0)
    for name in data["augment"]:
        batch = AUGMENTS[name](batch, gen, 0, 2)
