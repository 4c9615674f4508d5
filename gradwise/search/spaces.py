"""The ``[search]`` section of a config: what to search over, and how.

A search config is an ordinary training config plus a ``[search]`` table. Its plain keys are the
settings of the search (`SETTINGS`); every key whose value is a table is a search space::

    [search]
    metric = "accuracy"                       # a validation metric: "loss" or one of [train] metrics
    direction = "maximize"                    # default: minimize a loss or an error, maximize the rest
    "optimizer.lr" = { log_uniform = [1e-4, 1e-1] }
    "model.layers.2.p" = { uniform = [0.0, 0.5] }
    width = { log_int = [16, 256], keys = ["model.layers.0.out_features", "model.layers.3.in_features"] }

A space is named by the config key it sets (``section.key``, list entries by index:
``model.layers.2.p``), or by a plain name with ``keys = [...]`` when one value goes to several
keys (the width of a hidden layer is the ``out_features`` of one Linear and the ``in_features`` of
the next). Each kind is one of `KINDS`: ``uniform``, ``log_uniform``, ``int``, ``log_int`` (both
bounds included) or ``choice`` (a list of values).

Every space is checked before any trial runs: each key must be a valid config key (the config is
validated with both bounds, and with every choice, put in), ranges must not be empty and log
ranges must be positive. A mistake raises `ConfigError` naming the file, the space and the problem.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gradwise.cli.config import Config, ConfigError, validate
from gradwise.training.callback_base import infer_mode

__all__ = ["KINDS", "SETTINGS", "SearchSpec", "Space", "apply_params", "parse_search", "set_key"]

KINDS = ("uniform", "log_uniform", "int", "log_int", "choice")
SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median", "halving")
# Setting -> default (None: worked out from the rest of the config).
SETTINGS: dict[str, Any] = {
    "metric": None,  # the first of [train] metrics, or "loss"
    "direction": None,  # "minimize" for losses and errors, "maximize" otherwise
    "sampler": "random",
    "seed": None,  # [train] seed
    "pruner": "none",
    "warmup_epochs": 5,  # epochs a trial always runs before it may be pruned
    "startup_trials": 5,  # trials finished before the pruner (and TPE) use the others' results
    "reduction_factor": 3,  # successive halving: keep the best 1/reduction_factor at each rung
    "refine_top": 5,  # --refine: the best trials whose values bound the new ranges
}


@dataclass(frozen=True)
class Space:
    """One hyperparameter: its name, its kind and range (or choices), and the config keys it sets.

    Attributes
    ----------
    name : str
        The parameter's name in the study (``optimizer.lr``, or the plain name given).
    kind : str
        One of `KINDS`.
    low, high : float or int, optional
        The range, both ends included (not for ``choice``).
    choices : tuple, optional
        The values of a ``choice``.
    keys : tuple of str
        The config keys that receive the value (``(name,)`` unless ``keys = [...]`` was given).
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()
    keys: tuple[str, ...] = ()

    @property
    def log(self) -> bool:
        """Whether the space is sampled (and drawn) on a logarithmic scale."""
        return self.kind in ("log_uniform", "log_int")

    def to_toml(self) -> dict[str, Any]:
        """The space as written in ``[search]`` (round-trips through `parse_space`)."""
        body: dict[str, Any] = {self.kind: list(self.choices) if self.kind == "choice" else [self.low, self.high]}
        if self.keys != (self.name,):
            body["keys"] = list(self.keys)
        return body


