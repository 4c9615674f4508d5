"""Reshape: give each sample a new shape, e.g. a flat MNIST-1D sequence (N, 40) -> (N, 1, 40)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gradwise.core import Layer


class Reshape(Layer):
    """Reshape every sample to `shape`; the batch axis is kept.

    Equal to `x.reshape(N, *shape)`, and to `torch.nn.Unflatten(1, shape)` when the input is
    (N, prod(shape)). One entry of `shape` may be -1 (inferred), as in NumPy. Backward reshapes the
    gradient back to the input's shape. No copy is made when the input is contiguous.

    Parameters
    ----------
    shape : sequence of int
        The per-sample shape, without the batch axis (a TOML list: `shape = [1, 40]`).

    Shapes
    ------
    x : (N, *in_shape) -> y : (N, *shape), with prod(in_shape) == prod(shape).
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape
        ):
            raise ValueError(f"Reshape: {shape=} must be a sequence of ints")
        if sum(1 for s in shape if s == -1) > 1 or any(s < -1 or s == 0 for s in shape):
            raise ValueError(f"Reshape: {shape=} must hold positive sizes and at most one -1")
        self.shape = tuple(int(s) for s in shape)
        self._in_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"Reshape{self.shape}: input of shape {x.shape} has no batch axis")
        size, known = math.prod(x.shape[1:]), math.prod(s for s in self.shape if s != -1)
        if (-1 in self.shape and size % known) or (-1 not in self.shape and size != known):
            need = f"a multiple of {known}" if -1 in self.shape else f"{known}"
            raise ValueError(
                f"Reshape{self.shape}: input of shape {x.shape} has {size} values per sample; the shape "
                f"{self.shape} needs {need}"
            )
        self._in_shape = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._in_shape is None:
            raise self.no_cache_error()
        shape, self._in_shape = self._in_shape, None
        return np.asarray(grad_out).reshape(shape) if input_grad else None

    def extra_repr(self) -> str:
        return f"shape={self.shape}"
