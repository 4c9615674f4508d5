"""TOML configuration -> objects.

This module holds the ONE explicit table from the names a config may use to the classes they build;
nothing else in gradwise looks classes up by string. Every key is validated against the signature of
the class it configures, so a misspelled key is reported with the file, the section and the valid
choices before anything is trained or written.
"""

from __future__ import annotations

import copy
import inspect
import sys
from importlib import resources
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradwise import layers, losses, optim
from gradwise.core import Layer, Sequential
from gradwise.optim import schedules
from gradwise.training import metrics as _metrics
from gradwise.training.callbacks import Callback, CycleMomentum, ReduceLROnPlateau

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the key and the valid choices."""


LAYERS: dict[str, type[Layer]] = {
    "AvgPool1d": layers.AvgPool1d,
    "AvgPool2d": layers.AvgPool2d,
    "BatchNorm1d": layers.BatchNorm1d,
    "BatchNorm2d": layers.BatchNorm2d,
    "Concat": layers.Concat,
    "Conv1d": layers.Conv1d,
    "Conv2d": layers.Conv2d,
    "Dropout": layers.Dropout,
    "ELU": layers.ELU,
    "Embedding": layers.Embedding,
    "Flatten": layers.Flatten,
    "GELU": layers.GELU,
    "GRU": layers.GRU,
    "GlobalAvgPool": layers.GlobalAvgPool,
    "LSTM": layers.LSTM,
    "LayerNorm": layers.LayerNorm,
    "LeakyReLU": layers.LeakyReLU,
    "Linear": layers.Linear,
    "MaxPool1d": layers.MaxPool1d,
    "MaxPool2d": layers.MaxPool2d,
    "Maxout": layers.Maxout,
    "Parallel": layers.Parallel,
    "RNN": layers.RNN,
    "ReLU": layers.ReLU,
    "Reshape": layers.Reshape,
    "Residual": layers.Residual,
    "Sigmoid": layers.Sigmoid,
    "Softplus": layers.Softplus,
    "TakeLast": layers.TakeLast,
    "Tanh": layers.Tanh,
}
# Layers whose config holds nested layer lists: `block = [tables]` or `branches = [[tables], ...]`.
CONTAINERS = {"Residual": "block", "Concat": "branches", "Parallel": "branches"}
LOSSES: dict[str, type[losses.Loss]] = {
    "SoftmaxCrossEntropy": losses.SoftmaxCrossEntropy,
    "MulticlassHinge": losses.MulticlassHinge,
    "MSE": losses.MSE,
    "BCEWithLogits": losses.BCEWithLogits,
}
PENALTIES: dict[str, type[losses.Penalty]] = {
    "L1": losses.L1,
    "L2": losses.L2,
    "ElasticNet": losses.ElasticNet,
}
OPTIMIZERS: dict[str, Callable[..., optim.Optimizer]] = {
    "SGD": optim.SGD,
    "Adam": optim.Adam,
    "AdamW": optim.AdamW,
    "Adagrad": optim.Adagrad,
    "Adadelta": optim.Adadelta,
    "RMSprop": optim.RMSprop,
    "NAdam": optim.NAdam,
    "RAdam": optim.RAdam,
    "Lion": optim.Lion,
}
# Schedules take their base rate from [optimizer] lr (`lr`, or `max_lr` for one_cycle) and, where
# they need it, `total_steps` = epochs * batches per epoch unless given. "plateau" is a callback.
SCHEDULES: dict[str, Callable[..., Any]] = {
    "constant": schedules.constant,
    "step": schedules.step_decay,
    "multistep": schedules.multistep,
    "exponential": schedules.exponential,
    "inverse_time": schedules.inverse_time,
    "cosine": schedules.cosine,
    "polynomial": schedules.polynomial,
    "one_cycle": schedules.one_cycle,
    "plateau": ReduceLROnPlateau,
}
# Keys of [schedule] that the config itself handles (not arguments of the schedule class).
SCHEDULE_KEYS = ("type", "warmup_steps", "warmup_start_factor", "cycle_momentum")
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _metrics.accuracy,
    "rmse": _metrics.rmse,
    "mae": _metrics.mae,
}
DATASETS = ("mnist1d", "spiral")

# Section -> key -> default. `None` marks a required key.
SECTIONS: dict[str, dict[str, Any]] = {
    "data": {
        "dataset": None,
        "val": 0.1,
        "standardize": False,
        "n_per_class": 300,
        "n_classes": 3,
        "noise": 0.2,
        "test": 0.2,
    },
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
        "clip_grad_norm": 0.0,  # 0: off
        "clip_grad_value": 0.0,  # 0: off
        "checkpoint_every": 0,  # optimizer steps between checkpoints; 0: at the end of each epoch only
        "keep_checkpoints": 2,  # resumable checkpoints kept: latest and the older ones to fall back to
        "accumulate": 1,  # batches whose gradients are summed into one optimizer step
        "histogram_epochs": [],  # epochs (1-based) at which to save weight/gradient histograms
        "seeds": 1,  # > 1: also train seed+1.., report the ensemble's gain on the test set
    },
}
OPTIONAL_SECTIONS = ("penalty", "schedule")
OPEN_SECTIONS = ("loss", "optimizer", "penalty", "schedule")  # further keys are the class's own arguments


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


def parse(text: str, source: str = "<config>", overrides: tuple[str, ...] = ()) -> Config:
    """Parse and validate TOML text; `overrides` are `section.key=value` strings applied first."""
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
    return validate(data, source)


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
        if section not in OPEN_SECTIONS:
            for key in body:
                if key not in spec:
                    raise ConfigError(f"{source}: unknown key {key!r} in [{section}]; valid keys: {_choices(spec)}")
        for key, default in spec.items():
            if key not in body:
                if default is None:
                    raise ConfigError(f"{source}: [{section}] needs the key {key!r}")
                body[key] = copy.deepcopy(default)

    _lookup({d: d for d in DATASETS}, data["data"]["dataset"], "[data] dataset", source)
    _validate_layers(data["model"]["layers"], "[model] layers", source)
    for section, table in (("loss", LOSSES), ("optimizer", OPTIMIZERS), ("penalty", PENALTIES)):
        if section not in data:
            continue
        body = data[section]
        cls = _lookup(table, body["type"], f"[{section}] type", source)
        skip = ("params",) if section == "optimizer" else ()
        _check_kwargs(cls, {k: v for k, v in body.items() if k != "type"}, f"[{section}]", source, skip=skip)
    if "schedule" in data:
        body = data["schedule"]
        cls = _lookup(SCHEDULES, body["type"], "[schedule] type", source)
        args = {k: v for k, v in body.items() if k not in SCHEDULE_KEYS}
        _check_kwargs(cls, args, "[schedule]", source, skip=("lr", "max_lr", "schedule_or_lr"))
    for name in data["train"]["metrics"]:
        _lookup(METRICS, name, "[train] metrics", source)
    return Config(data, source)


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


def _build_layers(specs: list[dict[str, Any]], init: Any, rng: np.random.Generator, source: str) -> list[Layer]:
    built: list[Layer] = []
    for spec in specs:
        cls = LAYERS[spec["type"]]
        nested_key = CONTAINERS.get(spec["type"])
        kwargs = {k: v for k, v in spec.items() if k not in ("type", nested_key)}
        params = inspect.signature(cls).parameters
        if "rng" in params:
            kwargs["rng"] = rng
        if "init" in params and "init" not in kwargs:
            kwargs["init"] = init
        # Every nested list becomes a Sequential, so names are always {branch}.{layer}.{param}.
        args: list[Layer] = []
        if nested_key == "block":
            kwargs["block"] = Sequential(*_build_layers(spec["block"], init, rng, source))
        elif nested_key == "branches":
            args = [Sequential(*_build_layers(b, init, rng, source)) for b in spec["branches"]]
        try:
            built.append(cls(*args, **kwargs))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: [model] layer {spec['type']}: {e}") from None
    return built


def build_model(cfg: Config, rng: np.random.Generator) -> Sequential:
    """A `Sequential` of the configured layers; weights drawn from `rng`."""
    model_cfg = cfg.section("model")
    return Sequential(*_build_layers(model_cfg["layers"], model_cfg["init"], rng, cfg.source))


def _construct(cls: Callable[..., Any], body: Mapping[str, Any], where: str, source: str, *args: Any) -> Any:
    # TOML arrays become tuples (betas); milestones lists are fine as tuples too.
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in body.items() if k != "type"}
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: [{where}] {e}") from None


def build_loss(cfg: Config) -> losses.Loss:
    body = cfg.section("loss")
    return _construct(LOSSES[body["type"]], body, "loss", cfg.source)


def build_penalty(cfg: Config) -> losses.Penalty | None:
    if "penalty" not in cfg.data:
        return None
    body = cfg.section("penalty")
    return _construct(PENALTIES[body["type"]], body, "penalty", cfg.source)


def build_schedule(cfg: Config, steps_per_epoch: int) -> tuple[Any, list[Callback]]:
    """The optimizer's lr (a float or a schedule) and the callbacks the schedule needs.

    A plateau schedule keeps the float lr and returns a `ReduceLROnPlateau` callback; one_cycle
    also returns `CycleMomentum` unless ``cycle_momentum = false``.
    """
    lr = cfg.section("optimizer").get("lr", 1e-3)
    if "schedule" not in cfg.data:
        return lr, []
    body = cfg.section("schedule")
    name = body["type"]
    cls = SCHEDULES[name]
    args = {k: v for k, v in body.items() if k not in SCHEDULE_KEYS}
    if name == "plateau":
        return lr, [_construct(cls, args, "schedule", cfg.source)]
    params = inspect.signature(cls).parameters
    if "total_steps" in params and "total_steps" not in args:
        args["total_steps"] = int(cfg.section("train")["epochs"]) * steps_per_epoch
    args["max_lr" if "max_lr" in params else "lr"] = lr
    schedule = _construct(cls, args, "schedule", cfg.source)
    callbacks: list[Callback] = []
    if name == "one_cycle" and body["cycle_momentum"]:
        callbacks.append(CycleMomentum(schedule))
    if body["warmup_steps"]:
        schedule = _construct(
            schedules.warmup,
            {"warmup_steps": body["warmup_steps"], "start_factor": body["warmup_start_factor"]},
            "schedule",
            cfg.source,
            schedule,
        )
    return schedule, callbacks


def build_optimizer(cfg: Config, model: Layer, lr: Any = None) -> optim.Optimizer:
    """The configured optimizer over `model`'s parameters; `lr` (e.g. a schedule) overrides [optimizer] lr."""
    body = dict(cfg.section("optimizer"))
    if lr is not None:
        body["lr"] = lr
    return _construct(OPTIMIZERS[body["type"]], body, "optimizer", cfg.source, model.parameters())


