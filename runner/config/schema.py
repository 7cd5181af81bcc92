"""The config schema and its validation.

Validation runs twice: in the pre-flight (runner/run/preflight.py) before Hydra starts (so a typo costs no torch/mlflow import and
leaves nothing behind), and at the start of every job (presets and sweeps compose values the command
line never saw). Each error is one line naming the key and what is allowed.
Imports here stay light: no torch, no mlflow.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.config import CONF_DIR, GROUPS, parse_yaml
from runner.config.datasets import FACTS, KINDS, about, is_folder
from runner.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    types: tuple[type, ...]
    check: Callable[[Any], bool] | None = None
    allowed: str | Callable[[], str] = ""  # a callable when the list comes from a registry
    nullable: bool = False
    item: Rule | None = None  # a list's elements: each is checked, and an error names `key[i]`
    limit: int | None = None  # an integer's bound in the library that consumes it: |value| < limit

    def describe(self) -> str:
        text = self.allowed() if callable(self.allowed) else self.allowed
        text = text or " or ".join(t.__name__ for t in self.types)
        return text + (" or null" if self.nullable else "")


# The libraries' limits, beyond what a schema range says: torch holds counts, sizes and steps as int64, and
# torch.manual_seed takes 64 unsigned bits (a larger integer raises "Overflow when unpacking long long").
INT64 = 2**63
SEED_BITS = 2**64
LIMITS = {
    INT64: "torch's 64-bit integers (at most 2^63 − 1)",
    SEED_BITS: "what torch.manual_seed takes (64 bits)",
}


def _int(
    check: Callable[[Any], bool] | None = None,
    allowed: str = "an integer",
    nullable: bool = False,
    limit: int = INT64,
) -> Rule:
    return Rule((int,), check, allowed, nullable, limit=limit)


def _finite(value: float) -> bool:
    """A float64: an integer too large for one (1e400 written out) is no number torch can use."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _num(
    check: Callable[[Any], bool] | None = None, allowed: str = "a number", nullable: bool = False
) -> Rule:
    return Rule((int, float), lambda v: _finite(v) and (check is None or check(v)), allowed, nullable)


def _choice(*values: str, nullable: bool = False) -> Rule:
    return Rule((str,), lambda v: v in values, "one of " + ", ".join(values), nullable)


@functools.cache
def declared_names(group: str) -> tuple[str, ...]:
    """The `name` of every conf/<group>/*.yaml option. The registries hold the same names (tests/unit/config/test_conf_tree.py
    checks it; `check_registered` checks it again in every job); reading YAML keeps the pre-check of a
    command free of torch, so a typo costs half a second."""
    names = {parse_yaml(p.read_text())["name"] for p in (CONF_DIR / group).glob("*.yaml")}
    return tuple(sorted(names))


def registry_names(where: str) -> list[str]:
    """The option names of a registry, `module:attribute` (a dict, or a function returning the names)."""
    module, attribute = where.split(":")
    found = getattr(importlib.import_module(module), attribute)
    return sorted(found() if callable(found) else found)


# group → the registry that decides its `name` (imported by jobs, never by the pre-check)
REGISTRIES = {
    "act": "runner.models.layers:ACTIVATIONS",
    "init": "runner.models.layers:INITS",
    "model": "runner.models:model_names",
    "dataset": "runner.data:dataset_names",
    "schedule": "runner.train.schedule:SCHEDULES",
    "optim": "runner.train.optim:OPTIMIZERS",
}


def _named(group: str) -> Rule:
    """A `<group>.name`: one of the options the group declares."""
    return Rule(
        (str,),
        lambda v: v in declared_names(group),
        lambda: "one of " + ", ".join(declared_names(group)),
    )


def check_registered(cfg: Mapping[str, Any]) -> None:
    """In the job (torch is loaded there): each group's name is in its registry, the one list that decides."""
    for group, where in REGISTRIES.items():
        names = registry_names(where)
        if cfg[group]["name"] not in names:
            raise ConfigError(
                f"{group}.name={cfg[group]['name']!r} is not registered; allowed: {', '.join(names)}"
            )


def _list(
    item: Rule,
    allowed: str,
    min_len: int = 0,
    max_len: int = 1000,
    whole: Callable[[list[Any]], bool] | None = None,
    nullable: bool = False,
) -> Rule:
    """A list whose every element passes `item` (an error names the element) and, as a whole, `whole`."""

    def check(values: Any) -> bool:
        fine = min_len <= len(values) <= max_len and all(passes(v, item) for v in values)
        return fine and (whole is None or whole(values))

    return Rule((list,), check, allowed, nullable, item)


