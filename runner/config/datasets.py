"""A data set's facts, read from the `about:` block of conf/dataset/<name>.yaml (no torch): its kind, classes,
input shape, size and display name. The pre-flight, --plan, the verdicts and the results page read them here;
the data registry derives a fixed shape from them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from runner.config import CONF_DIR, parse_yaml
from runner.errors import ConfigError

FACTS = ("display", "kind", "classes", "channels", "image_size", "train_images", "full_data_args")
KINDS = ("resident", "folder")


@functools.cache
def about(name: str) -> Mapping[str, Any]:
    """The `about:` block of conf/dataset/<name>.yaml."""
    path = CONF_DIR / "dataset" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"dataset.name={name!r}: no conf/dataset/{name}.yaml")
    return (parse_yaml(path.read_text()) or {}).get("about") or {}


def is_folder(name: str) -> bool:
    """Decoded from files by DataLoader workers (ImageNet), not held on the device as tensors."""
    return about(name).get("kind") == "folder"


def num_classes(name: str, settings: Mapping[str, Any]) -> int:
    """The classes of the data set; where the data set leaves them to a setting, `settings["num_classes"]`."""
    fixed = about(name).get("classes")
    return int(fixed if fixed is not None else settings["num_classes"])


def train_images(name: str, settings: Mapping[str, Any]) -> int | None:
    """Training images before the split, or None when only the files can tell (a folder set)."""
    fixed = about(name).get("train_images")
    return int(fixed) if fixed is not None else settings.get("train_size")
