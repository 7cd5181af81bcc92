"""`runner --help`: what runner is, the config groups and their options, the paper presets (one line each,
read from the preset's own YAML), the related commands and where the full config is. Read from conf/ at call
time, so a new option or preset shows up with no edit here; no torch, no mlflow, no Hydra."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

from runner.config import CONF_DIR, GROUPS, parse_yaml

WIDTH = 120  # the help's line width (README quotes it as it is)
PRESET_COLUMN = 26

INTRO = """\
runner: re-runs the ablations of the classic CNN papers (AlexNet, VGG, ResNet, He et al. 2015 PReLU/Kaiming)
from Hydra configs, logs every run to MLflow, and judges each paper claim with a verdict.

usage: runner [group=option ...] [group.key=value ...]   one run (default: ResNet-20 on Fashion-MNIST)
       runner -m key=a,b [key2=c,d ...]                 a sweep: a job per combination, under one parent run
       runner -m +experiment=<preset>                   a paper's ablation, judged against the paper"""

RELATED = [
    (
        "runner --plan -m +experiment=<preset>",
        "what a sweep would do (train / resume / skip, time); runs nothing",
    ),
    ("runner --cfg job", "the whole composed config (any overrides); `--cfg hydra`: Hydra's own"),
    ("runner-eval <run id or checkpoint>", "evaluate a trained model again (other test views)"),
    ("runner-report <preset or parent run id>", "a sweep's report and verdicts again, from MLflow"),
    ("runner-results", "docs/results.md: every preset's verdicts from the store (make reproduce)"),
    ("make ui", "the MLflow UI over ./mlflow.db on http://127.0.0.1:5000"),
    ("runner --hydra-help", "Hydra's own flags (--multirun, --cfg, --info, shell completion)"),
]

# The end of a preset's first sentence: a semicolon, or a full stop followed by a capital, a backquote or the end
# ("Sec. 3.3" and "et al. 2012" go on).
SENTENCE_END = re.compile(r"\.(?=\s+[A-Z`(]|\s*$)|;")


def group_options(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """Each config group and its options (the stems of conf/<group>/*.yaml)."""
    return {g: sorted(p.stem for p in (conf_dir / g).glob("*.yaml")) for g in GROUPS}


def _no_parentheses(text: str) -> str:
    for _ in range(2):  # nested parentheses, innermost first
        text = re.sub(r"\s*\([^()]*\)", "", text)
    return text


def _first_sentence(text: str) -> str:
    """The top comment's first sentence, without its parentheses (the preset's details)."""
    lines = []
    for raw in text.splitlines():
        if raw.startswith("# @package"):
            continue
        line = raw[1:].strip() if raw.startswith("#") else ""
        if not line or (lines and raw.startswith("#  ")):  # a blank, a YAML line or an indented detail
            break
        lines.append(line)
    joined = _no_parentheses(" ".join(lines))
    end = SENTENCE_END.search(joined)
    return (joined[: end.start()] if end else joined).rstrip(":;,. ")


def preset_line(path: Path) -> str:
    """A preset's one line: a paper preset's `expected.paper` (the paper and the section or table it
    reproduces) and the keys it sweeps, a `_small`/`_smoke` variant's first sentence of its top comment (its
    scale), without parentheses, shortened to the help's width."""
    text = path.read_text()
    data = parse_yaml(text) or {}
    paper = (data.get("expected") or {}).get("paper")
    swept = [k for k in ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {} if k != "seed"]
    line = f"{_no_parentheses(str(paper))}: sweeps {', '.join(swept)}" if paper else _first_sentence(text)
    return textwrap.shorten(line, WIDTH - PRESET_COLUMN - 1, placeholder=" …")


def presets(conf_dir: Path = CONF_DIR) -> dict[str, str]:
    """Every preset of conf/experiment/ and its one line."""
    return {p.stem: preset_line(p) for p in sorted((conf_dir / "experiment").glob("*.yaml"))}


def _wrap(label: str, text: str, indent: int) -> list[str]:
    """`label` padded to `indent`, then `text` wrapped to WIDTH with the continuation under it."""
    first = f"  {label:<{indent - 2}} " if len(label) < indent - 2 else f"  {label}\n{' ' * indent} "
    return textwrap.wrap(
        text, WIDTH, initial_indent=first, subsequent_indent=" " * (indent + 1), break_on_hyphens=False
    )


def help_text(conf_dir: Path = CONF_DIR) -> str:
    """The whole `runner --help` page."""
    out = [INTRO, "", "config groups (runner <group>=<option>; conf/<group>/<option>.yaml documents each):"]
    for group, names in group_options(conf_dir).items():
        out += _wrap(group, ", ".join(names), 12)
    out += ["", "paper presets (runner -m +experiment=<name>; _small: CPU scale, _smoke: a pipeline check):"]
    for name, line in presets(conf_dir).items():
        out += _wrap(name, line, PRESET_COLUMN)
    out += ["", "related commands:"]
    for command, what in RELATED:
        out += _wrap(command, what, 42)
    out += [
        "",
        "the full config: `runner --cfg job` (with any overrides: `runner --cfg job model=vgg_e`); a value:",
        "`runner <group>.<key>=<value>`; README.md has the rest.",
    ]
    return "\n".join(out)


def print_help() -> None:
    try:
        print(help_text(), flush=True)
    except BrokenPipeError:  # `runner --help | head`: the reader left early, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
