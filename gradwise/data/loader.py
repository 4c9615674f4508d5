"""Mini-batches from in-memory arrays."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gradwise.random import resolve as _resolve_rng

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over `(xb, yb)` mini-batches of in-memory arrays, optionally shuffled each epoch.

    Everything that can be checked is checked once, here, rather than per batch: matching
    lengths, a positive batch size, and finite values (a NaN in the data otherwise surfaces
    epochs later as a NaN loss that looks like a learning-rate problem).

    Parameters
    ----------
    x : array_like, shape (N, ...)
        Inputs. A floating `x` is cast to `dtype` once; integer inputs (token or category
        indices) are kept as they are.
    y : array_like, shape (N, ...), optional
        Targets. Integer labels are kept; floating targets are cast to `dtype` like `x` (the
        losses would cast them to the scores' dtype on every batch otherwise). None yields
        ``yb = None`` (for prediction).
    batch_size : int
        Samples per batch, >= 1. The last batch is smaller unless `drop_last`.
    shuffle : bool
        Draw a fresh permutation at the start of every epoch (every `iter`).
    drop_last : bool
        Leave out the last, incomplete batch (keeps batch statistics such as BatchNorm's stable).
    rng : np.random.Generator, optional
        Source of the permutations. When None, the library default generator
        (`gradwise.random.default_rng`) current at the start of each epoch is used, so
        `gradwise.manual_seed` called after building the loader still takes effect.
    dtype : numpy floating dtype or None
        Dtype of floating `x` and `y`; None keeps theirs.

    Attributes
    ----------
    x, y : np.ndarray
        The (cast) arrays.
    batch_size : int
    num_samples : int

    Notes
    -----
    Without shuffling, batches are views into `x` and `y` (no copy). With shuffling, each
    batch is one fancy-indexing gather from the epoch's permutation (one copy per batch, nothing
    per sample). Do not modify batches in place if you want the data unchanged.

    Examples
    --------
    >>> loader = DataLoader(X, y, batch_size=64, shuffle=True, rng=np.random.default_rng(0))
    >>> for xb, yb in loader:
    ...     ...
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype | None = np.float32,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: {batch_size=} must be an integer >= 1")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"DataLoader: rng must be a numpy Generator or None, got {type(rng).__name__}")
        if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"DataLoader: {dtype=} must be a floating dtype (or None)")
        self.x = _prepare("x", x, dtype)
        self.y = None if y is None else _prepare("y", y, dtype)
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(
                f"DataLoader: x and y have different numbers of samples ({len(self.x)} and {len(self.y)})"
            )
        self.num_samples = len(self.x)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = rng
        if self.drop_last and self.num_samples < self.batch_size:
            raise ValueError(
                f"DataLoader: drop_last=True with {self.num_samples} samples and "
                f"batch_size={self.batch_size} leaves no batch at all"
            )

    def __len__(self) -> int:
        """Number of batches per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        n_batches = len(self)
        bs = self.batch_size
        x, y = self.x, self.y
        if not self.shuffle:
            for i in range(n_batches):
                sl = slice(i * bs, (i + 1) * bs)
                yield x[sl], (None if y is None else y[sl])
            return
        perm = _resolve_rng(self.rng).permutation(self.num_samples)
        for i in range(n_batches):
            idx = perm[i * bs : (i + 1) * bs]
            yield x[idx], (None if y is None else y[idx])

    def __repr__(self) -> str:
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)})"
        )


def _prepare(name: str, a: Any, dtype: type | np.dtype | None) -> np.ndarray:
    """`a` as an array with at least one dimension, floating data cast to `dtype` and checked finite."""
    a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError(f"DataLoader: {name} must have a sample dimension, got a scalar")
    if a.shape[0] == 0:
        raise ValueError(f"DataLoader: {name} has no samples")
    if np.issubdtype(a.dtype, np.floating):
        note = ""
        if dtype is not None and a.dtype != dtype:
            # A value beyond the new dtype's range turns into inf here: say so in the error.
            note = f" after casting from {a.dtype} to {np.dtype(dtype)}"
            with np.errstate(over="ignore"):  # reported below, with the row
                a = a.astype(dtype)
        _check_finite(name, a, note)
    return a


def _check_finite(name: str, a: np.ndarray, note: str = "") -> None:
    # A float64 sum is one pass without a temporary the size of `a`; it is finite whenever
    # every value is, unless huge values overflow it, which the exact scan below then clears.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(a, dtype=np.float64)):
            return
    bad_rows = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        values = a[row].ravel()
        value = values[~np.isfinite(values)][0]
        raise ValueError(
            f"DataLoader: {name} contains non-finite values{note} ({value} first in row {row}; "
            f"{bad_rows.size} bad row(s) in all). Clean or impute the data before training."
        )
