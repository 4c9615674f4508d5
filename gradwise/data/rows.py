"""Rows of a model's input, whether one array or a tuple of arrays (a multi-input model).

A tabular model reads ``(x_cat, x_cont)``, a collaborative-filtering model ``(users, items)``:
every array of the tuple has one row per sample. These helpers let code that handles inputs
generically (splits, the command line, checks) treat both forms alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["head", "input_shape", "n_rows", "take"]


def n_rows(x: Any) -> int:
    """The number of samples: ``len(x)``, or the common length of a tuple's arrays."""
    if isinstance(x, tuple):
        if not x:
            raise ValueError("n_rows: an empty tuple of inputs")
        lengths = {len(a) for a in x}
        if len(lengths) != 1:
            raise ValueError(f"n_rows: the arrays of the input tuple have different lengths {[len(a) for a in x]}")
        return lengths.pop()
    return len(x)


def take(x: Any, index: np.ndarray | slice) -> Any:
    """The rows `index` of `x` (each array of a tuple indexed alike)."""
    if isinstance(x, tuple):
        return tuple(np.asarray(a)[index] for a in x)
    return np.asarray(x)[index]


def head(x: Any, n: int) -> Any:
    """The first `n` rows of `x`."""
    return take(x, slice(0, n))


def input_shape(x: Any, batch: int = 1) -> tuple[int, ...] | tuple[tuple[int, ...], ...]:
    """The shape of a batch of `batch` samples of `x` (for `Layer.summary`): one per array of a tuple."""
    if isinstance(x, tuple):
        return tuple((batch, *np.shape(a)[1:]) for a in x)
    return (batch, *np.shape(x)[1:])
