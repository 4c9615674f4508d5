"""Layers that only rearrange data."""

from __future__ import annotations

import math

import numpy as np

from gradwise.core import Layer


class Flatten(Layer):
    """Flatten dimensions `start_dim..end` into one, as `torch.nn.Flatten(start_dim)`.

    Shapes: (N, d1, d2, ...) -> (N, d1 * d2 * ...) for the default `start_dim=1`.
    """

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        if start_dim < 0:
            raise ValueError(f"Flatten: {start_dim=} must be >= 0")
        self.start_dim = start_dim
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim <= self.start_dim:
            raise ValueError(f"Flatten(start_dim={self.start_dim}): input of shape {x.shape} has too few dimensions")
        self._shape = x.shape
        return x.reshape(*x.shape[: self.start_dim], math.prod(x.shape[self.start_dim :]))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise self.no_cache_error()
        shape, self._shape = self._shape, None
        return grad_out.reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"
