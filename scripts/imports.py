"""The import graph between runner's packages: no circle, no edge that runs up a layer.

    python scripts/imports.py          # the edges, one line each, and any that break the layering (exit 1)

Every `import` counts, at module level or inside a function (a deferred import is still a dependency).
The layers, top to bottom; a package may import its own modules and any package in a lower layer:
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runner"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),  # entry points: runner, --plan, runner-eval
    ("run",),  # the pre-flight, jobs, sweeps, DDP processes, GPU slots
    ("analysis",),  # verdicts, the sweep report, the results page
    ("train",),  # the loop and its parts
    ("models",),  # the nets, their layers and initialisations; multi-view evaluation
    ("data",),  # data sets, loaders and views
    ("tracking", "config"),  # MLflow; the conf/ tree, its schema and the config's identity
    ("errors", "env", "console"),  # the base every layer may use
)
LAYER_OF = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def unit_of(module: str) -> str | None:
    """`runner.train.loop` → `train`; `runner.errors` → `errors`; anything outside runner → None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "runner" and len(parts) > 1 else None


def imported(path: Path) -> Iterator[str]:
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                base = ".".join(package.split(".")[: -node.level] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # `from runner import console`


def edges() -> set[tuple[str, str]]:
    """(importer, imported) between units of runner, both named by `unit_of`."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        source = unit_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for module in imported(path):
            target = unit_of(module)
            if source and target and target != source and target in LAYER_OF:
                found.add((source, target))
    return found


def violations(found: set[tuple[str, str]]) -> list[str]:
    """Each edge into the same or a higher layer, and each unit the layer table does not list."""
    units = {u for edge in found for u in edge}
    problems = [f"{u}: not in a layer (scripts/imports.py LAYERS)" for u in sorted(units - set(LAYER_OF))]
    for source, target in sorted(found):
        if source in LAYER_OF and LAYER_OF[target] <= LAYER_OF[source]:
            problems.append(f"{source} → {target}: imports a package of the same or a higher layer")
    return problems


def main() -> int:
    found = edges()
    for source, target in sorted(found, key=lambda e: (LAYER_OF.get(e[0], -1), e)):
        print(f"{source} → {target}")
    problems = violations(found)
    for line in problems:
        print("LAYERING:", line)
    print(f"{len(found)} edges between {len(LAYER_OF)} units; {len(problems)} against the layering")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
