"""Model registry: conf/model/<name>.yaml names a builder registered here by the family files.

A builder is called as `builder(num_classes=, in_channels=, image_size=, act=, **yaml_options)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from runner.nn import ActFactory

Builder = Callable[..., nn.Module]
MODELS: dict[str, Builder] = {}


def check_width_and_dropout(width_mult: float, dropout: float) -> None:
    """The two options AlexNet, VGG and the PReLU nets share, checked alike (one-line errors)."""
    if width_mult <= 0:
        raise ValueError(f"model.width_mult must be > 0, got {width_mult}")
    if not 0 <= dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")


def register(name: str, builder: Builder) -> None:
    if name in MODELS:
        raise ValueError(f"model {name!r} registered twice")
    MODELS[name] = builder


def _load_families() -> None:
    # Importing a family file registers its models.
    from runner.models import alexnet, prelu_nets, resnet, vgg  # noqa: F401


def model_names() -> list[str]:
    _load_families()
    return sorted(MODELS)


def model_options(name: str) -> set[str]:
    """The YAML options a model accepts (its builder's keyword arguments)."""
    _load_families()
    fixed = {"num_classes", "in_channels", "image_size", "act"}
    params = inspect.signature(MODELS[name]).parameters
    return {p for p in params if p not in fixed}


def build_model(
    cfg: Mapping[str, Any], *, num_classes: int, in_channels: int, image_size: int, act: ActFactory
) -> nn.Module:
    _load_families()
    options = {k: v for k, v in cfg.items() if k != "name"}
    return MODELS[cfg["name"]](
        num_classes=num_classes, in_channels=in_channels, image_size=image_size, act=act, **options
    )
