"""The Hydra callback of a `--multirun`: one MLflow parent run per sweep, every job nested under it.

The parent's id travels to the jobs in env.PARENT_RUN_ID (inherited by launcher subprocesses too).
At the end of the sweep the parent is closed and the report (table, curves, verdicts) is logged on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from runner import env


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a sweep varies: the preset's hydra.sweeper.params, then the command line's sweeps."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [str(k) for k in (config.hydra.sweeper.get("params") or {})]
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override() and key not in keys:
            keys.append(key)
    return [k for k in keys if k != "experiment"]


NAME_LIMIT = 250  # MLflow's longest run name


def sweep_name(preset: str | None, overrides: list[str]) -> str:
    """The parent run's name: the preset (`init_depth_small`), else what the command sweeps, as typed
    (`sweep act=relu,prelu × init=kaiming,xavier_he`), so that ad-hoc sweeps tell apart in the MLflow UI."""
    if preset:
        return preset
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = [o.input_line.lstrip("+~") for o in parsed if o.is_sweep_override()]
    name = " × ".join(["sweep " + swept[0], *swept[1:]]) if swept else "sweep"
    return name if len(name) <= NAME_LIMIT else name[: NAME_LIMIT - 1] + "…"


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.tracker: Any = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if int(os.environ.get("RANK", "0")) > 0:
            return
        from runner.run.job import command_line
        from runner.tracking.store import Tracker, artifact_location, check_reachable, resolve_uri

        cwd = Path(config.hydra.runtime.cwd)  # HydraConfig is not set yet when a multirun starts
        tracking = OmegaConf.to_container(config.tracking, resolve=True)
        uri = resolve_uri(tracking["uri"], cwd)
        check_reachable(uri)
        self.tracker = Tracker(uri, artifact_location(tracking["artifact_root"], cwd))
        experiment_id = self.tracker.experiment_id(tracking["experiment"])
        choice = config.hydra.runtime.choices.get("experiment")
        command = command_line()
        name = sweep_name(choice, list(config.hydra.overrides.task))
        self.tracker.start(
            experiment_id,
            name,
            {
                "runner.sweep": "parent",
                "runner.command": command,
                "mlflow.note.content": f"Produced by:\n\n    {command}",
            },
        )
        keys = swept_keys(config)
        preset = {
            "experiment": choice,
            "sweep_keys": keys,
            "expected": OmegaConf.to_container(config.expected, resolve=True)
            if "expected" in config
            else None,
        }
        self.tracker.set_tags({"runner.sweep_keys": ",".join(keys)})
        self.tracker.log_text(json.dumps(preset, indent=2), "preset.json")  # what runner-report reads back
        os.environ[env.PARENT_RUN_ID] = self.tracker.run_id
        os.environ[env.SWEPT_KEYS] = ",".join(keys)  # job run names show only what the sweep varies

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.tracker is None:
            return
        status, failed = "FINISHED", 0
        try:
            from runner.analysis import report

            report.sweep_report(self.tracker, config)
            failed = self.failed_jobs()
        except Exception as e:  # the report must never hide the sweep's own results
            from runner.console import error

            error(f"sweep report failed: {type(e).__name__}: {e}")
            status = "FAILED"
        finally:
            self.tracker.end(status)
            os.environ.pop(env.PARENT_RUN_ID, None)
            from runner.console import info

            url = self.tracker.run_url()
            info(
                f"MLflow sweep (parent run) {self.tracker.run_id}"
                + (f": {url}" if url else "; browse it with `make ui`")
            )
            os.environ.pop(env.SWEPT_KEYS, None)
        if (
            failed
        ):  # parallel launchers run jobs in other processes: their exit codes never reach runner.cli.main
            raise SystemExit(1)

    def failed_jobs(self) -> int:
        """Jobs of this sweep that diverged or failed, read from the store (whichever process ran them)."""
        parent = self.tracker.get_run(self.tracker.run_id)
        runs = self.tracker.child_runs(parent)
        return sum(r.data.tags.get("runner.status") in ("diverged", "failed") for r in runs)