def build_metrics(cfg: Config) -> list[Callable[[np.ndarray, np.ndarray], float]]:
    return [METRICS[name] for name in cfg.section("train")["metrics"]]


@dataclass
class Splits:
    """Arrays of one run: training, validation (may be empty) and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def build_data(cfg: Config, rng: np.random.Generator) -> Splits:
    """Load the configured dataset and split off validation data from the training set only."""
    from gradwise.data import Standardizer, load_mnist1d, make_spiral, train_test_split

    body = cfg.section("data")
    name = body["dataset"]
    if name == "mnist1d":
        x_train, y_train, x_test, y_test = load_mnist1d()
    else:  # spiral
        x, y = make_spiral(n_per_class=body["n_per_class"], n_classes=body["n_classes"], noise=body["noise"], rng=rng)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test=body["test"], stratify=y, rng=rng)
    val = body["val"]
    if val:
        x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test=val, stratify=y_train, rng=rng)
    else:
        x_val, y_val = x_train[:0], y_train[:0]
    if body["standardize"]:
        scaler = Standardizer().fit(x_train)  # training statistics only
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        x_val = scaler.transform(x_val) if len(x_val) else x_val
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test)


def check_fit(model: Any, loss: Any, splits: Any, source: str) -> None:
    """Fail before anything is written: the model must accept the inputs and the loss the labels.

    One forward pass on two samples gives the output width; the loss then validates every label of
    every split against scores of that width (zeros: only the labels are being checked).
    """
    try:
        model.eval()
        out = model.forward(splits.x_train[:2])
    except ValueError as e:
        raise ConfigError(
            f"{source}: the model does not fit the data (inputs of shape {splits.x_train.shape[1:]}): {e}"
        ) from None
    finally:
        model.train()
    for part in ("train", "val", "test"):
        y = getattr(splits, f"y_{part}")
        if len(y) == 0:
            continue
        try:
            loss.forward(np.zeros((len(y), *out.shape[1:]), dtype=out.dtype), y)
        except ValueError as e:
            raise ConfigError(f"{source}: the {part} labels do not fit the model's output: {e}") from None
