"""The folder tree is the architecture: runner's packages import only downward (scripts/imports.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "imports.py"
spec = importlib.util.spec_from_file_location("imports_script", SCRIPT)
imports = importlib.util.module_from_spec(spec)
spec.loader.exec_module(imports)


def test_runner_imports_only_downward_with_no_circle() -> None:
    found = imports.edges()
    assert ("cli", "run") in found and ("train", "models") in found  # the graph is read, not empty
    assert imports.violations(found) == []


def test_an_upward_edge_a_same_layer_edge_and_an_unlisted_package_are_reported() -> None:
    problems = imports.violations({("train", "run"), ("tracking", "config"), ("misc", "errors")})
    assert problems == [
        "misc: not in a layer (scripts/imports.py LAYERS)",
        "tracking → config: imports a package of the same or a higher layer",
        "train → run: imports a package of the same or a higher layer",
    ]


def test_every_package_of_runner_has_a_layer() -> None:
    package = SCRIPT.parent.parent / "runner"
    units = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    units |= {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    assert units == set(imports.LAYER_OF)