@dataclass
class SearchSpec:
    """A parsed ``[search]`` section and the training config it varies.

    Attributes
    ----------
    base : dict
        The training config without ``[search]``, defaults filled in (a `Config`'s data).
    spaces : list of Space
    metric, direction, sampler, pruner : str
    seed, warmup_epochs, startup_trials, reduction_factor, refine_top : int
    source : str
        The config file, for messages.
    """

    base: dict[str, Any]
    spaces: list[Space]
    metric: str
    direction: str
    sampler: str
    seed: int
    pruner: str
    warmup_epochs: int
    startup_trials: int
    reduction_factor: int
    refine_top: int
    source: str = "<config>"
    settings: dict[str, Any] = field(default_factory=dict)

    def trial_config(self, params: Mapping[str, Any]) -> Config:
        """The validated training config of one trial: the base with `params` put in."""
        return validate(apply_params(self.base, self.spaces, params), self.source)


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted config key `key` (``section.key``; list entries by index) to `value` in place.

    Raises
    ------
    ConfigError
        The path does not lead anywhere: a missing section, an index past a list's end, a key
        below a value that is not a table.
    """
    parts = key.split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"{key!r} is not a config key: expected section.key, e.g. optimizer.lr")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{key!r} is not a config key: {here!r} indexes a list of {len(node)} entries")
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                if depth == 0:
                    raise ConfigError(f"{key!r} is not a config key: the config has no [{part}] section")
                raise ConfigError(f"{key!r} is not a config key: {here!r} does not exist")
            node = node[part]
        else:
            raise ConfigError(f"{key!r} is not a config key: {'.'.join(parts[:depth])!r} is a value, not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{key!r} is not a config key: the list has {len(node)} entries")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{key!r} is not a config key: {'.'.join(parts[:-1])!r} is a value, not a table")


def apply_params(base: Mapping[str, Any], spaces: Sequence[Space], params: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with each space's value (``params[space.name]``) at each of its keys."""
    data = copy.deepcopy(dict(base))
    for space in spaces:
        if space.name in params:
            for key in space.keys:
                set_key(data, key, params[space.name])
    return data


def _number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)


