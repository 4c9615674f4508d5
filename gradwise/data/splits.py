"""Train/dev/test splits (by ratio or count, optionally stratified) and k-fold indices.

The dev set (also called validation set) is for choosing hyperparameters and early stopping; the
test set is touched once, at the end. Stratifying keeps each class's share the same in every part,
which matters for small or imbalanced data sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from gradwise.random import resolve

__all__ = ["train_dev_test_split", "train_test_split", "kfold"]


def _resolve_size(value: float | int, n: int, name: str) -> int:
    """Number of samples meant by `value`: a ratio in (0, 1) of `n`, or a count in [1, n - 1]."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be a ratio in (0, 1) or a positive int count, not a bool")
    if isinstance(value, (int, np.integer)):
        if not 1 <= value < n:
            raise ValueError(f"{name}={value!r} must be a count in [1, {n - 1}] for {n} samples")
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name}={value!r} must be a ratio in (0, 1) or a positive int count")
        count = math.floor(value * n + 0.5)  # half up, not ceil: 0.7 * 10 is 7.000000000000001
        if count < 1:
            raise ValueError(f"{name}={value!r} of {n} samples gives an empty part; use a larger ratio")
        return count
    raise ValueError(f"{name}={value!r} must be a ratio in (0, 1) or a positive int count")


def _as_arrays(arrays: Sequence[object], fname: str) -> tuple[list[np.ndarray], int]:
    """The arrays as ndarrays and their common length along axis 0."""
    if not arrays:
        raise ValueError(f"{fname} needs at least one array to split")
    out = [np.asarray(a) for a in arrays]
    for i, a in enumerate(out):
        if a.ndim == 0:
            raise ValueError(f"arrays[{i}] is a scalar; every array needs a sample axis 0")
    lengths = [a.shape[0] for a in out]
    if len(set(lengths)) > 1:
        raise ValueError(f"arrays must have the same length along axis 0, got lengths {lengths}")
    return out, lengths[0]


def _stratified_counts(class_sizes: np.ndarray, part_sizes: Sequence[int]) -> np.ndarray:
    """Integer (K, P) table of how many samples of each class go to each part.

    Row c sums to the class size n_c, column p to the part size m_p, and every entry is the floor or
    the ceiling of its proportional share ``n_c * m_p / n`` (a whole-number share is kept exactly).

    Notes
    -----
    Start from the floors; which shares to round up is then a bipartite b-matching: class c must
    round up ``need_c`` of its fractional cells, part p must receive ``extra_p``. The fractional parts
    of the shares are a fractional solution, so an integral one exists (max-flow integrality). A
    greedy pass (neediest classes first, larger fractions first) settles almost every case; the rare
    leftovers are fixed with augmenting paths.
    """
    n = int(class_sizes.sum())
    share = np.outer(class_sizes, part_sizes) / n  # exact integers divide exactly when whole
    table = np.floor(share).astype(np.int64)
    frac = share - table
    allowed = frac > 0
    take = np.zeros(share.shape, dtype=bool)  # shares rounded up
    need = class_sizes - table.sum(axis=1)
    extra = np.asarray(part_sizes) - table.sum(axis=0)
    for p in range(len(part_sizes)):
        cand = np.flatnonzero(allowed[:, p] & (need > 0))
        cand = cand[np.lexsort((-frac[cand, p], -need[cand]))][: extra[p]]
        take[cand, p] = True
        need[cand] -= 1
        extra[p] -= cand.size
    while need.any():
        _augment(int(np.flatnonzero(need)[0]), allowed, take, need, extra)
    return table + take


