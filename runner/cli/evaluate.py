"""`runner-eval`: evaluate a trained model on the test set, as torchvision's `train.py --test-only` and timm's
`validate.py` do, and log the result to a new MLflow run linked to its source.

    runner-eval <run id>                          # a finished run's checkpoint/last.pt, with its config.yaml
    runner-eval <run id> --view ten_crop          # another test view (whole, center, ten_crop, dense)
    runner-eval checkpoints/runner/<hash>/last.pt model=resnet56 dataset=cifar10   # a file + its overrides

The training config comes from the run's `config.yaml` artifact, or, for a file, is composed from the
overrides exactly as `runner <overrides>` composes it, and the checkpoint's config hash must match it (a file
of another config is refused, naming it). Only what evaluation may change differs from training, and it is
given as flags (--view, --batch-size, ...), so the hash check never mixes up the two. The metrics are
runner.train.metrics.EVAL_METRICS through runner/train/loop.py's `build_parts` and `evaluate`, the code that computed the
run's own test_* metrics: same view, same device, same numbers. The new run lives in the source's experiment,
tagged `runner.eval_of=<run id or file>`; it carries no `runner.config_hash` tag, so a re-run of the training
command never mistakes it for the training run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from runner import console
from runner.config.compose import override_key
from runner.errors import ConfigError, RunnerError

# Flags → the config key they set for the evaluation only (each checked by that key's rule in config.SCHEMA).
FLAGS = {
    "view": "dataset.test_view",
    "batch_size": "trainer.batch_size",
    "accelerator": "trainer.accelerator",
    "test_subset": "dataset.test_subset",
    "data_root": "dataset.root",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="runner-eval",
        description="Evaluate a run's checkpoint (by run id) or a checkpoint file on the test set; log eval_* "
        "metrics to a new MLflow run tagged runner.eval_of.",
    )
    parser.add_argument("source", help="an MLflow run id, or a checkpoint file (last.pt)")
    parser.add_argument("overrides", nargs="*", help="run id: tracking.* only; file: the training overrides")
    parser.add_argument("--view", help="test view: whole, center, ten_crop, dense (default: the run's)")
    parser.add_argument("--batch-size", type=int, help="evaluation batch size (default: the run's)")
    parser.add_argument("--accelerator", help="auto, cpu or cuda (default: the run's)")
    parser.add_argument("--test-subset", type=int, help="the first N test images (default: the run's)")
    parser.add_argument("--data-root", help="where the data set lies on this machine (default: the run's)")
    return parser.parse_args(argv)


def compose(overrides: list[str]) -> dict[str, Any]:
    """The config `runner <overrides>` composes, checked by the same pre-check (one line on a bad value), less
    its dry build: the evaluated run's own config decides the model, and the evaluation builds it."""
    from runner.config.compose import compose as hydra_compose
    from runner.run.preflight import precheck

    problem = precheck(overrides, build=False)
    if problem:
        raise ConfigError(problem)
    return hydra_compose(overrides)


