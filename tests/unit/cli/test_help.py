"""`runner --help` (runner/cli/help.py): what runner is, every group with its options, every preset with one line
read from its own YAML, the related commands, and where the full config is."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from conftest import CONF_DIR, options

from runner.cli.help import WIDTH, help_text, preset_line, print_help
from runner.config import GROUPS


def test_help_names_every_group_with_its_options_and_every_preset_on_its_own_line() -> None:
    lines = help_text().splitlines()
    for group in GROUPS:
        (row,) = [i for i, line in enumerate(lines) if line.split()[:1] == [group]]
        listed = " ".join(lines[row : row + 6]).replace(",", " ").split()  # wrapped rows follow it
        assert set(options(group)) <= set(listed), (group, set(options(group)) - set(listed))
    for name in options("experiment"):
        (row,) = [line for line in lines if line.split()[:1] == [name]]
        assert len(row.split()) > 2, row  # a description, not the name alone
    assert all(len(line) <= WIDTH for line in lines)


def test_help_says_what_runner_is_and_names_the_related_commands() -> None:
    text = help_text()
    assert text.startswith("runner: ") and "MLflow" in text.splitlines()[1]
    for command in ("--plan", "runner-eval", "runner-report", "runner-results", "make ui", "--cfg job"):
        assert command in text, command


def test_a_preset_line_comes_from_its_own_yaml(tmp_path: Path) -> None:
    paper = tmp_path / "p.yaml"
    paper.write_text(
        "# @package _global_\n# Prose.\nhydra:\n  sweeper:\n    params:\n      act: relu,prelu\n      seed: 0,1\n"
        "expected:\n  paper: He et al. 2015, Table 2 (ImageNet val)\n"
    )
    assert preset_line(paper) == "He et al. 2015, Table 2: sweeps act"
    variant = tmp_path / "v.yaml"
    variant.write_text(
        "# @package _global_\n# x at test scale (He et al. 2015, Sec. 2.2): two nets. More\n# detail.\n"
        "defaults:\n  - x\n"
    )
    assert preset_line(variant) == "x at test scale: two nets"
    assert preset_line(CONF_DIR / "experiment" / "init_depth_small.yaml").startswith(
        "init_depth at CPU scale"
    )


def test_readme_pastes_the_help_as_it_prints_today() -> None:
    # README's "runner --help" block is the newcomer's first view of runner: it must be the real output.
    readme = (CONF_DIR.parents[1] / "README.md").read_text()
    block = readme.split("$ runner --help\n", 1)[1].split("\n```", 1)[0]
    assert block.rstrip("\n") == help_text().rstrip("\n")


class Stdout(io.StringIO):
    """A terminal's stdout: what was written, and how often it was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_print_help_prints_the_page_and_flushes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Stdout()
    monkeypatch.setattr(sys, "stdout", out)
    print_help()
    assert out.getvalue() == help_text() + "\n"
    assert out.flushes == 1  # `runner --help | head`: a closed pipe shows up here, inside the try


class ClosedPipe:
    """stdout when the reader of `runner --help | head` has left: writing fails; its file descriptor is `fd`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd


def test_print_help_to_a_closed_pipe_is_no_error_and_sends_stdout_to_devnull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python flushes stdout again at exit: pointing its descriptor at /dev/null keeps that silent too.
    fd = os.open(tmp_path / "stdout", os.O_CREAT | os.O_WRONLY)
    opened: list[int] = []
    real_open = os.open

    def recording_open(*args: object) -> int:
        opened.append(real_open(*args))  # type: ignore[arg-type]
        return opened[-1]

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(sys, "stdout", ClosedPipe(fd))
    try:
        print_help()
        assert os.path.samestat(os.fstat(fd), os.stat(os.devnull))
        os.write(fd, b"lost")  # writable, and nowhere
        assert (tmp_path / "stdout").read_bytes() == b""
    finally:
        for each in [fd, *opened]:
            os.close(each)


@pytest.mark.parametrize(
    "comment",
    [
        "# x at CPU scale, two seeds (He et al. 2015):\ndefaults:\n  - x\n# a later comment\n",
        # The sentence goes on over unindented lines only: an indented line is a detail, and a YAML line or a
        # blank ends the top comment (a later comment is not part of it).
        "# x at CPU scale,\n# two seeds\n#   epochs: 3\ndefaults:\n  - x\n",
        "# x at CPU scale, two seeds\n\n# not this\n",
        "# x at CPU scale, two seeds\n#\n# not this\n",
    ],
)
def test_a_scale_comment_without_a_full_stop_is_its_top_lines_less_trailing_punctuation(
    comment: str, tmp_path: Path
) -> None:
    variant = tmp_path / "x_small.yaml"
    variant.write_text("# @package _global_\n" + comment)
    assert preset_line(variant) == "x at CPU scale, two seeds"


def write_conf(root: Path, presets: dict[str, str], groups: dict[str, list[str]]) -> Path:
    """A conf/ tree of its own: `_small` presets with their top comment, and empty options of some groups."""
    (root / "experiment").mkdir(parents=True)
    for name, comment in presets.items():
        (root / "experiment" / f"{name}.yaml").write_text(f"# @package _global_\n# {comment}.\n")
    for group, names in groups.items():
        (root / group).mkdir()
        for name in names:
            (root / group / f"{name}.yaml").write_text("{}\n")
    return root


def test_a_preset_name_too_long_for_its_column_goes_on_a_line_of_its_own(tmp_path: Path) -> None:
    # The preset column is 24 characters wide and the description starts 3 after it: a name is followed by at
    # least two spaces, or its description starts on the next line, under the others.
    fits, fills, wider = "a" * 23, "b" * 24, "c" * 30
    conf = write_conf(tmp_path, {fits: "one", fills: "two", wider: "three"}, {})
    lines = help_text(conf).splitlines()
    start = lines.index(
        "paper presets (runner -m +experiment=<name>; _small: CPU scale, _smoke: a pipeline check):"
    )
    assert lines[start + 1 : start + 6] == [
        f"  {fits}  one",
        f"  {fills}",
        " " * 27 + "two",
        f"  {wider}",
        " " * 27 + "three",
    ]


def test_a_group_whose_options_wrap_never_splits_a_hyphenated_name(tmp_path: Path) -> None:
    names = [f"pre-activation-unit-{i:02d}" for i in range(12)]
    conf = write_conf(tmp_path, {}, {"act": names})
    lines = help_text(conf).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("  act "))
    rows = lines[row : lines.index("", row)]
    assert len(rows) == 3 and all(len(r) <= WIDTH for r in rows) and rows[1].startswith(" " * 13)
    listed = [name for line in rows for name in line[13:].split(", ") if name]
    assert [name.rstrip(",") for name in listed] == names  # each name whole, on one row
