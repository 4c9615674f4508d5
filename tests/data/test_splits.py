"""Tests for gradwise/data/splits.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from gradwise.data.splits import kfold
from gradwise.data.splits import train_dev_test_split
from gradwise.data.splits import train_test_split


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _assert_partition(parts: tuple[np.ndarray, ...], n: int) -> None:
    """The parts are disjoint and together hold every index exactly once."""
    joined = np.concatenate(parts)
    assert joined.size == n
    assert np.array_equal(np.sort(joined), np.arange(n))


# ---------------------------------------------------------------------------------- sizes, coverage


@pytest.mark.parametrize(
    ("n", "dev", "test", "expected"),
    [
        (1000, 0.1, 0.1, (800, 100, 100)),
        (1000, 0.15, 0.25, (600, 150, 250)),
        (10, 0.25, 0.25, (4, 3, 3)),  # ratios round half up
        (100, 7, 13, (80, 7, 13)),
        (100, 0.2, 30, (50, 20, 30)),  # a ratio and a count mixed
    ],
)
def test_three_way_sizes(n: int, dev, test, expected: tuple[int, int, int]) -> None:
    idx = np.arange(n)
    parts = train_dev_test_split(idx, dev=dev, test=test, rng=_rng())
    assert tuple(p.size for p in parts) == expected
    _assert_partition(parts, n)


def test_two_way_sizes_and_order_of_outputs() -> None:
    X = np.arange(200).reshape(100, 2)
    y = np.arange(100)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test=0.3, rng=_rng())
    assert X_tr.shape == (70, 2) and X_te.shape == (30, 2)
    # the same indices are used for every array
    assert np.array_equal(X_tr[:, 0] // 2, y_tr) and np.array_equal(X_te[:, 0] // 2, y_te)
    _assert_partition((y_tr, y_te), 100)


def test_three_way_outputs_are_grouped_per_array() -> None:
    a = np.arange(50)
    b = -np.arange(50)
    a_tr, a_dev, a_te, b_tr, b_dev, b_te = train_dev_test_split(a, b, dev=5, test=10, rng=_rng())
    assert np.array_equal(a_tr, -b_tr) and np.array_equal(a_dev, -b_dev) and np.array_equal(a_te, -b_te)
    assert (a_tr.size, a_dev.size, a_te.size) == (35, 5, 10)


def test_no_shuffle_gives_consecutive_parts() -> None:
    tr, dev, te = train_dev_test_split(np.arange(20), dev=4, test=6, shuffle=False)
    assert np.array_equal(tr, np.arange(10))
    assert np.array_equal(dev, np.arange(10, 14))
    assert np.array_equal(te, np.arange(14, 20))


def test_accepts_lists() -> None:
    tr, te = train_test_split(list(range(10)), test=2, rng=_rng())
    assert isinstance(tr, np.ndarray) and tr.size == 8 and te.size == 2


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(3, 500),
    dev=st.floats(0.01, 0.45),
    test=st.floats(0.01, 0.45),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_sizes_property(n: int, dev: float, test: float, seed: int) -> None:
    n_dev, n_test = int(np.floor(dev * n + 0.5)), int(np.floor(test * n + 0.5))
    if n_dev < 1 or n_test < 1 or n_dev + n_test >= n:
        with pytest.raises(ValueError):
            train_dev_test_split(np.arange(n), dev=dev, test=test, rng=_rng(seed))
        return
    parts = train_dev_test_split(np.arange(n), dev=dev, test=test, rng=_rng(seed))
    assert tuple(p.size for p in parts) == (n - n_dev - n_test, n_dev, n_test)
    _assert_partition(parts, n)


# ----------------------------------------------------------------------------------- stratification


def test_stratified_parts_keep_class_proportions() -> None:
    y = np.repeat([0, 1, 2], [600, 300, 100])
    tr, dev, te = train_dev_test_split(np.arange(1000), dev=0.1, test=0.2, stratify=y, rng=_rng())
    assert np.array_equal(np.bincount(y[tr]), [420, 210, 70])
    assert np.array_equal(np.bincount(y[dev]), [60, 30, 10])
    assert np.array_equal(np.bincount(y[te]), [120, 60, 20])
    _assert_partition((tr, dev, te), 1000)


@settings(max_examples=60, deadline=None)
@given(
    class_sizes=st.lists(st.integers(3, 80), min_size=1, max_size=12),
    dev=st.floats(0.02, 0.3),
    test=st.floats(0.02, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_counts_are_floor_or_ceiling_of_share(
    class_sizes: list[int], dev: float, test: float, seed: int
) -> None:
    y = _rng(seed).permutation(np.repeat(np.arange(len(class_sizes)), class_sizes))
    n = y.size
    try:
        parts = train_dev_test_split(np.arange(n), dev=dev, test=test, stratify=y, rng=_rng(seed))
    except ValueError:  # a ratio too small for n; covered by the size tests
        return
    _assert_partition(parts, n)
    for idx in parts:
        _assert_floor_or_ceiling(y, idx, n)


def _assert_floor_or_ceiling(y: np.ndarray, idx: np.ndarray, n: int) -> None:
    """Each class's count in the part is the floor or ceiling of its exact share (exact if whole)."""
    class_sizes = np.bincount(y)
    counts = np.bincount(y[idx], minlength=class_sizes.size)
    # compare in integers: count * n against class_size * part_size
    assert np.all(counts * n >= class_sizes * idx.size - (n - 1))
    assert np.all(counts * n <= class_sizes * idx.size + (n - 1))