def _increasing(values: list[Any]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def _ordered(values: list[Any]) -> bool:
    return all(a <= b for a, b in zip(values, values[1:], strict=False))


def _distinct(values: list[Any]) -> bool:
    return len(set(values)) == len(values)


# The data pipelines' names, written here so that the pre-check needs no torch (tests/unit/config/test_conf_tree.py holds
# them equal to runner/data/tensor_loader.py:AUGMENTS and runner/data/augment.py:TRAIN_VIEWS/TEST_VIEWS, and
# runner/data/imagenet.py:NORMALIZE).
RESIDENT_AUGMENTS = ("crop", "flip")  # batched on the device: Fashion-MNIST, CIFAR, synthetic
FOLDER_VIEWS = ("alexnet", "scale_jitter", "random_resized_crop")
FOLDER_TEST_VIEWS = ("center", "ten_crop", "dense")
FOLDER_NORMALIZE = ("per_channel", "per_channel_mean")
AUGMENT_ALLOWED = (
    f"a list of distinct {', '.join(RESIDENT_AUGMENTS)} (resident data sets), "
    f"or one of {', '.join(FOLDER_VIEWS)} (imagenet)"
)


def _augment(value: Any) -> bool:
    if isinstance(value, str):
        return value in FOLDER_VIEWS
    return _distinct(value) and all(isinstance(v, str) and v in RESIDENT_AUGMENTS for v in value)


def _augment_rule() -> Rule:
    item = Rule((str,), lambda v: v in RESIDENT_AUGMENTS, "one of " + ", ".join(RESIDENT_AUGMENTS))
    return Rule((list, str), _augment, AUGMENT_ALLOWED, item=item)


BOOL = Rule((bool,), None, "true or false")
STR = Rule((str,), lambda v: v != "", "a non-empty string")
POSITIVE_INT = _int(lambda v: v >= 1, "an integer ≥ 1")
FRACTION = _num(lambda v: 0 <= v < 1, "a number in [0, 1)")


# --- the words of a model family's OPTIONS table (runner/models/<family>.py) --------------------------------


def choice(*values: str | int) -> Rule:
    """One of `values`: names, or integers."""
    if all(isinstance(v, str) for v in values):
        return _choice(*values)
    return _int(lambda v: v in values, " or ".join(map(str, values)))


def integer(low: int, high: int) -> Rule:
    return _int(lambda v: low <= v <= high, f"an integer in [{low}, {high}]")


def scale_up_to(high: float) -> Rule:
    """A positive factor, at most `high`."""
    return _num(lambda v: 0 < v <= high, f"a number in (0, {high:g}]")


def integers(length: int, low: int, high: int, what: str = "integers") -> Rule:
    return _list(integer(low, high), f"a list of {length} {what}, each in [{low}, {high}]", length, length)


OPTION_WORDS = {
    "BOOL": BOOL,
    "FRACTION": FRACTION,
    "choice": choice,
    "integer": integer,
    "scale_up_to": scale_up_to,
    "integers": integers,
}
MODELS_DIR = CONF_DIR.parent / "models"


@functools.cache
def model_option_rules() -> dict[str, Rule]:
    """`model.<option>` → its rule, from the OPTIONS table beside each family's builders, read from the source
    without importing it (the pre-flight imports no torch). An option two families declare must mean the same."""
    import ast

    rules: dict[str, Rule] = {}
    for path in sorted(MODELS_DIR.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "OPTIONS" for t in node.targets):
                code = compile(ast.Expression(node.value), str(path), "eval")
                for option, rule in eval(code, {"__builtins__": {}}, OPTION_WORDS).items():  # noqa: S307
                    key = f"model.{option}"
                    if key in rules and rules[key].describe() != rule.describe():
                        raise ValueError(
                            f"{key}: {path.name} allows {rule.describe()}, another family {rules[key].describe()}"
                        )
                    rules[key] = rule
    return rules


SEED = _int(lambda v: v >= 0, "an integer in [0, 2^64 − 1]", limit=SEED_BITS)  # each seeds a torch.Generator

# Every leaf of every option of every config group, with its type and range (a test checks that none is
# missing). Names come from the registries that decide them.
SCHEMA: dict[str, Rule] = {
    "seed": SEED,
    "resume": _choice("auto", "never"),
    "resume_from": Rule((str,), lambda v: v != "", "a checkpoint file of this config", nullable=True),
    # conf/act (runner/models/layers.py)
    "act.name": _named("act"),
    "act.init": FRACTION,
    "act.shared": BOOL,
    "act.slope": FRACTION,
    # conf/init (runner/models/layers.py)
    "init.name": _named("init"),
    "init.mode": _choice("fan_in", "fan_out"),
    "init.distribution": _choice("normal", "uniform"),
    "init.std": _num(lambda v: 0 < v <= 1, "a number > 0 and ≤ 1"),
    "init.zero_init_residual": BOOL,
    # conf/model (runner/models: the options' rules are the OPTIONS table of each family file)
    "model.name": _named("model"),
    **model_option_rules(),  # each family's OPTIONS table, beside its builders (runner/models/)
    # conf/dataset (runner/data)
    "dataset.name": _named("dataset"),
    "dataset.root": Rule((str,), lambda v: v != "", "an existing directory", nullable=True),
    "dataset.download": BOOL,
    "dataset.val_split": _int(lambda v: v >= 0, "an integer ≥ 0", nullable=True),
    "dataset.split_seed": SEED,
    "dataset.subset": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "dataset.test_subset": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "dataset.normalize": _choice("per_channel", "per_channel_mean", "per_pixel", "per_pixel_mean"),
    "dataset.augment": _augment_rule(),
    "dataset.crop_pad": _choice("mean", "black"),
    "dataset.test_view": _choice("whole", "dense", "center", "ten_crop"),
    "dataset.scale": _list(POSITIVE_INT, "[S_min, S_max], each ≥ 1, S_min ≤ S_max", 2, 2, _ordered),
    "dataset.crop": POSITIVE_INT,
    "dataset.lighting": _num(lambda v: 0 <= v <= 1, "a number in [0, 1] (AlexNet: 0.1)"),
    "dataset.test_resize": POSITIVE_INT,
    "dataset.workers": _int(lambda v: v >= 0, "an integer ≥ 0", nullable=True),
    "dataset.image_size": POSITIVE_INT,
    "dataset.in_channels": POSITIVE_INT,
    "dataset.num_classes": _int(lambda v: v >= 2, "an integer ≥ 2"),
    "dataset.train_size": POSITIVE_INT,
    "dataset.test_size": POSITIVE_INT,
    "dataset.data_seed": SEED,
    "dataset.about.display": STR,
    "dataset.about.kind": _choice(*KINDS),
    "dataset.about.classes": _int(lambda v: v >= 2, "an integer ≥ 2", nullable=True),
    "dataset.about.channels": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "dataset.about.image_size": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "dataset.about.train_images": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "dataset.about.full_data_args": Rule((str,), None, "a string"),
    # conf/optim (runner/train/optim.py)
    "optim.name": _named("optim"),
    "optim.lr": _num(
        lambda v: v > 0, "a finite number > 0"
    ),  # no upper bound: a diverging lr is a result to record
    "optim.momentum": FRACTION,
    "optim.weight_decay": _num(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "optim.nesterov": BOOL,
    # conf/schedule (runner/train/schedule.py)
    "schedule.name": _named("schedule"),
    "schedule.factor": _num(lambda v: 0 < v < 1, "a number in (0, 1)"),
    "schedule.patience": POSITIVE_INT,
    "schedule.threshold": _num(lambda v: 0 <= v <= 100, "a number in [0, 100] (error points)"),
    "schedule.max_drops": _int(lambda v: v >= 0, "an integer ≥ 0"),
    "schedule.milestones": _list(
        POSITIVE_INT, "a list of increasing iterations, each ≥ 1", whole=_increasing
    ),
    "schedule.gamma": _num(lambda v: 0 < v < 1, "a number in (0, 1)"),
    "schedule.warmup_lr": _num(lambda v: v > 0, "a finite number > 0", nullable=True),
    "schedule.warmup_until_error": _num(lambda v: 0 < v <= 100, "a number in (0, 100]"),
    "schedule.warmup_models": _list(
        _named("model"), "a list of distinct model names", whole=_distinct, nullable=True
    ),
    "schedule.eta_min": _num(lambda v: v >= 0, "a number ≥ 0 (at most optim.lr)"),
    # conf/trainer (runner/train/loop.py, runner/run/ddp.py)
    "trainer.epochs": POSITIVE_INT,
    "trainer.max_steps": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),
    "trainer.batch_size": POSITIVE_INT,
    "trainer.threads": _int(lambda v: v >= 1, "an integer ≥ 1", nullable=True),  # null: cores ÷ jobs at once
    "trainer.devices": Rule(
        (int, str),
        lambda v: v == "auto" or (isinstance(v, int) and v >= 1),
        "an integer ≥ 1 or auto",
        limit=INT64,
    ),
    "trainer.accelerator": _choice("auto", "cpu", "cuda"),
    "trainer.precision": _choice("fp32", "bf16"),
    "trainer.channels_last": BOOL,
    "trainer.compile": BOOL,
    "trainer.deterministic": BOOL,
    "trainer.sync_bn": BOOL,
    "trainer.scale_lr": BOOL,
    "trainer.log_every": POSITIVE_INT,
    "trainer.ckpt_minutes": _num(
        lambda v: 0 < v <= 10080, "a number of minutes in (0, 10080]", nullable=True
    ),
    "trainer.eval_test_every_epoch": BOOL,
    "trainer.progress": BOOL,
    "trainer.ddp_timeout_s": _num(lambda v: 0 < v <= 86400, "a number of seconds in (0, 86400]"),
    "trainer.ckpt_dir": STR,
    # conf/tracking (runner/tracking/store.py)
    "tracking.log_checkpoint": BOOL,
    "tracking.uri": STR,
    "tracking.retry_seconds": _list(
        _num(lambda v: 0 <= v <= 600), "a list of at most 10 pauses in seconds, each in [0, 600]", 0, 10
    ),
    "tracking.artifact_root": STR,
    "tracking.experiment": STR,
    "tracking.system_metrics": BOOL,
    "tracking.system_metrics_seconds": _num(lambda v: 0.1 <= v <= 3600, "a number of seconds in [0.1, 3600]"),
}


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} → {'optim.lr': 0.1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def passes(value: Any, rule: Rule) -> bool:
    if value is None:
        return rule.nullable
    # bool is an int in Python; an int is a fine float.
    ok_type = isinstance(value, rule.types) and not (isinstance(value, bool) and bool not in rule.types)
    return ok_type and not _beyond_limit(value, rule) and (rule.check is None or bool(rule.check(value)))


def _beyond_limit(value: Any, rule: Rule) -> bool:
    return rule.limit is not None and isinstance(value, int) and abs(value) >= rule.limit


def check_value(key: str, value: Any, rule: Rule) -> None:
    if passes(value, rule):
        return
    if _beyond_limit(value, rule):  # in range for the schema, yet torch would raise inside the run
        raise ConfigError(f"{key}={_shown(value)} is beyond {LIMITS[rule.limit]}; expected {rule.describe()}")  # type: ignore[index]
    if rule.item is not None and isinstance(value, list):  # name the element that is wrong
        for i, element in enumerate(value):
            if not passes(element, rule.item):
                raise ConfigError(
                    f"{key}[{i}]={element!r} is not allowed; expected {rule.item.describe()} "
                    f"({key}: {rule.describe()})"
                )
    raise ConfigError(f"{key}={_shown(value)} is not allowed; expected {rule.describe()}")


def _shown(value: Any, width: int = 40) -> str:
    """The value as the error line quotes it: a 400-digit number is cut, not printed whole."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 12]}… ({len(text)} characters)"


def _check_facts(flat: Mapping[str, Any]) -> None:
    """`dataset.about.*` states what the data set is: an override would make the pre-flight, the plan and the
    verdicts describe another data set than the one that trains."""
    name = flat["dataset.name"]
    facts = about(name)
    for key in FACTS:
        given = flat.get(f"dataset.about.{key}")
        if given != facts.get(key):
            raise ConfigError(
                f"dataset.about.{key}={given!r} is a fact of {name} (conf/dataset/{name}.yaml: {facts.get(key)!r}), "
                "not a setting"
            )


def _check_dataset(flat: Mapping[str, Any]) -> None:
    """What one data set offers depends on its kind: a folder set (ImageNet) names one training view and
    crops from resized images; a resident set lists batched augmentations."""
    name, augment = flat["dataset.name"], flat["dataset.augment"]
    if is_folder(name):
        for key, allowed in (
            ("augment", FOLDER_VIEWS),
            ("test_view", FOLDER_TEST_VIEWS),
            ("normalize", FOLDER_NORMALIZE),
        ):
            if flat[f"dataset.{key}"] not in allowed:
                raise ConfigError(
                    f"dataset.{key}={flat[f'dataset.{key}']!r} is not offered for {name}; "
                    f"allowed: {', '.join(allowed)}"
                )
        crop = flat["dataset.crop"]
        for key, smallest in (("dataset.scale", flat["dataset.scale"][0]), ("dataset.test_resize", None)):
            size = flat[key] if smallest is None else smallest
            if size < crop:
                raise ConfigError(
                    f"{key}={flat[key]!r} is not allowed; the shorter side must be ≥ dataset.crop={crop}"
                )
    elif not isinstance(augment, list):
        raise ConfigError(
            f"dataset.augment={augment!r} is not offered for {name}; expected a list of distinct "
            f"{', '.join(RESIDENT_AUGMENTS)} (e.g. [crop, flip], or [])"
        )
    where = (
        "dataset.train_size" if "dataset.train_size" in flat else "dataset.subset"
    )  # a generated set's size
    subset = flat[where]
    val_split = flat["dataset.val_split"] or 0
    if subset is None or is_folder(name):  # the size is known once the files are read (the job)
        return
    if val_split >= subset:
        raise ConfigError(
            f"dataset.val_split={val_split} is not allowed; it must be smaller than the training set "
            f"({subset} images, {where})"
        )
    devices = flat["trainer.devices"] if isinstance(flat["trainer.devices"], int) else 1
    if flat["trainer.batch_size"] * devices > subset - val_split:
        raise ConfigError(
            f"trainer.batch_size={flat['trainer.batch_size']} × {devices} device(s) is not allowed; it must be "
            f"at most the training set ({subset - val_split} images: {where} − dataset.val_split)"
        )


def _check_schedule(flat: Mapping[str, Any]) -> None:
    if flat["schedule.name"] == "cosine" and flat["schedule.eta_min"] > flat["optim.lr"]:
        raise ConfigError(
            f"schedule.eta_min={flat['schedule.eta_min']} is not allowed; expected a number in "
            f"[0, optim.lr={flat['optim.lr']}]"
        )


# Rules between keys, each run when the config holds every key it reads.
CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[[Mapping[str, Any]], None]], ...] = (
    (
        (
            "dataset.name",
            "dataset.augment",
            "dataset.test_view",
            "dataset.normalize",
            "dataset.val_split",
            "dataset.subset",
            "trainer.batch_size",
            "trainer.devices",
        ),
        _check_dataset,
    ),
    (("schedule.name", "schedule.eta_min", "optim.lr"), _check_schedule),
    (("dataset.name",), _check_facts),
)


UNREAD_OK = ("expected.",)  # a preset's paper numbers and claims: read by the report, never by a job


def check_read(flat: Mapping[str, Any]) -> None:
    """A key no code reads (`+trainer.epoch=3`, a typo added with `+`) is an error naming it, as a wrong
    value of a known key is: accepted and ignored, it would leave the run doing something else."""
    for key in flat:
        if key in SCHEMA or key.startswith(UNREAD_OK):
            continue
        group = key.split(".")[0]
        known = sorted(k.removeprefix(f"{group}.") for k in SCHEMA if k.startswith(f"{group}."))
        where = f"{group} keys: {', '.join(known)}" if known else f"top-level keys: {', '.join(_top_level())}"
        raise ConfigError(f"{key} is not a key runner reads; {where}")


def _top_level() -> list[str]:
    return sorted({k.split(".")[0] for k in SCHEMA})


def validate(cfg: Mapping[str, Any]) -> None:
    """Check every known key's type and range, then the rules between keys (a plain dict or a resolved
    DictConfig)."""
    flat = flatten(cfg)
    check_read(flat)
    for key, rule in SCHEMA.items():
        if key in flat:
            check_value(key, flat[key], rule)
        elif "." in key and key.split(".")[0] in GROUPS and key.endswith(".name"):
            raise ConfigError(f"{key} is missing; every {key.split('.')[0]} config must set it")
    for keys, check in CROSS_CHECKS:
        if all(k in flat for k in keys):
            check(flat)