def with_flags(cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The training config with the evaluation's flags applied, each value checked by its key's rule."""
    import copy

    from runner.config.schema import SCHEMA, check_value

    out = copy.deepcopy(cfg)
    for flag, key in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            check_value(key, value, SCHEMA[key])
            group, leaf = key.split(".")
            out[group][leaf] = value
    return out


def from_run(tracker: Any, run_id: str, composed: dict[str, Any], tmp: Path) -> tuple:
    """(training config, checkpoint, experiment id, run name) of a finished run in the store."""
    from runner.config import parse_yaml
    from runner.config.identity import config_hash
    from runner.train import checkpoint

    if tracker.run_id_or_none(run_id) is None:
        raise ConfigError(f"{run_id}: no such checkpoint file, and no run with that id in {tracker.uri}")
    run = tracker.get_run(run_id)
    text = tracker.read_artifact_text(run_id, "config.yaml")
    if text is None:
        raise ConfigError(f"run {run_id} has no config.yaml artifact: not a runner run")
    cfg = {**parse_yaml(text), "tracking": composed["tracking"]}  # the store is where we are now
    path = tracker.download_artifact(run_id, "checkpoint/last.pt", tmp)
    if path is None:
        raise ConfigError(
            f"run {run_id} has no checkpoint/last.pt artifact (unfinished, or tracking.log_checkpoint=false); "
            "pass the checkpoint file instead"
        )
    return cfg, checkpoint.load(path, config_hash(cfg)), run.info.experiment_id, run.info.run_name


def from_file(path: Path, composed: dict[str, Any]) -> tuple:
    """(training config, checkpoint, experiment id (None: the config's experiment), run name) of a checkpoint
    file of the composed config."""
    from runner.config.identity import config_hash
    from runner.train import checkpoint

    saved = checkpoint.load(path, config_hash(composed))  # refuses a file of another config, naming it
    return composed, saved, None, path.parent.name


def evaluate_checkpoint(cfg: dict[str, Any], saved: dict[str, Any], cwd: Path) -> dict[str, float]:
    """EVAL_METRICS of the checkpoint's weights on the test set, built as training builds it (one device)."""
    from runner.config.schema import validate
    from runner.data import check_data
    from runner.run.preflight import check_model, check_parts
    from runner.train.checkpoint import CheckpointError
    from runner.train.loop import JobInfo, build_parts, evaluate

    validate(cfg)
    check_model(cfg)
    check_parts(cfg)  # a test view the model has no form for (dense on the SPP nets) stops here
    check_data(cfg["dataset"], cwd)
    parts = build_parts(cfg, JobInfo(saved["config_hash"], "", str(cwd)))
    try:
        parts.model.load_state_dict(saved["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"the checkpoint does not fit this model ({first})") from None
    return evaluate(parts.model, parts.data.test, parts.autocast, 1, parts.dense_test)


def log_eval_run(
    tracker: Any,
    experiment_id: str,
    name: str,
    eval_of: str,
    cfg: dict,
    saved: dict,
    metrics: dict[str, float],
) -> str:
    """A new FINISHED run: eval_* metrics at the checkpoint's iteration, the config, the source as a tag."""
    import yaml

    from runner.config.schema import flatten
    from runner.run.job import command_line

    command = command_line().replace("runner ", "runner-eval ", 1)
    view = cfg["dataset"]["test_view"]
    tags = {
        "runner.eval_of": eval_of,
        "runner.eval_view": view,
        "runner.eval_config_hash": saved[
            "config_hash"
        ],  # not runner.config_hash: never taken for a training run
        "runner.model": cfg["model"]["name"],
        "runner.dataset": cfg["dataset"]["name"],
        "runner.status": "finished",
        "runner.command": command,
        "mlflow.note.content": f"Evaluation of {eval_of}, produced by:\n\n    {command}",
    }
    tracker.start(experiment_id, f"eval-{name}-{view}", tags)
    tracker.log_params(flatten({k: v for k, v in cfg.items() if k != "expected"}))
    tracker.log_text(yaml.safe_dump(cfg, sort_keys=False), "config.yaml")
    step = saved["train_state"]["global_step"]
    tracker.log_metrics({f"eval_{k}": v for k, v in metrics.items()}, step=step)
    tracker.end("FINISHED")
    return tracker.run_id


def open_store(tracking: dict[str, Any], cwd: Path) -> Any:
    """A Tracker on the store the config names (relative paths against `cwd`, as `runner` does)."""
    from runner.tracking.store import Tracker, artifact_location, resolve_uri

    root = artifact_location(tracking["artifact_root"], cwd)
    return Tracker(resolve_uri(tracking["uri"], cwd), root, tracking["retry_seconds"])


def store_exists(source: str, uri: str, cwd: Path) -> None:
    """A run id needs a store to look in: opening a missing sqlite file would create it."""
    from runner.tracking.store import resolve_uri, store_exists

    resolved = resolve_uri(uri, cwd)
    if not store_exists(resolved):
        raise ConfigError(f"{source}: no such checkpoint file, and no MLflow store at {resolved}")


def run(argv: list[str], cwd: Path) -> int:
    args = parse(argv)
    file_mode = Path(args.source).suffix == ".pt" or (cwd / args.source).is_file()
    not_tracking = [o for o in args.overrides if not override_key(o).startswith("tracking.")]
    if not file_mode and not_tracking:
        raise ConfigError(
            f"{not_tracking[0]}: a run's own config.yaml decides what it trained; allowed overrides: tracking.*; "
            f"evaluation settings: --{', --'.join(f.replace('_', '-') for f in FLAGS)}"
        )
    composed = compose(args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        if file_mode:  # the file is checked before the store is opened: a refused file leaves no mlflow.db
            path = (cwd / args.source).resolve()
            cfg, saved, experiment_id, name = from_file(path, composed)
            tracker, eval_of = open_store(composed["tracking"], cwd), str(path)
        else:
            store_exists(args.source, composed["tracking"]["uri"], cwd)
            tracker, eval_of = open_store(composed["tracking"], cwd), args.source
            cfg, saved, experiment_id, name = from_run(tracker, args.source, composed, Path(tmp))
        cfg = with_flags(cfg, args)
        metrics = evaluate_checkpoint(cfg, saved, cwd)
    # Only now, with the numbers in hand, is anything written: a bad value or a failed evaluation leaves nothing.
    experiment_id = experiment_id or tracker.experiment_id(cfg["tracking"]["experiment"])
    run_id = log_eval_run(tracker, experiment_id, name, eval_of, cfg, saved, metrics)
    view = cfg["dataset"]["test_view"]
    console.summary(f"eval of {eval_of} ({view})", {f"eval_{k}": v for k, v in metrics.items()})
    console.info(f"MLflow run {run_id} (runner.eval_of={eval_of})")
    return 0


def main() -> None:
    try:
        code = run(sys.argv[1:], Path.cwd())
    except RunnerError as e:
        console.error(str(e))
        code = e.exit_code
    sys.exit(code)


if __name__ == "__main__":
    main()
