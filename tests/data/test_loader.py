"""Tests for gradwise/data/loader.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradwise as gw
from gradwise.data.loader import DataLoader


def _data(n: int = 10, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n * d, dtype=np.float64).reshape(n, d)
    y = np.arange(n, dtype=np.int64)
    return x, y


def test_batches_in_order_without_shuffle() -> None:
    x, y = _data(10)
    loader = DataLoader(x, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in batches]), x.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), y)


def test_unshuffled_batches_are_views() -> None:
    x, y = _data(10)
    loader = DataLoader(x.astype(np.float32), y, batch_size=4)
    xb, yb = next(iter(loader))
    assert np.shares_memory(xb, loader.x)
    assert np.shares_memory(yb, loader.y)


def test_attributes() -> None:
    x, y = _data(7)
    loader = DataLoader(x, y, batch_size=3)
    assert loader.batch_size == 3
    assert loader.num_samples == 7
    assert loader.x.shape == (7, 3)
    assert loader.y is not None and loader.y.shape == (7,)
    assert "batches=3" in repr(loader)


def test_drop_last() -> None:
    x, y = _data(10)
    loader = DataLoader(x, y, batch_size=4, drop_last=True)
    sizes = [len(yb) for _, yb in loader]
    assert len(loader) == 2
    assert sizes == [4, 4]


def test_drop_last_with_too_few_samples_is_an_error() -> None:
    x, y = _data(3)
    with pytest.raises(ValueError, match="no batch"):
        DataLoader(x, y, batch_size=4, drop_last=True)


def test_y_none_yields_none() -> None:
    x, _ = _data(5)
    loader = DataLoader(x, batch_size=2)
    assert all(yb is None for _, yb in loader)
    assert loader.y is None


def test_floating_x_is_cast_once_and_integers_are_kept() -> None:
    x, y = _data(6)
    loader = DataLoader(x, y, batch_size=4)
    assert loader.x.dtype == np.float32
    assert loader.y is not None and loader.y.dtype == np.int64
    assert all(xb.dtype == np.float32 for xb, _ in loader)

    kept = DataLoader(x, y, batch_size=4, dtype=None)
    assert kept.x.dtype == np.float64
    as64 = DataLoader(x.astype(np.float32), y, dtype=np.float64)
    assert as64.x.dtype == np.float64

    idx = DataLoader(np.arange(6)[:, None], y)
    assert idx.x.dtype == np.arange(6).dtype


def test_floating_targets_are_cast_like_x() -> None:
    x, _ = _data(6)
    targets = np.linspace(0, 1, 6)
    loader = DataLoader(x, targets, batch_size=4)
    assert loader.y is not None and loader.y.dtype == np.float32


def test_shuffle_is_a_permutation_each_epoch_and_reproducible() -> None:
    x, y = _data(20)
    a = DataLoader(x, y, batch_size=6, shuffle=True, rng=np.random.default_rng(7))
    b = DataLoader(x, y, batch_size=6, shuffle=True, rng=np.random.default_rng(7))
    epoch_a1 = np.concatenate([yb for _, yb in a])
    epoch_a2 = np.concatenate([yb for _, yb in a])
    epoch_b1 = np.concatenate([yb for _, yb in b])
    np.testing.assert_array_equal(np.sort(epoch_a1), y)
    np.testing.assert_array_equal(epoch_a1, epoch_b1)
    assert not np.array_equal(epoch_a1, epoch_a2)  # a fresh permutation per epoch
    # x and y stay paired: row i of x is (3i, 3i+1, 3i+2).
    for xb, yb in a:
        np.testing.assert_array_equal(xb[:, 0], 3 * yb)


def test_shuffle_without_rng_uses_the_default_generator_at_iteration_time() -> None:
    x, y = _data(20)
    loader = DataLoader(x, y, batch_size=5, shuffle=True)
    gw.manual_seed(123)
    first = np.concatenate([yb for _, yb in loader])
    gw.manual_seed(123)
    again = np.concatenate([yb for _, yb in loader])
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x_names_array_and_row(bad: float) -> None:
    x, y = _data(10)
    x[7, 1] = bad
    x[9, 0] = bad
    with pytest.raises(ValueError, match=r"x contains non-finite.*row 7"):
        DataLoader(x, y)


def test_non_finite_y_names_y() -> None:
    x, _ = _data(5)
    targets = np.zeros(5)
    targets[2] = np.nan
    with pytest.raises(ValueError, match=r"\by contains non-finite.*row 2"):
        DataLoader(x, targets)


def test_overflow_when_casting_is_reported() -> None:
    x, y = _data(4)
    x[1, 0] = 1e300  # finite in float64, inf in float32
    with pytest.raises(ValueError, match="after casting from float64 to float32.*row 1"):
        DataLoader(x, y)


def test_huge_finite_values_are_accepted() -> None:
    # Their float64 sum overflows; the exact scan must clear them.
    x = np.full((4, 2), 1e308)
    loader = DataLoader(x, dtype=None)
    assert loader.num_samples == 4


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(batch_size: object) -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=batch_size)  # type: ignore[arg-type]


def test_length_mismatch() -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match=r"\(4 and 3\)"):
        DataLoader(x, y[:3])


def test_empty_and_scalar_inputs() -> None:
    with pytest.raises(ValueError, match="no samples"):
        DataLoader(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="scalar"):
        DataLoader(np.float64(1.0))


def test_rng_must_be_a_generator() -> None:
    x, y = _data(4)
    with pytest.raises(TypeError, match="Generator"):
        DataLoader(x, y, shuffle=True, rng=np.random.RandomState(0))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 50),
    batch_size=st.integers(1, 60),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_batches_match_len_and_cover_the_data(
    n: int, batch_size: int, shuffle: bool, drop_last: bool
) -> None:
    x, y = _data(n, 2)
    if drop_last and n < batch_size:
        return  # refused at construction, tested above
    loader = DataLoader(
        x, y, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, rng=np.random.default_rng(0)
    )
    batches = list(loader)
    assert len(batches) == len(loader)
    assert all(len(yb) == batch_size for _, yb in batches[:-1])
    seen = np.concatenate([yb for _, yb in batches])
    assert len(seen) == (n // batch_size * batch_size if drop_last else n)
    assert len(np.unique(seen)) == len(seen)