def test_stratified_keeps_whole_shares_exact() -> None:
    # shares (train, dev, test) are (0.6, 0.9, 1.5) for classes 0 and 1 and (0.8, 1.2, 2.0) for
    # class 2: rounding greedily would give class 2 a third test sample, the exact answer is 2
    y = np.repeat([0, 1, 2], [3, 3, 4])
    parts = train_dev_test_split(np.arange(10), dev=3, test=5, stratify=y, rng=_rng())
    _assert_partition(parts, 10)
    assert np.bincount(y[parts[2]], minlength=3)[2] == 2
    for idx in parts:
        _assert_floor_or_ceiling(y, idx, 10)


def test_stratified_with_string_labels() -> None:
    y = np.array(["cat"] * 30 + ["dog"] * 70)
    y_tr, y_te = train_test_split(y, test=0.2, stratify=y, rng=_rng())
    assert (y_te == "cat").sum() == 6 and (y_te == "dog").sum() == 14
    assert y_tr.size == 80


def test_stratified_no_shuffle_takes_the_first_of_each_class_for_training() -> None:
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    tr, te = train_test_split(np.arange(10), test=4, stratify=y, shuffle=False)
    assert np.array_equal(tr, [0, 1, 2, 3, 4, 5])
    assert np.array_equal(te, [6, 7, 8, 9])


# -------------------------------------------------------------------------------------- determinism


def test_same_seeded_generator_gives_same_split() -> None:
    X = np.arange(300).reshape(100, 3)
    y = np.arange(100) % 4
    a = train_dev_test_split(X, y, stratify=y, rng=_rng(5))
    b = train_dev_test_split(X, y, stratify=y, rng=_rng(5))
    c = train_dev_test_split(X, y, stratify=y, rng=_rng(6))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dev": 0.0}, r"dev=0\.0 must be a ratio in \(0, 1\)"),
        ({"dev": 1.0}, r"dev=1\.0 must be a ratio"),
        ({"test": -0.1}, r"test=-0\.1 must be a ratio"),
        ({"test": 0}, r"test=0 must be a count in \[1, 99\]"),
        ({"test": 100}, r"test=100 must be a count"),
        ({"dev": True}, r"dev=True .* not a bool"),
        ({"test": "0.1"}, r"test='0\.1' must be a ratio"),
        ({"dev": 0.001}, r"dev=0\.001 of 100 samples gives an empty part"),
        ({"dev": 0.5, "test": 0.5}, r"dev=0\.5 \(50 samples\) \+ test=0\.5 \(50 samples\) leave no training"),
        ({"dev": 60, "test": 0.4}, r"leave no training samples out of 100"),
    ],
)
def test_bad_sizes_name_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        train_dev_test_split(np.arange(100), rng=_rng(), **kwargs)


def test_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match=r"same length along axis 0, got lengths \[10, 9\]"):
        train_test_split(np.arange(10), np.arange(9))


def test_no_arrays() -> None:
    with pytest.raises(ValueError, match="at least one array"):
        train_dev_test_split()


def test_scalar_array() -> None:
    with pytest.raises(ValueError, match=r"arrays\[1\] is a scalar"):
        train_test_split(np.arange(10), np.float64(3.0))


def test_too_few_samples() -> None:
    with pytest.raises(ValueError, match="needs at least 3 samples, got 2"):
        train_dev_test_split(np.arange(2))


def test_stratify_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"stratify must be a 1-D label array of length 10, got shape \(9,\)"):
        train_test_split(np.arange(10), stratify=np.zeros(9))


def test_stratify_class_too_small() -> None:
    y = np.array([0] * 20 + [1] * 2)
    with pytest.raises(ValueError, match=r"stratify: class 1 has 2 sample\(s\), fewer than the 3 parts"):
        train_dev_test_split(np.arange(22), stratify=y, dev=2, test=2)
    # two samples are enough for a two-way split
    tr, te = train_test_split(np.arange(22), stratify=y, test=4, rng=_rng())
    assert tr.size == 18 and te.size == 4


# -------------------------------------------------------------------------------------------- k-fold


@pytest.mark.parametrize(("n", "k"), [(10, 2), (11, 3), (7, 7), (100, 5)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_kfold_partitions_indices(n: int, k: int, shuffle: bool) -> None:
    folds = list(kfold(n, k, shuffle=shuffle, rng=_rng()))
    assert len(folds) == k
    vals = [val for _, val in folds]
    _assert_partition(tuple(vals), n)
    sizes = sorted(v.size for v in vals)
    assert sizes[-1] - sizes[0] <= 1
    for train, val in folds:
        assert np.intersect1d(train, val).size == 0
        assert train.size + val.size == n
        assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_kfold_without_shuffle_is_consecutive() -> None:
    folds = list(kfold(7, 3, shuffle=False))
    assert [v.tolist() for _, v in folds] == [[0, 1, 2], [3, 4], [5, 6]]
    assert folds[1][0].tolist() == [0, 1, 2, 5, 6]


def test_kfold_is_deterministic_given_a_seeded_generator() -> None:
    a = [v for _, v in kfold(50, 5, rng=_rng(1))]
    b = [v for _, v in kfold(50, 5, rng=_rng(1))]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize(
    ("n", "k", "match"),
    [(1, 2, r"n=1 must be an int of at least 2"), (10, 1, r"k=1 must be an int in \[2, n=10\]"),
     (10, 11, r"k=11"), (10, 2.0, r"k=2\.0"), (10.0, 2, r"n=10\.0")],
)
def test_kfold_rejects_bad_arguments(n, k, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        kfold(n, k)
