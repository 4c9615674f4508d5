"""What both collaborative-filtering models share: id encoders saved as buffers, input checks,
the sigmoid range and `predict` on raw ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.collab.ids import IdEncoder
from gradwise.core import Layer


def rows_of(value: int | IdEncoder, name: str) -> tuple[int, np.ndarray]:
    """(number of embedding rows, known raw ids) of an `IdEncoder` or a row count.

    A plain count ``n`` means the raw ids are the rows already: ids ``1..n-1`` (row 0 for unknown).
    """
    if isinstance(value, IdEncoder):
        return len(value), value.classes.copy()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ValueError(f"{name}={value!r} must be an IdEncoder or an integer >= 2 (row 0 is for unknown ids)")
    return int(value), np.arange(1, int(value), dtype=np.int64)


def check_y_range(y_range: Any) -> tuple[float, float] | None:
    if y_range is None:
        return None
    try:
        lo, hi = (float(v) for v in y_range)
    except (TypeError, ValueError):
        raise ValueError(f"y_range={y_range!r} must be a pair (low, high) or None") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"y_range={y_range!r} must be finite with low < high")
    return lo, hi


class CollabModel(Layer):
    """Base of `EmbeddingDotBias` and `EmbeddingNN`: input ``x`` of int64 rows ``(user, item)``.

    The known raw ids are buffers ``user_ids`` and ``item_ids`` (int64), so `state_dict`, a
    safetensors file and a run's checkpoints carry the id encoding with the weights:
    `user_encoder`, `item_encoder` and `predict` work on a model loaded from disk.
    """

    n_users: int
    n_items: int
    y_range: tuple[float, float] | None

    def _setup_ids(self, users: int | IdEncoder, items: int | IdEncoder) -> None:
        self.n_users, user_ids = rows_of(users, "users")
        self.n_items, item_ids = rows_of(items, "items")
        self.register_buffer("user_ids", user_ids)
        self.register_buffer("item_ids", item_ids)
        self._encoders: dict[str, tuple[int, IdEncoder]] = {}

    def _encoder(self, which: str) -> IdEncoder:
        buf = getattr(self, which)
        cached = self._encoders.get(which)
        if cached is None or cached[0] != id(buf):  # load_state_dict replaces the buffer
            cached = (id(buf), IdEncoder(buf))
            self._encoders[which] = cached
        return cached[1]

    @property
    def user_encoder(self) -> IdEncoder:
        """Raw user ids -> rows (from the ``user_ids`` buffer)."""
        return self._encoder("user_ids")

    @property
    def item_encoder(self) -> IdEncoder:
        """Raw item ids -> rows (from the ``item_ids`` buffer)."""
        return self._encoder("item_ids")

    def encode(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """The model input of raw ids: int64 ``(N, 2)`` rows, unknown ids on row 0."""
        u = self.user_encoder.transform(np.asarray(user_ids).reshape(-1))
        i = self.item_encoder.transform(np.asarray(item_ids).reshape(-1))
        if u.shape != i.shape:
            raise ValueError(f"{type(self).__name__}.encode: {u.size} user ids but {i.size} item ids")
        return np.stack([u, i], axis=1)

    def predict(self, user_ids: Any, item_ids: Any, batch_size: int = 4096) -> np.ndarray:
        """Predicted ratings of the pairs ``(user_ids[k], item_ids[k])`` of raw ids, shape (N,).

        Runs in eval mode (dropout off, batch norm on running statistics) and restores the mode.
        An id not seen in training uses the reserved unknown row.
        """
        x = self.encode(user_ids, item_ids)
        was_training = self.training
        self.eval()
        try:
            out = [self.forward(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return np.concatenate(out) if out else np.zeros(0, dtype=self.dtype)

    def _check_input(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(x)
        name = type(self).__name__
        if idx.ndim != 2 or idx.shape[1] != 2:
            raise ValueError(f"{name}: input must have shape (N, 2) of (user row, item row), got {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{name}: input must be integer rows, got dtype {idx.dtype} (use .astype(np.int64))")
        u, i = idx[:, 0], idx[:, 1]
        # One min and one column-wise max for the common (valid) case; the loop finds the culprit.
        if not len(idx) or (idx.min() >= 0 and (idx.max(axis=0) < (self.n_users, self.n_items)).all()):
            return u, i
        for what, col, n in (("user", u, self.n_users), ("item", i, self.n_items)):
            if col.size and (col.min() < 0 or col.max() >= n):
                k = int(np.flatnonzero((col < 0) | (col >= n))[0])
                raise IndexError(f"{name}: {what} row {int(col[k])} at input row {k} is out of range 0..{n - 1} "
                                 "(raw ids? encode them with model.encode(users, items))")
        return u, i

    # The sigmoid range, fastai's `sigmoid_range`: y = lo + (hi - lo) * sigmoid(r).
    def _squash(self, r: np.ndarray) -> np.ndarray:
        """y of the raw score r; caches sigmoid(r) for `_squash_backward`."""
        if self.y_range is None:
            return r
        lo, hi = self.y_range
        s = np.tanh(r * 0.5)  # sigmoid(r) = (1 + tanh(r / 2)) / 2, without overflow for any r
        s += 1
        s *= 0.5
        self._sig = s
        return s * (hi - lo) + lo

    def _squash_backward(self, g: np.ndarray) -> np.ndarray:
        """dL/dr from dL/dy: ``(hi - lo) * s * (1 - s) * g``."""
        if self.y_range is None:
            return g
        lo, hi = self.y_range
        s = self._sig
        self._sig = None
        return (hi - lo) * s * (1 - s) * g

    def input_dtype(self, floating: np.dtype) -> np.dtype:
        """int64: the input is a pair of rows per sample."""
        return np.dtype(np.int64)

    def _range_repr(self) -> str:
        return "" if self.y_range is None else f", y_range=({self.y_range[0]:g}, {self.y_range[1]:g})"