def _augment(start: int, allowed: np.ndarray, take: np.ndarray, need: np.ndarray, extra: np.ndarray) -> None:
    """Round up one more share of class `start`, shifting other classes' round-ups along a path.

    Breadth-first search over alternating paths: class -> part (a free allowed cell), part -> class
    (a class already rounded up there, which then moves its round-up elsewhere), ending at a part
    that still has room.
    """
    n_parts = take.shape[1]
    part_from = np.full(n_parts, -1)  # class through which each part was reached
    class_from = {start: -1}  # part through which each class was reached
    frontier = [start]
    while frontier:
        next_frontier = []
        for c in frontier:
            for p in np.flatnonzero(allowed[c] & ~take[c] & (part_from < 0)):
                part_from[p] = c
                if extra[p] > 0:
                    extra[p] -= 1
                    need[start] -= 1
                    while p >= 0:  # flip the path back to `start`
                        c = part_from[p]
                        take[c, p] = True
                        p = class_from[c]
                        if p >= 0:
                            take[c, p] = False
                    return
                for c2 in np.flatnonzero(take[:, p]):
                    if int(c2) not in class_from:
                        class_from[int(c2)] = p
                        next_frontier.append(int(c2))
        frontier = next_frontier
    raise RuntimeError("stratified split: no rounding keeps every class proportional (please report this)")


