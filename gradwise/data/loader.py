"""Mini-batches from in-memory arrays."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from gradwise.random import resolve as _resolve_rng

__all__ = ["DataLoader"]

Batch = np.ndarray | tuple[np.ndarray, ...]
Transform = Callable[[Any, np.random.Generator], Any]


class DataLoader:
    """Iterate over `(xb, yb)` mini-batches of in-memory arrays, optionally shuffled each epoch.

    Everything that can be checked is checked once, here, rather than per batch: matching
    lengths, a positive batch size, and finite values (a NaN in the data otherwise surfaces
    epochs later as a NaN loss that looks like a learning-rate problem).

    Parameters
    ----------
    x : array_like, shape (N, ...), or a tuple of them
        Inputs. A floating `x` is cast to `dtype` once; integer inputs (token or category
        indices) are kept as they are. A **tuple** of arrays with the same N is a multi-input
        dataset (for `gradwise.layers.Parallel`): each array is checked and cast on its own and
        every `xb` is a tuple of the same length, row-aligned. (A list is converted to one
        array, as NumPy does; only a tuple means several inputs.)
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
    transform : callable, optional
        ``transform(xb, rng) -> xb``, applied to every batch as it is yielded, with the loader's
        generator (`rng`, or the default one current at the start of the epoch); e.g. a
        `gradwise.data.augment` transform. Meant for **training loaders only**: give the
        validation and test loaders none, and `Trainer.evaluate`/`predict` see the data as it
        is. It must return a new array rather than modify `xb` (unshuffled batches are views of
        `x`). For a tuple `x` it receives and returns the tuple.

    Attributes
    ----------
    x : np.ndarray or tuple of np.ndarray
        The (cast) input array(s).
    y : np.ndarray or None
        The (cast) targets.
    batch_size : int
    num_samples : int
    permutation : np.ndarray (N,) or None
        The order of the epoch being iterated (set when its first batch is drawn); None without
        shuffling. A checkpoint saves it, so that a run resumed mid-epoch sees the same batches.

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
        transform: Transform | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: {batch_size=} must be an integer >= 1")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"DataLoader: rng must be a numpy Generator or None, got {type(rng).__name__}")
        if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"DataLoader: {dtype=} must be a floating dtype (or None)")
        if transform is not None and not callable(transform):
            raise TypeError(
                f"DataLoader: transform must be a callable (xb, rng) -> xb or None, got {type(transform).__name__}"
            )
        if isinstance(x, tuple):
            if not x:
                raise ValueError("DataLoader: x is an empty tuple; give one array per model input")
            self.x: Batch = tuple(_prepare(f"x[{i}]", xi, dtype) for i, xi in enumerate(x))
            lengths = [len(xi) for xi in self.x]
            if len(set(lengths)) > 1:
                raise ValueError(
                    f"DataLoader: the arrays of x have different numbers of samples ({lengths}); "
                    "every input needs one row per sample"
                )
            n = lengths[0]
        else:
            self.x = _prepare("x", x, dtype)
            n = len(self.x)
        self.y = None if y is None else _prepare("y", y, dtype)
        if self.y is not None and len(self.y) != n:
            raise ValueError(f"DataLoader: x and y have different numbers of samples ({n} and {len(self.y)})")
        self.num_samples = n
        self.transform = transform
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = rng
        self.permutation: np.ndarray | None = None
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

    def __iter__(self) -> Iterator[tuple[Batch, np.ndarray | None]]:
        return self._batches(None, 0)

    def resume(self, permutation: np.ndarray | None, start: int) -> Iterator[tuple[Batch, np.ndarray | None]]:
        """The rest of an interrupted epoch: batches `start`, `start` + 1, ... in the order `permutation`.

        Used to continue a run from a checkpoint taken mid-epoch (`gradwise.training.checkpoint`):
        no new permutation is drawn, and the generator is used from its current state on (for
        `transform`), so with the generators restored the batches are those the interrupted epoch
        would have produced.

        Parameters
        ----------
        permutation : np.ndarray (N,) of int, or None
            The epoch's order (`permutation` as it was); None when the loader does not shuffle.
        start : int
            Batches already done, in [0, len(self)].

        Raises
        ------
        ValueError
            If `start` is out of range, or `permutation` is missing, superfluous, or not a
            permutation of ``range(num_samples)``.
        """
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start <= len(self):
            raise ValueError(f"DataLoader.resume: {start=} must be an integer in [0, {len(self)}]")
        if self.shuffle != (permutation is not None):
            raise ValueError(
                f"DataLoader.resume: the loader has shuffle={self.shuffle} but the saved epoch order is "
                f"{'missing' if permutation is None else 'a permutation'}"
            )
        if permutation is not None:
            permutation = np.asarray(permutation)
            n = self.num_samples
            ok = permutation.shape == (n,) and np.issubdtype(permutation.dtype, np.integer)
            if ok:
                ok = 0 <= permutation.min() and permutation.max() < n and bool(np.all(np.bincount(permutation) == 1))
            if not ok:
                raise ValueError(
                    f"DataLoader.resume: the saved epoch order (shape {permutation.shape}, {permutation.dtype}) "
                    f"is not a permutation of the loader's {n} samples"
                )
        return self._batches(permutation, int(start))

    def _batches(self, perm: np.ndarray | None, start: int) -> Iterator[tuple[Batch, np.ndarray | None]]:
        n_batches = len(self)
        bs = self.batch_size
        x, y = self.x, self.y
        multi = isinstance(x, tuple)
        rng = _resolve_rng(self.rng)  # once per epoch, so `manual_seed` between epochs takes effect
        if perm is None and self.shuffle:
            perm = rng.permutation(self.num_samples)
        self.permutation = perm
        for i in range(start, n_batches):
            # A slice gives views (no copy); a piece of the permutation, one gather per array.
            sel: slice | np.ndarray = slice(i * bs, (i + 1) * bs) if perm is None else perm[i * bs : (i + 1) * bs]
            xb = tuple(xi[sel] for xi in x) if multi else x[sel]
            if self.transform is not None:
                xb = self.transform(xb, rng)
            yield xb, (None if y is None else y[sel])

    def __repr__(self) -> str:
        inputs = f"inputs={len(self.x)}, " if isinstance(self.x, tuple) else ""
        transform = "" if self.transform is None else f", transform={getattr(self.transform, '__name__', 'yes')}"
        return (
            f"DataLoader(num_samples={self.num_samples}, {inputs}batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, batches={len(self)}{transform})"
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
