"""`runner --plan <overrides>`: what a run or a `-m` sweep would do, before launching it.

    runner --plan model=vgg_e act=prelu
    runner --plan -m +experiment=init_depth_small
    runner --plan -m act=relu,prelu init=kaiming,xavier_he trainer.epochs=10

Every job of the sweep (the cartesian product of the command's sweeps and the preset's
`hydra.sweeper.params`, expanded as Hydra's basic sweeper does) is composed with Hydra's compose API and
checked by the job's own `prepare` and `decide`: it will train, resume from the epoch its checkpoint holds,
or be skipped as finished. Its projected time is the images it still has to train over a throughput
measured earlier on this device: the median `images_per_s` of the newest runs in the store with the same
model, data set, device and device count. Read-only: no MLflow run, no experiment, no store, no output
directory (Hydra's launcher never starts), no checkpoint, no download.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config.compose import compose, override_key
from runner.tracking.store import open_existing

# Training images of the resident data sets (the files' own counts); imagenet counts its train/ folders.
RECENT_RUNS = 20  # how many earlier runs of a model the throughput is the median of


@dataclass
class Planned:
    """One job of the plan."""

    swept: dict[str, str]  # the swept keys' values of this job
    action: str  # train | resume | continue | skip | refused
    detail: str = ""
    images: int | None = None  # still to train (None: unknown)
    img_s: float | None = None  # measured throughput (None: unknown)
    measured_by: str = ""  # how many runs img_s is the median of

    @property
    def seconds(self) -> float | None:
        if self.images is None or self.img_s is None:
            return None
        return self.images / self.img_s


class _NoRuns:
    """A store or experiment that does not exist yet: no earlier runs (and nothing is created to find out)."""

    def find_runs(self, experiment_id: str | None, tags: dict[str, str]) -> list[Any]:
        return []


def expand(argv: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """(the override list of every job, the swept keys): one job without -m, else Hydra's sweep."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in argv if not a.startswith("-") and not a.startswith("hydra")]
    if "-m" not in argv and "--multirun" not in argv:
        return [overrides], []
    parser = OverridesParser.create()
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    params = compose(fixed, hydra=True).hydra.sweeper.params or {}
    parsed = parser.parse_overrides([*(f"{k}={v}" for k, v in params.items()), *overrides])
    cli = [
        o.get_key_element().lstrip("+~") for o in parser.parse_overrides(overrides) if o.is_sweep_override()
    ]
    swept = [k for k in dict.fromkeys([*map(str, params), *cli]) if k != "experiment"]
    (jobs,) = BasicSweeper.split_arguments(parsed, None)  # the cartesian product, as Hydra launches it
    return jobs, swept


def train_images(data: dict[str, Any], cwd: Path) -> int | None:
    """Images per epoch after the validation split and the subset; None when unknown without reading."""
    from runner.config.datasets import is_folder
    from runner.config.datasets import train_images as dataset_train_images

    name, val = data["name"], data["val_split"] or 0
    if is_folder(name):
        train = (cwd / data["root"]).resolve() / "train"
        if not train.is_dir():
            return None
        total = sum(1 for d in train.iterdir() if d.is_dir() for f in d.iterdir() if f.is_file()) - val
        return min(total, data["subset"] or total)  # held out first, then the subset (imagenet.py)
    total = dataset_train_images(name, data)
    if total is None:
        return None
    return min(total, data["subset"] or total) - val  # the subset first, then held out (tensor_loader.py)


