"""Flat parameter buffers: one contiguous array per param group, so that one update covers it.

`FlatGroup` copies a group's parameters into one buffer and their gradients into another, and
rebinds each ``Parameter.data`` and ``Parameter.grad`` to a view into them (layers keep writing
gradients in place, so the views stay live). The optimizer state of the group is flat as well:
each parameter's state arrays are views into the group's flat state arrays, so `state_dict()`,
which reads the per-parameter entries, is unchanged, and `load_state_dict()`, which copies into
the existing arrays, fills the flat ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gradwise.core import Parameter


class _FlatView:
    """The whole group seen as one parameter: ``data`` and ``grad`` are the flat buffers."""

    __slots__ = ("data", "grad", "name", "requires_grad")

    def __init__(self, data: np.ndarray, grad: np.ndarray) -> None:
        self.data, self.grad = data, grad
        self.name, self.requires_grad = "<flat>", True


class FlatGroup:
    """The flat buffers of one param group and the bookkeeping that keeps them valid.

    Parameters
    ----------
    params : sequence of Parameter
        The group's parameters, all of one floating dtype.
    index : int
        The group's position (for error messages).

    Attributes
    ----------
    view : _FlatView
        ``data`` and ``grad`` of shape ``(total,)``, the concatenation of the parameters (C order).
    state : dict or None
        The group's flat state (arrays of shape ``(total,)`` and the shared counters), created at
        the first flat step.
    """

    def __init__(self, params: Sequence[Parameter], index: int = 0) -> None:
        dtypes = sorted({str(p.data.dtype) for p in params})
        if len(dtypes) != 1:
            raise ValueError(f"flat=True: param group {index} mixes dtypes {dtypes}; put each "
                             f"dtype in its own param group")
        dtype = params[0].data.dtype
        if not np.issubdtype(dtype, np.floating):
            raise ValueError(f"flat=True: param group {index} has dtype {dtype}, not floating")
        self.params = list(params)
        self.bounds: list[tuple[int, int]] = []
        lo = 0
        for p in self.params:
            self.bounds.append((lo, lo + p.data.size))
            lo += p.data.size
        data, grad = np.empty(lo, dtype=dtype), np.empty(lo, dtype=dtype)
        self._data_views: list[np.ndarray] = []
        self._grad_views: list[np.ndarray] = []
        for p, (lo, hi) in zip(self.params, self.bounds):
            data[lo:hi] = p.data.reshape(-1)
            grad[lo:hi] = p.grad.reshape(-1)
            p.data = data[lo:hi].reshape(p.data.shape)
            p.grad = grad[lo:hi].reshape(p.data.shape)
            self._data_views.append(p.data)
            self._grad_views.append(p.grad)
        self.view = _FlatView(data, grad)
        self.state: dict[str, Any] | None = None
        # (parameter index, key) -> the view handed out as that parameter's state array
        self._state_views: dict[tuple[int, str], np.ndarray] = {}

    def ready(
        self, states: dict[Parameter, dict[str, Any]], init: Callable[[Any], dict[str, Any]]
    ) -> bool:
        """Whether the group can be updated in one call now, creating or gathering the flat
        state when needed.

        True when every parameter is trainable, its ``data`` and ``grad`` are still the views
        handed out (nothing rebound them, e.g. ``astype``), and either no parameter has state yet
        (the flat state is created with `init`) or all have state with the same counters and
        the same array keys (gathered into flat arrays if they are not the flat views already,
        e.g. after `load_state_dict` into a fresh optimizer).
        """
        # Reading `p.grad` also fills a gradient still marked zero (`Parameter.zero_grad` is lazy),
        # so the flat buffer holds every gradient before the update reads it.
        for p, d, g in zip(self.params, self._data_views, self._grad_views):
            if not p.requires_grad or p.data is not d or p.grad is not g:
                return False
        present = [states.get(p) for p in self.params]
        if all(s is None for s in present):
            self.state = init(self.view)
            self._state_views.clear()
            for i, p in enumerate(self.params):
                states[p] = {}
            self.sync(states)
            return True
        if any(s is None for s in present):
            return False
        if self.state is not None and self._is_current(present):
            return True
        return self._gather(present, states)

    def _is_current(self, present: list[dict[str, Any]]) -> bool:
        assert self.state is not None
        for i, s in enumerate(present):
            if s.keys() != self.state.keys():
                return False
            for k, v in s.items():
                if isinstance(v, np.ndarray):
                    if v is not self._state_views.get((i, k)):
                        return False
                elif v != self.state[k]:
                    return False
        return True

    def _gather(self, present: list[dict[str, Any]], states: dict[Parameter, dict[str, Any]]) -> bool:
        first = present[0]
        for s, p in zip(present, self.params):
            if s.keys() != first.keys():
                return False
            for k, v in s.items():
                if isinstance(v, np.ndarray):
                    if v.size != p.data.size:
                        return False
                elif v != first[k]:
                    return False
        total = self.view.data.size
        flat: dict[str, Any] = {}
        for k, v in first.items():
            if isinstance(v, np.ndarray):
                buf = np.empty(total, dtype=v.dtype)
                for s, (lo, hi) in zip(present, self.bounds):
                    buf[lo:hi] = s[k].reshape(-1)
                flat[k] = buf
            else:
                flat[k] = v
        self.state = flat
        self._state_views.clear()
        for p in self.params:
            states[p].clear()
        self.sync(states)
        return True

    def sync(self, states: dict[Parameter, dict[str, Any]]) -> None:
        """After a flat update: copy the counters to every parameter's state and hand out views
        of flat state arrays created during the update (e.g. a momentum buffer)."""
        assert self.state is not None
        for i, (p, (lo, hi)) in enumerate(zip(self.params, self.bounds)):
            s = states[p]
            for k, v in self.state.items():
                if isinstance(v, np.ndarray):
                    if (i, k) not in self._state_views:
                        s[k] = self._state_views[(i, k)] = v[lo:hi].reshape(p.data.shape)
                else:
                    s[k] = v
