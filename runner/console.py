"""The only module that talks to rich: the config tree, progress bars, the end-of-run table, messages."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
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
    """One line on stderr: the user-facing error format. The message is text, not markup: a value such as
    `psycopg[binary]` or `[crop, flop]` is printed as it is."""
    errors.print(f"[bold red]runner: error:[/] {escape(message)}", soft_wrap=True)


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
    """The end-of-run table: metric, value."""
    cells = [[key, f"{value:.4g}" if isinstance(value, float) else str(value)] for key, value in rows.items()]
    if not console.is_terminal:
        _plain(title, ["metric", "value"], cells)
        return
    grid = Table(title=title, show_header=False)
    grid.add_column("", style="cyan", overflow="fold")
    grid.add_column("", overflow="fold")
    for row in cells:
        grid.add_row(*(escape(c) for c in row))  # cells are text: `[crop, flip]` is a value, not markup
    console.print(grid)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> None:
    """A table with a header row (the sweep report, the plan)."""
    if not console.is_terminal:
        _plain(title, header, rows, caption)
        return
    grid = Table(title=title, caption=caption or None)
    for name in header:
        grid.add_column(name, overflow="fold")  # a narrow terminal wraps a cell, never cuts it to "plai…"
    for row in rows:
        grid.add_row(*(escape(str(c)) for c in row))
    console.print(grid)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table, columns padded to their widest cell: readable as plain text."""

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [[cell(h) for h in header], *[[cell(c) for c in row] for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def _plain(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> None:
    """No terminal (a SLURM output file, a CI log, `| tee`): a markdown table at its full width, no markup, so
    no cell is cut to the 80 columns rich assumes there."""
    text = f"\n{title}\n\n{markdown_table(header, rows)}\n" + (f"\n{caption}\n" if caption else "")
    console.out(text, highlight=False)