def total_steps(cfg: dict[str, Any], devices: int, cwd: Path) -> tuple[int | None, int]:
    """(iterations the job runs in all, images per iteration), as runner/train/loop.py:build_parts counts them."""
    trainer = cfg["trainer"]
    batch = trainer["batch_size"] * devices
    if trainer["max_steps"]:
        return trainer["max_steps"], batch
    images = train_images(cfg["dataset"], cwd)
    return (None if images is None else trainer["epochs"] * (images // batch)), batch


def throughput(tracker: Any, cfg: dict[str, Any], devices: int) -> tuple[float | None, int]:
    """The median images_per_s of the newest runs of this model and data set on this device, and their count."""
    from runner.train.device import device_name

    if tracker is None:
        return None, 0
    wanted = {
        "params.model": cfg["model"]["name"],
        "params.dataset": cfg["dataset"]["name"],
        "tags.`runner.device`": device_name(cfg["trainer"]),
        "tags.`runner.devices`": str(devices),
    }
    query = " and ".join(f"{k} = '{v}'" for k, v in wanted.items())
    rates = [
        r.data.metrics["images_per_s"]
        for r in tracker.search_everywhere(query, RECENT_RUNS)
        if "images_per_s" in r.data.metrics
    ]
    return (statistics.median(rates) if rates else None), len(rates)


def plan_job(overrides: list[str], swept: list[str], cwd: Path, stores: dict[str, Any]) -> Planned:
    """Compose one job, run the job's own checks and decision on it, and count what it has left to train."""
    from hydra.errors import HydraException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from runner.config import GROUPS
    from runner.config.compose import explain
    from runner.errors import RunnerError
    from runner.run.job import decide, prepare_spec
    from runner.train import checkpoint

    values = {override_key(o): o.split("=", 1)[1] for o in overrides if "=" in o}
    item = Planned({k: values.get(k, "") for k in swept}, "train")
    try:
        cfg = compose(overrides, hydra=True)
        choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if k in GROUPS or k == "experiment"}
        with open_dict(cfg):  # the job's config, as Hydra hands it to the task: no hydra node
            del cfg["hydra"]
        fetches = "download" in cfg.dataset and cfg.dataset.download  # only sets with files to fetch have it
        spec = prepare_spec(cfg, choices, overrides, cwd, check_files=not fetches)
        if spec.uri not in stores:
            stores[spec.uri] = open_existing(spec.uri)
        tracker = stores[spec.uri]
        experiment = spec.resolved["tracking"]["experiment"]
        experiment_id = tracker.experiment_id_or_none(experiment) if tracker is not None else None
        decision = decide(spec, tracker if experiment_id is not None else _NoRuns(), experiment_id or "")
        steps, batch = total_steps(spec.resolved, spec.devices, cwd)
        done = 0
        if decision.action == "skip":
            item.action, item.detail, steps = "skip", f"({decision.detail} in run {decision.run_id})", 0
        elif decision.action == "resume" or decision.carried is not None:
            saved = decision.carried or checkpoint.load(spec.ckpt_path, spec.config_hash)
            state = saved["train_state"]
            done = state["global_step"]
            where = f"run {decision.run_id}" if decision.action == "resume" else "a new run"
            item.action = "resume" if decision.action == "resume" else "continue"
            item.detail = f"from epoch {state['epoch']} (step {done}) in {where}"
        item.images = None if steps is None else max(steps - done, 0) * batch
        item.img_s, runs = throughput(tracker, spec.resolved, spec.devices)
        item.measured_by = f"median of {runs} run(s)" if runs else "unknown"
    except RunnerError as e:
        item.action, item.detail = "refused", str(e)
    except (HydraException, OmegaConfBaseException) as e:  # a preset's sweep value that does not compose
        item.action, item.detail = "refused", explain(e, overrides)
    return item


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def show(items: list[Planned], swept: list[str]) -> None:
    from runner import console

    header = ["#", *swept, "action", "images to train", "img/s (measured)", "projected"]
    rows = []
    for i, item in enumerate(items):
        action = f"{item.action} {item.detail}".strip()
        images = "unknown" if item.images is None else f"{item.images:,}"
        rate = "unknown" if item.img_s is None else f"{item.img_s:,.0f} ({item.measured_by})"
        projected = "0 s" if item.images == 0 else _duration(item.seconds)
        rows.append([str(i), *item.swept.values(), action, images, rate, projected])
    counts = {a: sum(item.action == a for item in items) for a in dict.fromkeys(i.action for i in items)}
    title = f"plan: {len(items)} job(s), " + ", ".join(f"{n} {a}" for a, n in counts.items())
    known = [i.seconds for i in items if i.seconds is not None or i.images == 0]
    total = sum(s or 0.0 for s in known)
    if not known:
        caption = (
            "projected training time: unknown (no earlier run of these models on this device in the store)"
        )
    elif len(known) < len(items):
        caption = f"projected training time: {_duration(total)} for {len(known)} of {len(items)} jobs (the "
        caption += "others' throughput or size is unknown)"
    else:
        caption = f"projected training time: {_duration(total)}"
    caption += "; evaluation not included; a plateau schedule may stop earlier. Nothing was run or written."
    console.table(title, header, rows, caption=caption)


def slurm_script(argv: Sequence[str], jobs: list[list[str]]) -> str | None:
    """hydra/launcher=slurm*: the sbatch script hydra-submitit-launcher would submit for these jobs (one
    job array; each element runs one job's overrides), built by submitit itself as the launcher builds it;
    None for another launcher. Nothing is submitted and no folder is created."""
    launcher_args = [a for a in argv if a.startswith(("hydra/launcher=", "hydra.launcher."))]
    if not any(a.startswith("hydra/launcher=slurm") for a in launcher_args):
        return None
    import tempfile

    import submitit
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(
        compose([*jobs[0], *launcher_args], hydra=True).hydra.launcher, resolve=True
    )
    folder = str(params.pop("submitit_folder"))
    try:
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=tempfile.gettempdir(), slurm_max_num_timeout=params.pop("max_num_timeout")
        )
    except RuntimeError:  # submitit's Slurm executor wants srun on this machine: a plan made on a laptop
        return (
            f"{len(jobs)} Slurm job(s): no sbatch script here (submitit writes it only where SLURM's srun is)"
        )
    base = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name"}
    executor.update_parameters(
        **{k if k in base else f"slurm_{k}": v for k, v in params.items() if k != "_target_"}
    )
    slurm = executor._executor  # the launcher's own executor: its sbatch text, without submitting
    if len(jobs) > 1:
        slurm.parameters["map_count"] = len(jobs)
    slurm.folder = Path(folder).absolute()
    text = slurm._make_submission_file_text(slurm._submitit_command_str, "plan")
    return f"{len(jobs)} Slurm job(s), submitted as:\n" + text.replace("[", r"\[")


def main(argv: Sequence[str]) -> int:
    """Print the plan (and the sbatch script of a SLURM launcher); 2 when a job would be refused (its line
    says why), else 0."""
    jobs, swept = expand(argv)
    stores: dict[str, Any] = {}
    items = [plan_job(job, swept, Path.cwd(), stores) for job in jobs]
    show(items, swept)
    script = slurm_script(argv, jobs)
    if script is not None:
        from runner import console

        console.info(script)
    return 2 if any(item.action == "refused" for item in items) else 0