def _split_indices(
    n: int,
    counts: Sequence[int],
    stratify: np.ndarray | None,
    shuffle: bool,
    rng: np.random.Generator | None,
) -> list[np.ndarray]:
    """Disjoint index arrays of sizes `counts` (summing to `n`) that together cover ``range(n)``.

    Without `stratify`, the samples (shuffled or in order) are cut into consecutive chunks. With it,
    each class's samples (shuffled or in order) are cut into chunks of the sizes that
    `_stratified_counts` gives, and part p is the union of every class's p-th chunk.
    """
    rng = resolve(rng) if shuffle else None
    order = rng.permutation(n) if rng is not None else np.arange(n)
    if stratify is None:
        return np.split(order, np.cumsum(counts)[:-1])

    classes, inverse, class_sizes = np.unique(stratify, return_inverse=True, return_counts=True)
    too_small = class_sizes < len(counts)
    if too_small.any():
        c = classes[too_small].tolist()[0]  # a plain Python value, so the message reads `1`, not `np.int64(1)`
        raise ValueError(
            f"stratify: class {c!r} has {int(class_sizes[too_small][0])} sample(s), fewer than the "
            f"{len(counts)} parts; too few to stratify"
        )
    table = _stratified_counts(class_sizes, counts)
    # rank of every sample within its class, in shuffled (or original) order
    label = inverse.ravel()[order]
    by_class = np.argsort(label, kind="stable")
    starts = np.concatenate([[0], np.cumsum(class_sizes)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[by_class] = np.arange(n) - starts[label[by_class]]
    # part of a sample: how many of its class's chunk boundaries lie at or below its rank
    part = (rank[:, None] >= np.cumsum(table, axis=1)[label, :-1]).sum(axis=1)
    return [order[part == p] for p in range(len(counts))]  # shuffled, or sorted when `order` is


def _split(
    fname: str,
    arrays: Sequence[object],
    sizes: dict[str, float | int],
    stratify: object | None,
    shuffle: bool,
    rng: np.random.Generator | None,
) -> tuple[np.ndarray, ...]:
    """Shared body of the public splitters: `sizes` names the held-out parts, train is the rest."""
    arrs, n = _as_arrays(arrays, fname)
    if n < len(sizes) + 1:
        raise ValueError(f"{fname} needs at least {len(sizes) + 1} samples, got {n}")
    counts = [_resolve_size(v, n, name) for name, v in sizes.items()]
    n_train = n - sum(counts)
    if n_train < 1:
        spelled = " + ".join(f"{name}={v!r} ({c} samples)" for (name, v), c in zip(sizes.items(), counts))
        raise ValueError(f"{spelled} leave no training samples out of {n}")
    strat = None
    if stratify is not None:
        strat = np.asarray(stratify)
        if strat.ndim != 1 or strat.shape[0] != n:
            raise ValueError(f"stratify must be a 1-D label array of length {n}, got shape {strat.shape}")
    parts = _split_indices(n, [n_train, *counts], strat, shuffle, rng)
    return tuple(a[idx] for a in arrs for idx in parts)


def train_dev_test_split(
    *arrays: np.ndarray,
    dev: float | int = 0.1,
    test: float | int = 0.1,
    stratify: np.ndarray | None = None,
    shuffle: bool = True,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, ...]:
    """Split arrays of equal length into train, dev and test parts along axis 0.

    Parameters
    ----------
    *arrays : array_like, each (N, ...)
        Arrays split with the same indices (inputs, labels, weights, ...).
    dev, test : float or int
        Size of the dev and test parts: a ratio in (0, 1) of N (rounded half up) or a count in
        [1, N - 1]. The training part gets the rest and must not be empty.
    stratify : (N,) array_like, optional
        Labels whose class proportions every part keeps: each class contributes the floor or the
        ceiling of its proportional share to each part. Every class needs at least 3 samples.
    shuffle : bool
        Shuffle before splitting. With ``shuffle=False`` the parts are consecutive: train is the
        first samples and test the last (per class, when stratified).
    rng : np.random.Generator, optional
        Source of the shuffle; the library default when None.

    Returns
    -------
    tuple of arrays
        ``(a_train, a_dev, a_test, b_train, b_dev, b_test, ...)``: three parts per input array, in
        the order the arrays were given.

    Raises
    ------
    ValueError
        If the arrays differ in length, a size is not a valid ratio or count, dev + test leave no
        training samples, or a stratification class has fewer than 3 samples.

    Examples
    --------
    >>> X_tr, X_dev, X_te, y_tr, y_dev, y_te = train_dev_test_split(
    ...     X, y, dev=0.1, test=0.1, stratify=y, rng=np.random.default_rng(0))
    """
    return _split("train_dev_test_split", arrays, {"dev": dev, "test": test}, stratify, shuffle, rng)


def train_test_split(
    *arrays: np.ndarray,
    test: float | int = 0.2,
    stratify: np.ndarray | None = None,
    shuffle: bool = True,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, ...]:
    """Split arrays of equal length into train and test parts along axis 0.

    The two-way case of :func:`train_dev_test_split`; the arguments mean the same.

    Returns
    -------
    tuple of arrays
        ``(a_train, a_test, b_train, b_test, ...)``: two parts per input array.
    """
    return _split("train_test_split", arrays, {"test": test}, stratify, shuffle, rng)


def kfold(
    n: int, k: int, shuffle: bool = True, rng: np.random.Generator | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Indices for k-fold cross-validation.

    The N indices (shuffled once, or in order) are cut into `k` folds whose sizes differ by at most
    one (the first ``n % k`` folds are one larger); each fold serves once as the validation set.

    Parameters
    ----------
    n : int
        Number of samples.
    k : int
        Number of folds, in [2, n].
    shuffle : bool
        Shuffle the indices before cutting the folds.
    rng : np.random.Generator, optional
        Source of the shuffle; the library default when None.

    Yields
    ------
    train_idx : (n - fold size,) int64, sorted
    val_idx : (fold size,) int64, sorted

    Examples
    --------
    >>> for train_idx, val_idx in kfold(len(X), 5, rng=np.random.default_rng(0)):
    ...     fit(X[train_idx], y[train_idx]); score(X[val_idx], y[val_idx])
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"{n=} must be an int of at least 2")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n:
        raise ValueError(f"{k=} must be an int in [2, n={n}]")
    # draw the permutation now, not at the first next(), so the rng is consumed when kfold is called
    order = resolve(rng).permutation(n) if shuffle else np.arange(n)
    return _kfold_iter(order, k)


def _kfold_iter(order: np.ndarray, k: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    n = order.size
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    start = 0
    for size in sizes:
        val = np.zeros(n, dtype=bool)
        val[order[start:start + size]] = True
        start += size
        yield np.flatnonzero(~val), np.flatnonzero(val)
