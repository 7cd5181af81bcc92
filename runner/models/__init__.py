"""Model registry: conf/model/<name>.yaml names a builder registered here by `@register_model`.

A builder is called as `builder(args, **yaml_options)`: `args` (a `ModelArgs`) carries what the data set
and the act group decide, the YAML options are its keyword-only arguments, with no defaults in code
(every default lives in conf/model/<name>.yaml).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from runner.models.layers import ActFactory


@dataclass(frozen=True)
class ModelArgs:
    """What every builder gets besides its YAML options."""

    num_classes: int
    in_channels: int
    image_size: int
    act: ActFactory


Builder = Callable[..., nn.Module]
MODELS: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """`@register_model("alexnet")` on a builder, or `register_model("vgg_a")(partial(vgg, "vgg_a"))`
    for a family of names."""

    def add(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = builder
        return builder

    return add


def _load_families() -> None:
    """Import every module of this package: importing a family file registers its models, so a new file is
    all a new family needs."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def model_names() -> list[str]:
    _load_families()
    return sorted(MODELS)


def model_options(name: str) -> set[str]:
    """The YAML options a model accepts: its builder's keyword-only arguments."""
    _load_families()
    params = inspect.signature(MODELS[name]).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(
    cfg: Mapping[str, Any], *, num_classes: int, in_channels: int, image_size: int, act: ActFactory
) -> nn.Module:
    _load_families()
    options = {k: v for k, v in cfg.items() if k != "name"}
    args = ModelArgs(num_classes=num_classes, in_channels=in_channels, image_size=image_size, act=act)
    return MODELS[cfg["name"]](args, **options)


def build_for(cfg: Mapping[str, Any], num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """The model of a whole run config (`model` with the activation of `act`) for a data set's shape."""
    from runner.models.layers import make_act

    return build_model(
        cfg["model"],
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        act=make_act(cfg["act"]),
    )
