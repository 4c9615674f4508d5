"""Building objects from a validated `Config`: model, loss, penalty, schedule, optimizer, data.

Each class comes from the table of ``names.py``; an argument the class rejects becomes a
`ConfigError` naming the section.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradwise import losses, optim
from gradwise.cli.config.names import CONTAINERS, LAYERS, LOSSES, METRICS, OPTIMIZER_KEYS, OPTIMIZERS, PENALTIES, SCHEDULE_KEYS, SCHEDULES
from gradwise.cli.config.parsing import Config, ConfigError
from gradwise.core import Layer, Sequential
from gradwise.optim import schedules
from gradwise.optim.groups import is_decay_exempt
from gradwise.training.callbacks import Callback, CycleMomentum


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


def build_model(cfg: Config, rng: np.random.Generator, meta: Mapping[str, Any] | None = None) -> Layer:
    """The configured model, weights drawn from `rng`: a `Sequential` of the `layers` list, or what
    ``[model] learner`` builds from the data's description `meta` (`Splits.meta`)."""
    model_cfg = cfg.section("model")
    if "learner" in model_cfg:
        from gradwise.cli.config.learners import BUILDERS

        try:
            return BUILDERS[model_cfg["learner"]](model_cfg, dict(meta or {}), rng)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{cfg.source}: [model] learner {model_cfg['learner']}: {e}") from None
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
    body = {k: v for k, v in cfg.section("optimizer").items() if k not in OPTIMIZER_KEYS}
    if lr is not None:
        body["lr"] = lr
    params: Any = model.parameters()
    if not cfg.section("optimizer").get("decay_biases", True):
        # fastai's wd_bn_bias=False: the decayed group takes [optimizer] weight_decay, the rest none.
        named = list(model.named_parameters())
        params = [{"params": [p for n, p in named if not is_decay_exempt(n, p)]},
                  {"params": [p for n, p in named if is_decay_exempt(n, p)], "weight_decay": 0.0}]
        params = [g for g in params if g["params"]]
    return _construct(OPTIMIZERS[body["type"]], body, "optimizer", cfg.source, params)


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
    # What a learner needs to know of the data (cardinalities, counts, the fitted preprocessing)
    # and what a run saves beside the model so that prediction on new rows works.
    meta: dict[str, Any] = field(default_factory=dict)


def build_data(cfg: Config, rng: np.random.Generator) -> Splits:
    """Load the configured dataset and split off validation data from the training set only."""
    from gradwise.cli.config.datasets import LOADERS
    from gradwise.data import Standardizer, train_test_split
    from gradwise.data.rows import head, n_rows, take

    body = cfg.section("data")
    loaded = LOADERS[body["dataset"]](body, rng)
    x_train, y_train, x_test, y_test = loaded[:4]
    meta = dict(loaded[4]) if len(loaded) > 4 else {}
    val = body["val"]
    if "val" in meta:
        # The loader split validation off itself (to fit its preprocessing on the training rows alone).
        x_val, y_val = meta.pop("val")
    elif val and isinstance(x_train, tuple):  # several inputs: split row indices, take them from each
        idx_train, idx_val, y_train, y_val = train_test_split(
            np.arange(n_rows(x_train)), y_train, test=val, stratify=y_train, rng=rng
        )
        x_train, x_val = take(x_train, idx_train), take(x_train, idx_val)
    elif val:
        x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test=val, stratify=y_train, rng=rng)
    else:
        x_val, y_val = head(x_train, 0), y_train[:0]
    if body["standardize"] and isinstance(x_train, tuple):
        raise ConfigError(
            f"{cfg.source}: [data] standardize = true needs one input array; dataset {body['dataset']!r} "
            "has several inputs (it preprocesses its own columns)"
        )
    if body["standardize"]:
        scaler = Standardizer().fit(x_train)  # training statistics only
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        x_val = scaler.transform(x_val) if len(x_val) else x_val
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, meta)


def check_fit(model: Any, loss: Any, splits: Any, source: str) -> None:
    """Fail before anything is written: the model must accept the inputs and the loss the labels.

    One forward pass on two samples gives the output width; the loss then validates every label of
    every split against scores of that width (zeros: only the labels are being checked).
    """
    from gradwise.data.rows import head, input_shape

    try:
        model.eval()
        out = model.forward(head(splits.x_train, 2))
    except ValueError as e:
        batch = input_shape(splits.x_train)  # one shape per input of a multi-input model
        shape = tuple(s[1:] for s in batch) if isinstance(splits.x_train, tuple) else batch[1:]  # type: ignore[union-attr]
        raise ConfigError(f"{source}: the model does not fit the data (inputs of shape {shape}): {e}") from None
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
