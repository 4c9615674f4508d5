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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim._blocks import (  # noqa: F401 -- re-exported: the optimizers import them here
    BLOCK_BYTES,
    BLOCKING_MIN_BYTES,
    FLUSH_BLOCK,
    blocks,
    flush_denormals,
    objective_grad,
)
from gradwise.optim._flat import FlatGroup
from gradwise.optim._state_dict import StateDictMixin

#: A learning rate: a constant, or a schedule `f(step) -> float` where `step` is the number of
#: optimizer steps already taken (0 on the first step).
LearningRate = float | Callable[[int], float]



_BOOL = np.dtype(bool)


class Optimizer(StateDictMixin):
    """Base class of every optimizer.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        The parameters to optimize, or param groups: dicts ``{"params": [...], "lr": ..., ...}``
        whose other keys override `defaults` for that group (``torch.optim`` semantics).
    defaults : mapping
        Every hyperparameter of the optimizer and its value for groups that do not override it.
        ``defaults["lr"]`` may be a float or a schedule ``f(step) -> float``.
    flat : bool, default False
        Copy each param group's parameters into one contiguous buffer (and their gradients into
        another), rebinding every ``Parameter.data`` and ``Parameter.grad`` to a view into it, so
        that one update (one kernel call) covers the whole group; the state (moments, momentum
        buffers) is flat too, while `state` and `state_dict()` stay keyed per parameter. A
        group's parameters must share one dtype. See docs/fused.md.
    flush_denormals : bool, default True
        After each update, set subnormal values (``0 < |x| < np.finfo(dtype).tiny``) of the
        parameters and of the array state to zero: arithmetic on them is many times slower on
        x86, and weights or moments decaying toward zero (dead units under an L2 penalty or
        weight decay) end up there. PyTorch offers the process-wide switch
        ``torch.set_flush_denormal(True)`` for the same reason; this is per optimizer. The
        threshold is the dtype's own ``tiny`` (1.2e-38 in float32, 2.2e-308 in float64).
    fused : bool, default False
        Update with the compiled kernel of the subclass (see `SGD` and `Adam`, which resolve
        their ``fused=None`` default); the base only stores the resolved choice.

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
        *,
        flat: bool = False,
        flush_denormals: bool = True,
        fused: bool = False,
    ) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        #: Whether updates run in the compiled kernel (`_fused_update`) instead of `_update`.
        self.fused: bool = bool(fused)
        #: Whether subnormal parameters and state are set to zero after each update.
        self.flush_denormals: bool = bool(flush_denormals)
        #: Whether param groups live in flat buffers; `_flat[i]` is group i's `FlatGroup`.
        self.flat: bool = bool(flat)
        self._flat: list[FlatGroup] = []
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
        if self.flat:
            self._flat = [FlatGroup(group["params"], index=i)
                          for i, group in enumerate(self.param_groups)]

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
        """Update every trainable parameter once from its current ``grad``, in place.

        A flat group (``flat=True``) is updated in one call over its buffers when every
        parameter is trainable, still a view into them, and at the same point of its state
        (see `FlatGroup.ready`); otherwise parameter by parameter, with the same result.
        """
        for i, group in enumerate(self.param_groups):
            lr = self.current_lr(group)
            flat = self._flat[i] if self._flat else None
            if flat is not None and flat.ready(self.state, lambda p: self._init_state(p, group)):
                self._apply(flat.view, flat.state, group, lr)
                flat.sync(self.state)
                continue
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._init_state(p, group)
                self._apply(p, state, group, lr)
        self.step_count += 1

    def _apply(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        """One update of `p`: the compiled kernel (which flushes as it writes), or the NumPy
        reference `_update` followed by `_flush`."""
        if self.fused and self._fused_update(p, state, group, lr):
            return
        self._update(p, state, group, lr)
        if self.flush_denormals:
            self._flush(p, state)

    def _fused_update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> bool:
        """The compiled update of a subclass; returns False when it cannot handle these arrays
        (the NumPy path then runs). The base has none."""
        return False

    def _flush(self, p: Parameter, state: Mapping[str, Any]) -> None:
        """Set the subnormal entries of ``p.data`` and of `state`'s floating arrays to zero."""
        arrays = [p.data] + [
            v for k, v in state.items()
            # dtype.kind "f": any floating dtype (np.issubdtype costs 0.6 us, twice per array)
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size == p.data.size
            and not k.startswith("_")
        ]
        n = min(FLUSH_BLOCK, p.data.size)
        flush_denormals(arrays, self._flush_buffer(p.data.dtype, n), self._flush_buffer(_BOOL, n))

    def _flush_buffer(self, dtype: np.dtype, size: int) -> np.ndarray:
        """A 1-d scratch array of `dtype` with at least `size` entries, for `_flush`."""
        key = (dtype, -1)
        buf = self._workspace.get(key)
        if buf is None or buf.size < size:
            buf = self._workspace[key] = np.empty(size, dtype=dtype)
        return buf

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        """Allocate the per-parameter state on its first step (default: none)."""
        return {}

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _update")

    def _scratch(self, p: Parameter, slot: int = 0, dtype: np.dtype | None = None) -> np.ndarray:
        """A scratch array shaped and typed like `p` (or of `dtype`); its content is garbage.

        Distinct `slot` numbers give non-overlapping arrays. The memory is shared between
        parameters of the same dtype and allocated once, at the size of the largest of them.
        """
        key = (p.data.dtype if dtype is None else dtype, slot)
        buf = self._workspace.get(key)
        if buf is None or buf.size < p.data.size:
            size = max(
                [q.data.size for g in self.param_groups for q in g["params"]
                 if q.data.dtype == p.data.dtype] + [p.data.size]
            )
            buf = self._workspace[key] = np.empty(size, dtype=key[0])
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
