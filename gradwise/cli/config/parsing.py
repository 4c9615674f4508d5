"""Reading a config: TOML text -> a validated `Config` (sections, keys, defaults, names).

Every key is validated against the signature of the class it configures (looked up in the table of
``names.py``), so a misspelled key is reported with the file, the section and the valid choices
before anything is built, trained or written.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gradwise.cli.config.names import (
    CONTAINERS,
    DATA_KEYS,
    LEARNERS,
    DATASETS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZER_KEYS,
    OPTIMIZERS,
    PENALTIES,
    SCHEDULE_KEYS,
    SCHEDULES,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the key and the valid choices."""


# Section -> key -> default. `None` marks a required key.
SECTIONS: dict[str, dict[str, Any]] = {
    "data": DATA_KEYS,  # plus the dataset's own keys (names.DATASETS), checked once the dataset is known
    "model": {"layers": None, "init": "default"},
    "loss": {"type": None},
    "optimizer": {"type": None},
    "penalty": {"type": None},
    "schedule": {"type": None, "warmup_steps": 0, "warmup_start_factor": 0.0, "cycle_momentum": True},
    "train": {
        "epochs": 10,
        "batch_size": 32,
        "seed": 0,
        "metrics": ["accuracy"],
        "shuffle": True,
        "drop_last": False,  # leave out the last incomplete batch (a batch of one cannot be batch-normalized)
        "clip_grad_norm": 0.0,  # 0: off
        "clip_grad_value": 0.0,  # 0: off
        "checkpoint_every": 0,  # optimizer steps between checkpoints; 0: at the end of each epoch only
        "keep_checkpoints": 2,  # resumable checkpoints kept: latest and the older ones to fall back to
        "accumulate": 1,  # batches whose gradients are summed into one optimizer step
        "histogram_epochs": [],  # epochs (1-based) at which to save weight/gradient histograms
        "seeds": 1,  # > 1: also train seed+1.., report the ensemble's gain on the test set
        "tensorboard": False,  # true: TensorBoard event files in RUN/tensorboard (needs tensorboardX)
        "sync_batchnorm": False,  # under mpiexec: BatchNorm statistics of the global batch (docs/distributed.md)
        "distributed_timeout": 300.0,  # under mpiexec: seconds a rank waits for the others before the job stops
        "babysit": False,  # true: watch training health live (gw.callbacks.Babysitter), babysit.csv
    },
}
OPTIONAL_SECTIONS = ("penalty", "schedule")
OPEN_SECTIONS = ("loss", "optimizer", "penalty", "schedule")  # further keys are the class's own arguments
# [search] is read by `gradwise search` (gradwise/search/spaces.py, which checks it); `gradwise train`
# trains a search config's base values and leaves the table alone.
SECTIONS["search"] = {}
OPTIONAL_SECTIONS += ("search",)
OPEN_SECTIONS += ("search",)


@dataclass
class Config:
    """A validated config: the raw dict (with defaults filled in) and where it came from."""

    data: dict[str, Any]
    source: str

    def section(self, name: str) -> dict[str, Any]:
        return self.data.get(name, {})


def _choices(names: Mapping[str, Any] | tuple[str, ...]) -> str:
    return ", ".join(sorted(names))


def _lookup(table: Mapping[str, Any], name: Any, where: str, source: str) -> Any:
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{source}: {where} = {name!r} is unknown; valid choices: {_choices(table)}") from None


def _check_kwargs(cls: type, kwargs: Mapping[str, Any], where: str, source: str, skip: tuple[str, ...] = ()) -> None:
    """Every key of `kwargs` must be a keyword argument of `cls`."""
    params = inspect.signature(cls).parameters
    valid = [n for n, p in params.items() if n != "self" and n not in skip and p.kind != p.VAR_POSITIONAL]
    for key in kwargs:
        if key not in valid:
            raise ConfigError(
                f"{source}: {where} has unknown key {key!r} for {cls.__name__}; valid keys: {', '.join(valid)}"
            )