def parse_space(name: str, body: Any, where: str) -> Space:
    """One space from its TOML table (``{ log_uniform = [1e-4, 1e-1] }``, with optional ``keys``)."""
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: a space is a table such as {{ log_uniform = [1e-4, 1e-1] }}, got {body!r}")
    kinds = [k for k in body if k in KINDS]
    unknown = [k for k in body if k not in KINDS and k != "keys"]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; a space has one of {', '.join(KINDS)} (and 'keys')")
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    if "keys" in body:
        keys = body["keys"]
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{where}: keys must be a non-empty list of config keys (section.key)")
        keys = tuple(keys)
    elif "." in name:
        keys = (name,)
    else:
        raise ConfigError(
            f"{where}: {name!r} is neither a config key (section.key) nor a setting of [search] "
            f"({', '.join(SETTINGS)}); a named space needs keys = [...]"
        )
    value = body[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: choice must be a non-empty list of values, got {value!r}")
        if not all(isinstance(v, (bool, int, float, str)) for v in value):
            raise ConfigError(f"{where}: choices must be numbers, strings or booleans, got {value!r}")
        if len(set(map(repr, value))) != len(value):
            raise ConfigError(f"{where}: choice lists a value twice: {value!r}")
        return Space(name, kind, choices=tuple(value), keys=keys)
    integer = kind in ("int", "log_int")
    if not isinstance(value, list) or len(value) != 2 or not all(_number(v, integer) for v in value):
        what = "integers" if integer else "numbers"
        raise ConfigError(f"{where}: {kind} must be [low, high], two {what}, got {value!r}")
    low, high = (int(v) for v in value) if integer else (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{where}: {kind} bounds must be finite, got {value!r}")
    if low >= high:
        raise ConfigError(f"{where}: empty range {kind} = {value!r}: low must be below high")
    if kind.startswith("log") and low <= 0:
        raise ConfigError(f"{where}: {kind} = {value!r}: a log range needs bounds > 0")
    return Space(name, kind, low=low, high=high, keys=keys)


def _check_keys(base: dict[str, Any], space: Space, where: str, source: str) -> None:
    """Validate the config with each end of the space (each choice) put in at its keys."""
    probes = list(space.choices) if space.kind == "choice" else [space.low, space.high]
    for value in probes:
        data = copy.deepcopy(base)
        for key in space.keys:
            try:
                set_key(data, key, value)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
        try:
            validate(data, source)
        except ConfigError as e:
            detail = str(e).removeprefix(f"{source}: ")
            raise ConfigError(f"{where} = {value!r} gives an invalid config: {detail}") from None


def _int_setting(raw: Mapping[str, Any], name: str, default: Any, minimum: int, source: str) -> int:
    value = raw.get(name, default)
    if not _number(value, integer=True) or value < minimum:
        raise ConfigError(f"{source}: [search] {name} = {value!r} must be an integer >= {minimum}")
    return int(value)


def parse_search(data: Mapping[str, Any], source: str) -> SearchSpec:
    """Split a raw config (TOML already read) into its training config and its ``[search]`` spec.

    Raises
    ------
    ConfigError
        One line naming `source` and the setting or space at fault.
    """
    raw_data = copy.deepcopy(dict(data))
    raw = raw_data.pop("search", None)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a search config needs a [search] table with at least one space")
    base = validate(raw_data, source).data
    metrics = list(base["train"]["metrics"])
    for key, value in raw.items():
        if not isinstance(value, dict) and key not in SETTINGS:
            hint = " (a space is a table, such as { uniform = [0, 1] })" if "." in key else ""
            raise ConfigError(f"{source}: unknown setting {key!r} in [search]{hint}; settings: {', '.join(SETTINGS)}")
    spaces = [parse_space(k, v, f'{source}: [search] "{k}"') for k, v in raw.items() if isinstance(v, dict)]
    if not spaces:
        raise ConfigError(f"{source}: [search] declares no space, e.g. \"optimizer.lr\" = {{ log_uniform = [1e-4, 1e-1] }}")
    for space in spaces:
        _check_keys(base, space, f'{source}: [search] "{space.name}"', source)
    metric = raw.get("metric", metrics[0] if metrics else "loss")
    if metric != "loss" and metric not in metrics:
        raise ConfigError(f"{source}: [search] metric = {metric!r} must be 'loss' or one of [train] metrics {metrics}")
    if not float(base["data"].get("val", 0) or 0) > 0:
        raise ConfigError(f"{source}: a search scores trials on the validation split: set [data] val > 0 (e.g. 0.1)")
    default_direction = "minimize" if infer_mode(metric) == "min" else "maximize"
    direction = raw.get("direction", default_direction)
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"{source}: [search] direction = {direction!r} must be 'minimize' or 'maximize'")
    sampler, pruner = raw.get("sampler", "random"), raw.get("pruner", "none")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{source}: [search] sampler = {sampler!r} is unknown; valid choices: {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise ConfigError(f"{source}: [search] pruner = {pruner!r} is unknown; valid choices: {', '.join(PRUNERS)}")
    return SearchSpec(
        base=base,
        spaces=spaces,
        metric=metric,
        direction=direction,
        sampler=sampler,
        seed=_int_setting(raw, "seed", base["train"]["seed"], 0, source),
        pruner=pruner,
        warmup_epochs=_int_setting(raw, "warmup_epochs", SETTINGS["warmup_epochs"], 0, source),
        startup_trials=_int_setting(raw, "startup_trials", SETTINGS["startup_trials"], 0, source),
        reduction_factor=_int_setting(raw, "reduction_factor", SETTINGS["reduction_factor"], 2, source),
        refine_top=_int_setting(raw, "refine_top", SETTINGS["refine_top"], 1, source),
        source=source,
        settings={k: v for k, v in raw.items() if not isinstance(v, dict)},
    )


def spaces_to_toml(spaces: Sequence[Space]) -> dict[str, Any]:
    """The spaces as a ``[search]`` table body (name -> space table)."""
    return {s.name: s.to_toml() for s in spaces}


def spaces_from_toml(body: Mapping[str, Any], where: str) -> list[Space]:
    """Spaces read back from `spaces_to_toml`'s form (as stored with a study)."""
    return [parse_space(name, value, f"{where}: {name!r}") for name, value in body.items()]
