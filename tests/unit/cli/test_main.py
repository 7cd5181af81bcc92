"""The `runner` command (runner/cli/main.py `run`): MLflow's helper process is asked for only where a job will log
(not for --plan, not on torchrun's other ranks), and the paths that exit before Hydra starts: --help and a typo."""

from __future__ import annotations

import sys
from pathlib import Path
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


class Fakes:
    """What `main` hands on, each recorded: the pre-flight, --plan, Hydra's entry and the exit handlers."""

    def __init__(self) -> None:
        self.problem: str | None = None  # what the pre-flight says (None: the command is fine)
        self.plan_code = 0
        self.job_codes: list[int] = []  # what each job Hydra launches returns
        self.interrupt = False  # Ctrl-C while Hydra starts
        self.prechecked: list[tuple[list[str], bool]] = []
        self.planned: list[list[str]] = []
        self.hydra_argv: list[list[str]] = []  # sys.argv as Hydra reads it
        self.at_exit: list[tuple[Any, tuple, dict]] = []

    def precheck(self, argv: list[str], with_helper: bool = False) -> str | None:
        self.prechecked.append((argv, with_helper))
        return self.problem

    def plan(self, argv: list[str]) -> int:
        self.planned.append(argv)
        return self.plan_code

    def hydra_entry(self, exit_codes: list[int]) -> None:
        self.hydra_argv.append(list(sys.argv))
        if self.interrupt:
            raise KeyboardInterrupt
        exit_codes.extend(self.job_codes)

    def register(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        self.at_exit.append((fn, args, kwargs))

    def run_exit_handlers(self) -> None:
        for fn, args, kwargs in self.at_exit:
            fn(*args, **kwargs)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    """`main` with its collaborators faked: no compose, no Hydra, no MLflow; RANK unset (a single process)."""
    import atexit

    import runner.cli.plan
    import runner.run.preflight

    f = Fakes()
    monkeypatch.setattr(runner.run.preflight, "precheck", f.precheck)
    monkeypatch.setattr(runner.cli.plan, "main", f.plan)
    monkeypatch.setattr(cli_main, "_hydra_entry", f.hydra_entry)
    monkeypatch.setattr(atexit, "register", f.register)
    monkeypatch.delenv("RANK", raising=False)
    return f


def start(monkeypatch: pytest.MonkeyPatch, argv: list[str], with_helper: bool = False) -> int | str | None:
    """`runner <argv>` through `main`: the exit code it asks for (None: it returned without exiting)."""
    monkeypatch.setattr(sys, "argv", ["runner", *argv])
    try:
        cli_main.main(with_helper=with_helper)
    except SystemExit as e:
        return e.code if e.code is not None else "exit(None)"
    return None


@pytest.mark.parametrize("with_helper", [True, False])
def test_a_command_passes_the_preflight_then_hydra_runs_it_with_argv_unchanged(
    with_helper: bool, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.job_codes = [0, 0]
    assert start(monkeypatch, ["-m", "act=relu,prelu"], with_helper) is None  # every job succeeded: no exit
    assert fakes.prechecked == [(["-m", "act=relu,prelu"], with_helper)]  # the helper only where asked for
    assert fakes.hydra_argv == [["runner", "-m", "act=relu,prelu"]]
    assert fakes.planned == [] and fakes.at_exit == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--cfg", "job", "act=rleu"],
        ["-c", "job"],
        ["--info"],
        ["-i", "searchpath"],
        ["--info=config"],  # a flag with its value after "="
        ["--hydra-help"],
        ["--version"],
        ["--shell-completion", "install=bash"],
        ["-sc", "install=bash"],
    ],
)
def test_hydras_own_info_flags_skip_the_preflight_and_go_to_hydra(
    argv: list[str], fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hydra prints something and runs no job: nothing to check (a typo in `--cfg job act=rleu` is Hydra's)."""
    assert start(monkeypatch, argv) is None
    assert fakes.prechecked == [] and fakes.hydra_argv == [["runner", *argv]]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_runners_help_flags_print_its_page_before_any_check(
    flag: str, fakes: Fakes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert start(monkeypatch, ["act=rleu", flag]) == 0
    assert capsys.readouterr().out == help_text() + "\n"
    assert fakes.prechecked == [] and fakes.hydra_argv == []


def test_a_refused_command_says_the_preflights_line_and_exits_2_before_hydra_or_the_plan(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.problem = "trainer.epochs=-1: must be at least 1"
    assert start(monkeypatch, ["--plan", "trainer.epochs=-1"]) == 2
    assert capsys.readouterr().err == "runner: error: trainer.epochs=-1: must be at least 1\n"
    assert fakes.prechecked == [(["trainer.epochs=-1"], False)]  # --plan is runner's flag, not an override
    assert fakes.planned == [] and fakes.hydra_argv == []


@pytest.mark.parametrize("code", [0, 2])
def test_plan_prints_the_plan_instead_of_running_and_exits_with_its_code(
    code: int, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.plan_code = code
    assert start(monkeypatch, ["-m", "--plan", "act=relu,prelu"]) == code
    assert fakes.prechecked == [(["-m", "act=relu,prelu"], False)]
    assert fakes.planned == [["-m", "act=relu,prelu"]]
    assert fakes.hydra_argv == []  # Hydra's launcher would have made an output directory


@pytest.mark.parametrize(("codes", "exit_code"), [([], None), ([0, 0], None), ([0, 3, 1], 3), ([1], 1)])
def test_the_command_exits_with_the_highest_exit_code_of_its_jobs(
    codes: list[int], exit_code: int | None, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.job_codes = codes
    assert start(monkeypatch, ["-m", "seed=0,1,2"]) == exit_code


def test_ctrl_c_before_a_job_trains_says_how_to_continue_and_exits_130(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.interrupt = True
    assert start(monkeypatch, ["act=relu"]) == 130  # 128 + SIGINT, as a shell reports it
    assert capsys.readouterr().err == (
        "runner: error: interrupted before a job started training; run the same command again to continue\n"
    )


@pytest.mark.parametrize("rank", ["1", "3"])
def test_torchruns_other_ranks_run_hydra_in_a_scratch_dir_removed_at_exit(
    rank: str, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank > 0: no output_subdir, no logging setup, Hydra's job dir in a fresh temporary directory (not
    outputs/), which is removed at exit, quietly even when something removed it first."""
    import shutil
    import tempfile

    monkeypatch.setenv("RANK", rank)
    assert start(monkeypatch, ["act=relu"]) is None
    ((argv),) = fakes.hydra_argv
    scratch = argv[-1].removeprefix("hydra.sweep.dir=")
    try:
        assert argv == [
            "runner",
            "act=relu",
            "hydra.output_subdir=null",
            "hydra/job_logging=none",
            "hydra/hydra_logging=none",
            f"hydra.run.dir={scratch}",
            f"hydra.sweep.dir={scratch}",
        ]
        path = Path(scratch)
        assert path.is_dir() and path.parent == Path(tempfile.gettempdir())
        assert path.name.startswith("runner-rank")
        fakes.run_exit_handlers()
        assert not path.exists()
        fakes.run_exit_handlers()  # already gone: no error at exit
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize("rank", [None, "0"])
def test_a_single_process_or_rank_0_keeps_hydras_own_dirs_and_logging(
    rank: str | None, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rank is not None:
        monkeypatch.setenv("RANK", rank)
    assert start(monkeypatch, ["act=relu"]) is None
    assert fakes.hydra_argv == [["runner", "act=relu"]] and fakes.at_exit == []


def test_hydras_entry_hands_the_composed_job_to_run_job_and_collects_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Hydra app on runner's config (one job: a sweep's callback would open a store), the job faked."""
    from hydra.core.global_hydra import GlobalHydra

    import runner.run.job

    seen: list[tuple[str, str]] = []

    def run_job(cfg: Any) -> int:
        seen.append((cfg.model.name, cfg.act.name))
        return 4

    monkeypatch.setattr(runner.run.job, "run_job", run_job)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["runner", "model=vgg_e", "act=prelu", f"hydra.run.dir={tmp_path}/out"])
    codes: list[int] = []
    try:
        cli_main._hydra_entry(codes)
    finally:
        GlobalHydra.instance().clear()
    assert seen == [("vgg_e", "prelu")] and codes == [4]
