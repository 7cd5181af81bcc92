"""The `runner` command (runner/cli/main.py `run`): MLflow's helper process is asked for only where a job will log
(not for --plan, not on torchrun's other ranks), and the paths that exit before Hydra starts: --help and a typo."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from runner.cli import main as cli_main
from runner.cli.help import help_text


@pytest.fixture
def main_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`main` faked: what `run` passes it as with_helper ("unset": nothing)."""
    calls: list[Any] = []
    monkeypatch.setattr(cli_main, "main", lambda with_helper="unset": calls.append(with_helper))
    monkeypatch.delenv("RANK", raising=False)
    return calls


@pytest.mark.parametrize(
    ("argv", "rank", "with_helper"),
    [
        (["act=relu"], None, True),  # a run: MLflow starts beside torch's import
        (["-m", "act=relu,prelu"], "0", True),  # torchrun's rank 0 logs too
        (["--plan"], None, False),  # --plan logs nothing (first argument too)
        (["-m", "--plan", "act=relu,prelu"], None, False),
        (["act=relu"], "1", False),  # torchrun's other ranks log nothing
        (["--plan"], "1", False),
    ],
)
def test_the_runner_command_starts_mlflows_helper_only_where_a_job_logs(
    argv: list[str],
    rank: str | None,
    with_helper: bool,
    main_calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["runner", *argv])
    if rank is not None:
        monkeypatch.setenv("RANK", rank)
    cli_main.run()
    assert main_calls == [with_helper]


def test_runner_help_prints_runners_own_page_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["runner", "model=vgg_e", "--help"])
    with pytest.raises(SystemExit) as exit_:
        cli_main.run()
    assert exit_.value.code == 0
    out = capsys.readouterr()
    assert out.out == help_text() + "\n" and out.err == ""


def test_a_typo_exits_2_in_one_line_naming_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(sys, "argv", ["runner", "act=rleu"])
    with pytest.raises(SystemExit) as exit_:
        cli_main.run()  # the schema stops it: no MLflow helper, no Hydra output directory
    assert exit_.value.code == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert (
        out.err == "runner: error: act=rleu: unknown act; allowed: lrelu, prelu, prelu_shared, relu, tanh\n"
    )
