"""The `Optimizer` base class: param groups, lazy per-parameter state, `step()`, `state_dict()`.

A concrete optimizer is a small file. It passes its hyperparameters as `defaults`, checks them in
`_check_group`, allocates its per-parameter buffers in `_init_state`, and writes its update rule in
`_update`, one parameter at a time, in place. Everything else (param groups with per-group
overrides, learning-rate schedules, the step counter, frozen parameters, scratch memory,
`zero_grad`, `state_dict`/`load_state_dict`) lives here.

Conventions follow `torch.optim` (Paszke et al., 2019) so that code and intuition move between the
two: the same keyword names and defaults, the same param-group semantics, and state created on a
parameter's first step.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from gradwise.core import Parameter

#: A learning rate: a constant, or a schedule `f(step) -> float` where `step` is the number of
#: optimizer steps already taken (0 on the first step).
LearningRate = float | Callable[[int], float]

# Key under which `state_dict()` records that a group's lr is a schedule (the function itself lives
# in code, not in the checkpoint, so "lr" is saved as None).
_SCHEDULE_FLAG = "lr_is_schedule"


class Optimizer:
    """Base class of every optimizer.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        The parameters to optimize, or param groups: dicts ``{"params": [...], "lr": ..., ...}``
        whose other keys override `defaults` for that group (``torch.optim`` semantics).
    defaults : mapping
        Every hyperparameter of the optimizer and its value for groups that do not override it.
        ``defaults["lr"]`` may be a float or a schedule ``f(step) -> float``.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group: ``"params"`` (list of Parameter) and every hyperparameter.
    state : dict
        ``Parameter -> dict`` of that parameter's buffers (arrays of the parameter's shape and
        dtype, updated in place) and counters; created on the parameter's first step.
    step_count : int
        Number of calls to `step()` so far; the argument passed to an lr schedule.
    defaults : dict
        The hyperparameters given at construction.

    Notes
    -----
    Parameters with ``requires_grad=False`` are skipped by `step()`: no update, no state. They stay
    in their group, so unfreezing one later makes `step()` pick it up (its state starts fresh).

    Subclasses implement three hooks:

    - ``_check_group(group)``: raise ``ValueError`` naming the first invalid hyperparameter
      (call ``super()._check_group(group)`` first; the base checks ``lr``).
    - ``_init_state(p, group) -> dict``: allocate the parameter's buffers once. Keys starting with
      ``_`` are scratch and are not saved by `state_dict()`. Array state created later (lazily,
      inside `_update`) must have the parameter's shape.
    - ``_update(p, state, group, lr)``: apply one update to ``p.data`` in place, reading
      ``p.grad``, which must not be modified. Use ``out=`` arguments and `_scratch` so that a step
      allocates no array memory.
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        defaults: Mapping[str, Any],
    ) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.step_count: int = 0
        # Scratch arrays shared by all parameters of one dtype (one parameter is updated at a time),
        # so the scratch memory is that of the largest parameter, not of the whole model.
        self._workspace: dict[tuple[np.dtype, int], np.ndarray] = {}

        if isinstance(params, (Parameter, Mapping)):
            raise TypeError(
                f"params must be an iterable of Parameters or of param-group dicts, "
                f"got a single {type(params).__name__}; wrap it in a list"
            )
        self._check_group(self.defaults)
        items = list(params)
        if items and all(isinstance(item, Mapping) for item in items):
            groups = items
        elif any(isinstance(item, Mapping) for item in items):
            raise TypeError("params mixes Parameters and param-group dicts; use only one kind")
        else:
            groups = [{"params": items}]
        for group in groups:
            self.add_param_group(group)
        if not any(group["params"] for group in self.param_groups):
            raise ValueError("params is empty: the optimizer has no parameter to update")

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a param group (for example the layers unfrozen when fine-tuning).

        Parameters
        ----------
        group : mapping
            ``{"params": Parameter or iterable of Parameter, <hyperparameter>: value, ...}``;
            missing hyperparameters are taken from `defaults`.

        Raises
        ------
        ValueError
            On an unknown hyperparameter, an invalid value, or a parameter already in a group.
        TypeError
            If an item of ``params`` is not a `Parameter`.
        """
        index = len(self.param_groups)
        if "params" not in group:
            raise ValueError(f"param group {index} has no 'params' key")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            # torch accepts any key; we refuse them so that a misspelled hyperparameter is not
            # silently ignored.
            raise ValueError(
                f"param group {index}: unknown hyperparameter(s) {unknown} for "
                f"{type(self).__name__}; expected some of {sorted(self.defaults)}"
            )
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"param group {index}: params[{i}] is a {type(p).__name__}, not a Parameter"
                )
            if id(p) in seen:
                raise ValueError(
                    f"param group {index}: parameter {p.name or i!r} appears more than once "
                    f"in the optimizer's param groups"
                )
            seen.add(id(p))
        new_group = {**self.defaults, **group, "params": params}
        try:
            self._check_group(new_group)
        except ValueError as err:
            raise ValueError(f"param group {index}: {err}") from None
        self.param_groups.append(new_group)

    # Hyperparameter ranges checked by `_check_group` for every group; a subclass names its own.
    # `betas`, when a group has it, must be a pair in [0, 1).
    _positive: tuple[str, ...] = ()        # > 0, e.g. eps
    _nonnegative: tuple[str, ...] = ()     # >= 0, e.g. weight_decay, momentum
    _unit_interval: tuple[str, ...] = ()   # in [0, 1), e.g. alpha, rho

    def _check_group(self, group: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the first invalid hyperparameter of `group`."""
        lr = group["lr"]
        if not callable(lr):
            if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
                raise TypeError(f"{lr=} must be a float or a schedule f(step) -> float")
            if not lr >= 0:
                raise ValueError(f"{lr=} must be >= 0")
        if "betas" in group:
            betas = group["betas"]
            if len(betas) != 2:
                raise ValueError(f"{betas=} must be a pair (beta1, beta2)")
            for name, beta in zip(("beta1", "beta2"), betas):
                if not 0 <= beta < 1:
                    raise ValueError(f"{name}={beta!r} must be in [0, 1)")
        for name in self._positive:
            if not group[name] > 0:
                raise ValueError(f"{name}={group[name]!r} must be > 0")
        for name in self._nonnegative:
            if not group[name] >= 0:
                raise ValueError(f"{name}={group[name]!r} must be >= 0")
        for name in self._unit_interval:
            if not 0 <= group[name] < 1:
                raise ValueError(f"{name}={group[name]!r} must be in [0, 1)")

    def current_lr(self, group: Mapping[str, Any]) -> float:
        """The learning rate `group` uses at the next `step()`.

        A schedule is evaluated at `step_count` (the number of steps already taken).
        """
        lr = group["lr"]
        # float(): a schedule returning a NumPy float64 must not promote float32 parameters.
        return float(lr(self.step_count)) if callable(lr) else float(lr)

    # ------------------------------------------------------------------ updates
    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place (frozen ones included)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad()

    def step(self) -> None:
        """Update every trainable parameter once from its current ``grad``, in place."""
        for group in self.param_groups:
            lr = self.current_lr(group)
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._init_state(p, group)
                self._update(p, state, group, lr)
        self.step_count += 1

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        """Allocate the per-parameter state on its first step (default: none)."""
        return {}

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _update")

    def _scratch(self, p: Parameter, slot: int = 0) -> np.ndarray:
        """A scratch array shaped and typed like `p`; its content is garbage.

        Distinct `slot` numbers give non-overlapping arrays. The memory is shared between
        parameters of the same dtype and allocated once, at the size of the largest of them.
        """
        key = (p.data.dtype, slot)
        buf = self._workspace.get(key)
        if buf is None or buf.size < p.data.size:
            size = max(
                [q.data.size for g in self.param_groups for q in g["params"]
                 if q.data.dtype == p.data.dtype] + [p.data.size]
            )
            buf = self._workspace[key] = np.empty(size, dtype=p.data.dtype)
        return buf[: p.data.size].reshape(p.data.shape)

    def _grad_with_decay(self, p: Parameter, weight_decay: float, maximize: bool) -> np.ndarray:
        """The gradient of the objective being minimized, with coupled L2 weight decay.

        ``g = (-grad if maximize else grad) + weight_decay * theta``, the order `torch.optim` uses.
        Returns ``p.grad`` itself when there is nothing to add (it is never modified), otherwise
        scratch slot 0.
        """
        if weight_decay == 0 and not maximize:
            return p.grad
        g = self._scratch(p, 0)
        if weight_decay == 0:
            np.negative(p.grad, out=g)
        else:
            np.multiply(p.data, weight_decay, out=g)
            (np.subtract if maximize else np.add)(g, p.grad, out=g)
        return g

    # ------------------------------------------------------------------ state dict
    def _param_keys(self) -> list[str]:
        """State-dict keys of all parameters in group order: names, or indices if names clash."""
        names = [p.name for g in self.param_groups for p in g["params"]]
        if all(names) and len(set(names)) == len(names):
            return names
        return [str(i) for i in range(len(names))]

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain Python and NumPy (copies, safe to keep while training).

        Returns
        -------
        dict
            ``{"step_count": int, "param_groups": [...], "state": {key: {name: array or number}}}``.
            Each group lists its hyperparameters and ``"params"``, the keys of its parameters:
            their names (`Parameter.name`), or their positions as strings when some names are empty
            or repeated. A schedule lr is saved as ``"lr": None`` with ``"lr_is_schedule": True``;
            the function lives in code and is supplied again at construction. Scratch is not saved.
        """
        keys = iter(self._param_keys())
        groups: list[dict[str, Any]] = []
        state: dict[str, dict[str, Any]] = {}
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            is_schedule = callable(group["lr"])
            saved["lr"] = None if is_schedule else group["lr"]
            saved[_SCHEDULE_FLAG] = is_schedule
            saved["params"] = []
            for p in group["params"]:
                key = next(keys)
                saved["params"].append(key)
                if p in self.state:
                    state[key] = {
                        k: (v.copy() if isinstance(v, np.ndarray) else v)
                        for k, v in self.state[p].items()
                        if not k.startswith("_")
                    }
            groups.append(saved)
        return {"step_count": self.step_count, "param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`, so that training continues exactly as if never interrupted.

        Parameters are matched by position (group by group), as in `torch.optim`; the saved keys
        only locate each parameter's state. Arrays are copied into the existing buffers when there
        are some, into new ones otherwise; hyperparameters are restored, except a schedule lr,
        which must be supplied again at construction.

        Raises
        ------
        ValueError
            If the number of groups or of parameters in a group differs, a hyperparameter is
            missing or unknown, a saved schedule lr meets a constant one, or a state array's shape
            does not match (the message names the parameter). Nothing is changed in that case.
        """
        for key in ("step_count", "param_groups", "state"):
            if key not in state_dict:
                raise ValueError(f"load_state_dict: the state dict has no {key!r} entry")
        saved_groups = list(state_dict["param_groups"])
        saved_state: Mapping[str, Mapping[str, Any]] = state_dict["state"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: the state dict has {len(saved_groups)} param groups, "
                f"the optimizer has {len(self.param_groups)}"
            )

        # Check everything before changing anything.
        plan: list[tuple[Parameter, dict[str, Any], Mapping[str, Any] | None]] = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            keys = list(saved.get("params", []))
            if len(keys) != len(group["params"]):
                raise ValueError(
                    f"load_state_dict: param group {i} has {len(keys)} parameters in the state "
                    f"dict but {len(group['params'])} in the optimizer"
                )
            hyper = set(saved) - {"params", _SCHEDULE_FLAG}
            expected = set(group) - {"params"}
            if hyper != expected:
                raise ValueError(
                    f"load_state_dict: param group {i} has hyperparameters {sorted(hyper)} in the "
                    f"state dict but {sorted(expected)} in {type(self).__name__}"
                )
            if saved.get(_SCHEDULE_FLAG, False) and not callable(group["lr"]):
                raise ValueError(
                    f"load_state_dict: param group {i} was saved with a schedule lr; construct "
                    f"the optimizer with the same schedule before loading"
                )
            for key, p in zip(keys, group["params"]):
                entry = saved_state.get(str(key))
                if entry is not None:
                    self._check_saved_state(p, group, str(key), entry)
                plan.append((p, group, entry))

        self.step_count = int(state_dict["step_count"])
        for group, saved in zip(self.param_groups, saved_groups):
            for k, v in saved.items():
                if k in ("params", _SCHEDULE_FLAG) or (k == "lr" and saved.get(_SCHEDULE_FLAG)):
                    continue
                # A JSON round trip turns tuples (betas) into lists.
                group[k] = tuple(v) if isinstance(group[k], tuple) else v
        new_state: dict[Parameter, dict[str, Any]] = {}
        for p, group, entry in plan:
            if entry is None:
                continue
            target = self.state.get(p)
            if target is None:
                target = self._init_state(p, group)
            for k in [k for k in target if not k.startswith("_") and k not in entry]:
                del target[k]
            for k, v in entry.items():
                if isinstance(v, (np.ndarray, list)):
                    v = np.asarray(v)
                    buf = target.get(k)
                    if isinstance(buf, np.ndarray) and buf.shape == v.shape:
                        np.copyto(buf, v, casting="unsafe")
                    else:
                        dtype = p.data.dtype if np.issubdtype(v.dtype, np.floating) else v.dtype
                        target[k] = np.array(v, dtype=dtype, copy=True)
                else:
                    target[k] = v.item() if isinstance(v, np.generic) else v
            new_state[p] = target
        self.state.clear()
        self.state.update(new_state)

    def _check_saved_state(
        self, p: Parameter, group: Mapping[str, Any], key: str, entry: Mapping[str, Any]
    ) -> None:
        current = self.state.get(p)
        template = current if current is not None else self._init_state(p, group)
        for k, v in entry.items():
            if not isinstance(v, (np.ndarray, list)):
                continue
            shape = np.shape(v)
            buf = template.get(k)
            want = buf.shape if isinstance(buf, np.ndarray) else p.data.shape
            if shape != want:
                raise ValueError(
                    f"load_state_dict: state {k!r} of parameter {p.name or key!r} has shape "
                    f"{shape} in the state dict but {want} in the optimizer"
                )

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        hyper = ", ".join(
            f"{k}={getattr(v, '__name__', 'schedule') if callable(v) else v!r}"
            for k, v in self.defaults.items()
        )
        n_params = sum(len(g["params"]) for g in self.param_groups)
        return (
            f"{type(self).__name__}({hyper}; {len(self.param_groups)} group(s), "
            f"{n_params} parameter(s))"
        )


