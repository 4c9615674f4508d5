"""`Parameter`: a trainable array, its gradient, and the lazy zero that lets layers write it fresh.

Re-exported by `gradwise.core` (``from gradwise.core import Parameter``) and by `gradwise`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Parameter:
    """A trainable array and its gradient.

    Parameters
    ----------
    data : array_like
        The value; kept as given (no dtype change).
    name : str
        Its dotted name in the model it was last listed from (set by `Layer.named_parameters`).

    Attributes
    ----------
    grad : np.ndarray
        Same shape and dtype as `data`; layers add to it, `zero_grad` clears it. Assigning an
        array rebinds it (e.g. to a view into a flat buffer).
    requires_grad : bool
        False for a frozen parameter: optimizers skip it and layers do no gradient work for it.

    Notes
    -----
    `zero_grad` does not touch memory: it marks the gradient as zero. The first layer to write
    a gradient afterwards asks `fresh_grad` for the buffer and overwrites it (``np.matmul(...,
    out=buf)``) instead of filling it with zeros and adding to it, which would be two more passes
    over memory. Any other read of `grad` while it is marked zero fills it with zeros first, so
    every reader (optimizers, clipping, penalties, gradient checks) sees exactly the sum of the
    gradients written since `zero_grad`, as if each had been added to zeros. Hold `grad` across
    a `zero_grad` only by reading the attribute again.
    """

    __slots__ = ("_grad", "_grad_is_zero", "data", "name", "requires_grad")

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.data = np.ascontiguousarray(data)
        self._grad = np.zeros_like(self.data)
        self._grad_is_zero = False  # True: `_grad` holds stale values that stand for zeros
        self.name = name
        self.requires_grad = True

    @property
    def grad(self) -> np.ndarray:
        if self._grad_is_zero:
            self._grad.fill(0)
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray) -> None:
        self._grad = value
        self._grad_is_zero = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        """Set the gradient to zero; O(1): it is marked zero and filled only if read before a write."""
        self._grad_is_zero = True

    def fresh_grad(self) -> np.ndarray | None:
        """The gradient buffer to overwrite with a full gradient, or None to add to `grad` instead.

        When the gradient is marked zero (`zero_grad` and nothing written since), returns the
        buffer (its content is garbage) and counts it as written: the caller must then write
        every entry, e.g. ``np.matmul(g.T, x, out=buf)``. Otherwise a gradient is pending
        (accumulation over batches, a parameter used twice in one backward) and the caller adds
        with ``p.grad += ...``. Either way `grad` ends up holding the sum of the gradients.
        """
        if self._grad_is_zero:
            self._grad_is_zero = False
            return self._grad
        return None

    def add_grad(self, value: Any) -> None:
        """``grad += value``, where the first gradient after `zero_grad` is copied in (no fill, no add).

        `value` is cast to the gradient's dtype and broadcast to its shape.
        """
        buf = self.fresh_grad()
        if buf is None:
            self._grad += value
        else:
            np.copyto(buf, value, casting="same_kind")

    def astype(self, dtype: Any) -> None:
        """Convert value and gradient in place (the object stays the same, so optimizers keep it)."""
        self.data = self.data.astype(dtype)
        self._grad = self._grad.astype(dtype)

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.shape}, dtype={self.dtype})"
