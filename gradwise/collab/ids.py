"""`IdEncoder`: raw user or item ids -> contiguous embedding rows, with a reserved row for unknown ids."""

from __future__ import annotations

from typing import Any

import numpy as np

UNKNOWN = 0  # the row every id not seen in training maps to


class IdEncoder:
    """Map raw integer ids (MovieLens user and item ids, product numbers, ...) to rows ``1..n``.

    Row 0 is reserved for ids the encoder was not fitted on, as fastai's Categorify reserves
    ``#na#``: a model built with ``len(encoder)`` rows has a (trained-toward-zero) row for them,
    so prediction for a new user or item falls back on the other half of the pair and the global
    offset instead of failing.

    Parameters
    ----------
    classes : array_like of int, shape (n,)
        The known ids; sorted and deduplicated here. Usually built with `IdEncoder.fit`.

    Attributes
    ----------
    classes : np.ndarray of int64, shape (n,)
        Known id ``classes[j]`` is row ``j + 1``.

    Examples
    --------
    >>> enc = IdEncoder.fit([10, 3, 10, 7])
    >>> enc.transform([3, 7, 10, 99]).tolist()
    [1, 2, 3, 0]
    >>> len(enc)
    4
    """

    def __init__(self, classes: Any) -> None:
        arr = np.asarray(classes)
        if arr.ndim != 1:
            raise ValueError(f"IdEncoder: classes must be 1-D, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"IdEncoder: ids must be integers, got dtype {arr.dtype} "
                            "(map string ids to integers first, e.g. with a dict)")
        self.classes = np.unique(arr.astype(np.int64))

    @classmethod
    def fit(cls, ids: Any) -> IdEncoder:
        """The encoder of the ids seen in `ids` (any shape, integers)."""
        return cls(np.asarray(ids).reshape(-1))

    def __len__(self) -> int:
        """The number of embedding rows it needs: the known ids plus the unknown row."""
        return len(self.classes) + 1

    def transform(self, ids: Any) -> np.ndarray:
        """Rows of `ids` (any shape, int64): ``1..n`` for known ids, `UNKNOWN` (0) for the others."""
        arr = np.asarray(ids)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"IdEncoder.transform: ids must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        pos = np.searchsorted(self.classes, arr)
        pos_clipped = np.minimum(pos, len(self.classes) - 1) if len(self.classes) else pos
        known = (pos < len(self.classes)) & (self.classes[pos_clipped] == arr) if len(self.classes) else \
            np.zeros(arr.shape, dtype=bool)
        return np.where(known, pos + 1, UNKNOWN).astype(np.int64)

    def known(self, ids: Any) -> np.ndarray:
        """Boolean mask: which of `ids` the encoder was fitted on."""
        return self.transform(ids) != UNKNOWN

    def inverse_transform(self, rows: Any) -> np.ndarray:
        """The raw ids of `rows` (``1..n``); row 0 (unknown) has no id and raises ValueError."""
        r = np.asarray(rows, dtype=np.int64)
        if r.size and (r.min() < 1 or r.max() > len(self.classes)):
            raise ValueError(f"IdEncoder.inverse_transform: rows must be in 1..{len(self.classes)} "
                             "(row 0 stands for unknown ids)")
        return self.classes[r - 1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdEncoder) and np.array_equal(self.classes, other.classes)

    def __repr__(self) -> str:
        return f"IdEncoder({len(self.classes)} ids + unknown)"
