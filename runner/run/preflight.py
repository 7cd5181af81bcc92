"""The pre-flight every entry point runs before anything is written: compose and validate each variant
(torch-free), check the tracking store answers, then build each variant on torch's meta device (the model,
a forward pass, the optimizer, the schedule, the augmentation). Each problem is one line naming the key."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from runner.config import CONF_DIR
from runner.config.compose import explain, first_line, name_the_key, sweep_variants
from runner.errors import ConfigError


def precheck(argv: list[str], with_helper: bool = False) -> str | None:
    """Compose and validate what the command asks for; the error line, or None when it is fine. With
    `with_helper` (the `runner` command) MLflow's helper process starts once the torch-free checks passed."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from runner.config.schema import validate
    from runner.errors import ConfigError

    overrides = [a for a in argv if not a.startswith("-") and not a.startswith("hydra")]
    multirun = "-m" in argv or "--multirun" in argv
    try:
        variants = sweep_variants(overrides) if multirun else [overrides]
    except HydraException as e:
        return f"cannot parse the overrides: {first_line(str(e))}"
    uris: set[str] = set()
    configs: list[dict[str, Any]] = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="runner"):
        for variant in variants:
            try:
                cfg = compose(config_name="config", overrides=variant)
                configs.append(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
                validate(configs[-1])
                uris.add(str(cfg.tracking.uri))
            except ConfigError as e:
                return str(e)
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                return name_the_key(explain(e, variant), variant, compose)
    from runner.errors import TrackingError
    from runner.tracking.store import check_reachable

    for uri in sorted(uris):  # a tracking server that does not answer: say so before anything starts
        try:
            check_reachable(uri)
        except TrackingError as e:
            return str(e)
    if not with_helper:
        return dry_build(configs)
    from runner.tracking import helper as tracking_helper

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


def _error_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
        raise ConfigError(f"{part}: {_error_line(e)}") from None


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
    from runner.data.tensor_loader import AUGMENTS

    batch, gen = torch.zeros(2, channels, size, size), torch.Generator().manual_seed(0)
    for name in data["augment"]:
        batch = AUGMENTS[name](batch, gen, 0, 2)
