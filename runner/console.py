"""The only module that talks to rich: the config tree, progress bars, the end-of-run table, messages."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.tree import Tree

console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    """One line on stderr: the user-facing error format."""
    errors.print(f"[bold red]runner: error:[/] {message}", soft_wrap=True)


def info(message: str) -> None:
    console.print(message, soft_wrap=True)


def config_tree(cfg: Mapping[str, Any], choices: Mapping[str, str]) -> None:
    tree = Tree("[bold]config[/]")

    def add(node: Tree, value: Mapping[str, Any]) -> None:
        for key, item in value.items():
            if isinstance(item, Mapping):
                label = f"[cyan]{key}[/]" + (f" [dim]({choices[key]})[/]" if key in choices else "")
                add(node.add(label), item)
            else:
                node.add(f"{key}: [green]{item}[/]")

    add(tree, cfg)
    console.print(tree)


class TrainProgress:
    """An epoch bar and a step bar; updated only at log intervals, redrawn at most 4 times a second."""

    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stdout.isatty()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
            disable=not self.enabled,
        )
        self.epoch_task = self.progress.add_task("epoch", total=epochs, stats="")
        self.step_task = self.progress.add_task("step ", total=steps_per_epoch, stats="")

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def start_epoch(self, epoch: int, step_in_epoch: int) -> None:
        self.progress.update(self.epoch_task, completed=epoch)
        self.progress.reset(self.step_task, completed=step_in_epoch)

    def steps(self, completed: int, loss: float, lr: float, images_per_s: float) -> None:
        stats = f"loss {loss:.3f}  lr {lr:.2g}  {images_per_s:,.0f} img/s"
        self.progress.update(self.step_task, completed=completed, stats=stats)

    def end_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.progress.update(self.epoch_task, completed=epoch + 1)
        line = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self.progress.console.print(f"[bold]epoch {epoch + 1}[/]  {line}", soft_wrap=True)


def summary(title: str, rows: Mapping[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("", style="cyan")
    table.add_column("")
    for key, value in rows.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> None:
    """A table with a header row (the sweep report)."""
    grid = Table(title=title, caption=caption or None)
    for name in header:
        grid.add_column(name)
    for row in rows:
        grid.add_row(*row)
    console.print(grid)