def _apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply `section.key=value` (list items by index: `model.layers.2.out_features=64`)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    if len(keys) < 2:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. train.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: --set optimizer.type=SGD
    node: Any = data
    for k in keys[:-1]:
        if isinstance(node, list):
            node = node[int(k)]
        else:
            node = node.setdefault(k, {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def read_toml(text: str, source: str = "<config>", overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """TOML text -> a dict, with the `section.key=value` `overrides` applied; not yet validated."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    for assignment in overrides:
        try:
            _apply_override(data, assignment)
        except (IndexError, ValueError, TypeError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"--set {assignment!r}: no such place in {source}") from None
    return data


def parse(text: str, source: str = "<config>", overrides: tuple[str, ...] = ()) -> Config:
    """Parse and validate TOML text; `overrides` are `section.key=value` strings applied first."""
    return validate(read_toml(text, source, overrides), source)


def load(path: str | Path, overrides: tuple[str, ...] = ()) -> Config:
    """Read and validate a TOML config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    return parse(p.read_text(encoding="utf-8"), str(p), overrides)


def default_config_text() -> str:
    """The built-in default config (`gradwise train` with no CONFIG)."""
    return resources.files("gradwise.cli").joinpath("default.toml").read_text(encoding="utf-8")


def load_or_default(path: str | Path | None, overrides: tuple[str, ...] = ()) -> Config:
    """`load(path)`, or the built-in default config when `path` is None."""
    if path is None:
        return parse(default_config_text(), "<built-in default config>", overrides)
    return load(path, overrides)


def validate(raw: Mapping[str, Any], source: str) -> Config:
    """Fill defaults and check every section, key and name; returns a `Config`."""
    data: dict[str, Any] = copy.deepcopy(dict(raw))
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}]; valid sections: {_choices(SECTIONS)}")
    for section, spec in SECTIONS.items():
        if section not in data:
            if section in OPTIONAL_SECTIONS:
                continue
            data[section] = {}
        body = data[section]
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        if section == "data":
            dataset = body.get("dataset")
            if dataset is None:
                raise ConfigError(f"{source}: [data] needs the key 'dataset' (one of {_choices(DATASETS)})")
            spec = {**spec, **_lookup(DATASETS, dataset, "[data] dataset", source)}
        if section == "model" and "learner" in body:
            learner = _lookup(LEARNERS, body["learner"], "[model] learner", source)
            spec = {"learner": None, "init": spec["init"], **learner}
        if section not in OPEN_SECTIONS:
            for key in body:
                if key not in spec:
                    raise ConfigError(f"{source}: unknown key {key!r} in [{section}]; valid keys: {_choices(spec)}")
        for key, default in spec.items():
            if key not in body:
                if default is None:
                    raise ConfigError(f"{source}: [{section}] needs the key {key!r}")
                body[key] = copy.deepcopy(default)

    if "learner" not in data["model"]:
        _validate_layers(data["model"]["layers"], "[model] layers", source)
    for section, table in (("loss", LOSSES), ("optimizer", OPTIMIZERS), ("penalty", PENALTIES)):
        if section not in data:
            continue
        body = data[section]
        cls = _lookup(table, body["type"], f"[{section}] type", source)
        skip = ("params",) if section == "optimizer" else ()
        own = ("type", *OPTIMIZER_KEYS) if section == "optimizer" else ("type",)
        if section == "optimizer" and not isinstance(body.get("decay_biases", True), bool):
            raise ConfigError(f"{source}: [optimizer] decay_biases = {body['decay_biases']!r} must be true or false")
        _check_kwargs(cls, {k: v for k, v in body.items() if k not in own}, f"[{section}]", source, skip=skip)
    if "schedule" in data:
        body = data["schedule"]
        cls = _lookup(SCHEDULES, body["type"], "[schedule] type", source)
        args = {k: v for k, v in body.items() if k not in SCHEDULE_KEYS}
        _check_kwargs(cls, args, "[schedule]", source, skip=("lr", "max_lr", "schedule_or_lr"))
    for name in data["train"]["metrics"]:
        _lookup(METRICS, name, "[train] metrics", source)
    _check_tensorboard(data["train"]["tensorboard"], source)
    return Config(data, source)


def _check_tensorboard(value: Any, source: str) -> None:
    """``[train] tensorboard`` is a bool, and true only where its writer can be imported."""
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: [train] tensorboard = {value!r} must be true or false")
    if value and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError(
            f"{source}: [train] tensorboard = true needs tensorboardX: pip install 'gradwise[tensorboard]'"
        )


def _validate_layers(layer_list: Any, where: str, source: str) -> None:
    """Check a list of layer tables, recursing into the nested lists of containers."""
    if not isinstance(layer_list, list) or not layer_list:
        raise ConfigError(f"{source}: {where} must be a non-empty list of layer tables")
    for i, spec in enumerate(layer_list):
        here = f"{where}[{i}]"
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigError(f"{source}: {here} needs a 'type' (one of {_choices(LAYERS)})")
        cls = _lookup(LAYERS, spec["type"], f"{here} type", source)
        nested_key = CONTAINERS.get(spec["type"])
        args = {k: v for k, v in spec.items() if k not in ("type", nested_key)}
        _check_kwargs(cls, args, here, source, skip=("rng", "dtype", "block"))
        if nested_key is None:
            continue
        if nested_key not in spec:
            raise ConfigError(f"{source}: {here} ({spec['type']}) needs the key {nested_key!r}")
        if nested_key == "block":
            _validate_layers(spec["block"], f"{here}.block", source)
        else:
            branches = spec["branches"]
            if not isinstance(branches, list) or not branches:
                raise ConfigError(f"{source}: {here}.branches must be a non-empty list of layer lists")
            for j, branch in enumerate(branches):
                _validate_layers(branch, f"{here}.branches[{j}]", source)