# A parameter larger than BLOCKING_MIN_BYTES is updated in blocks of BLOCK_BYTES: every
# operation of the update runs on one block before the next block is read, so the block and its
# temporaries stay in cache (L2) and each array crosses the memory bus once per step instead of
# once per operation (PERF-NOTES.md: "count passes over memory"). A smaller parameter's arrays
# fit in the last-level cache together, where blocking measured no gain, only the per-block
# Python overhead. The operations are element-wise, so the result is the same, bit for bit.
BLOCK_BYTES = 1 << 18
BLOCKING_MIN_BYTES = 1 << 22


def blocks(
    arrays: Sequence[np.ndarray], scratch: Sequence[np.ndarray] = ()
) -> Iterator[tuple[np.ndarray, ...]]:
    """Matching blocks of the same-shaped `arrays`, followed by equally long views of `scratch`.

    Each block is a tuple ``(*array_blocks, *scratch_blocks)``. The scratch views always start
    at the beginning of each scratch array, so every block reuses the same (cached) memory.
    Arrays of at most `BLOCKING_MIN_BYTES`, or that are not all C-contiguous (flattening would
    copy), come back whole, as a single block.
    """
    size = arrays[0].size
    block = max(1, BLOCK_BYTES // arrays[0].itemsize)
    if (arrays[0].nbytes <= max(BLOCKING_MIN_BYTES, BLOCK_BYTES)
            or not all(a.flags.c_contiguous for a in (*arrays, *scratch))):
        yield (*arrays, *scratch)
        return
    flat = [a.reshape(-1) for a in arrays]
    flat_scratch = [s.reshape(-1) for s in scratch]
    for lo in range(0, size, block):
        hi = min(lo + block, size)
        yield (*(a[lo:hi] for a in flat), *(s[: hi - lo] for s in flat_scratch))


def objective_grad(
    grad: np.ndarray, theta: np.ndarray, weight_decay: float, maximize: bool, out: np.ndarray
) -> np.ndarray:
    """``(-grad if maximize else grad) + weight_decay * theta`` (torch's order), written to `out`;
    `grad` itself, unchanged, when there is nothing to add. The block-wise form of
    `Optimizer._grad_with_decay`."""
    if weight_decay == 0 and not maximize:
        return grad
    if weight_decay == 0:
        np.negative(grad, out=out)
    else:
        np.multiply(theta, weight_decay, out=out)
        (np.subtract if maximize else np.add)(out, grad, out=out)
    return out
