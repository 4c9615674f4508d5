"""Tests of gradwise/data/loader.py: multi-input datasets (a tuple x) and the `transform` hook."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradwise as gw
from gradwise.data import DataLoader, augment


def _tabular(n: int = 10) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    users = np.arange(n, dtype=np.int64)  # row i: user i, item 100 + i, dense (i, -i)
    items = 100 + np.arange(n, dtype=np.int32)
    dense = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float64)
    y = np.arange(n, dtype=np.float64) / 10
    return (users, items, dense), y


# -------------------------------------------------------------------------------------- multi-input


def test_tuple_x_yields_row_aligned_tuples_of_views() -> None:
    x, y = _tabular(10)
    loader = DataLoader(x, y, batch_size=4)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    for xb, yb in batches:
        assert isinstance(xb, tuple) and len(xb) == 3
        users, items, dense = xb
        np.testing.assert_array_equal(items, 100 + users)
        np.testing.assert_array_equal(dense[:, 0], users)
        np.testing.assert_allclose(yb, users / 10, rtol=1e-6)
    first = batches[0][0]
    assert all(np.shares_memory(b, a) for b, a in zip(first, loader.x))


def test_each_array_is_cast_on_its_own() -> None:
    x, y = _tabular(6)
    loader = DataLoader(x, y)
    assert isinstance(loader.x, tuple)
    assert [a.dtype for a in loader.x] == [np.int64, np.int32, np.float32]
    assert loader.num_samples == 6
    assert "inputs=3" in repr(loader)


def test_shuffled_tuples_stay_paired_and_reproducible() -> None:
    x, y = _tabular(23)
    a = DataLoader(x, y, batch_size=5, shuffle=True, rng=np.random.default_rng(4))
    b = DataLoader(x, y, batch_size=5, shuffle=True, rng=np.random.default_rng(4))
    for (xa, ya), (xb, yb) in zip(a, b):
        users, items, dense = xa
        np.testing.assert_array_equal(items, 100 + users)
        np.testing.assert_array_equal(dense[:, 1], -users)
        np.testing.assert_allclose(ya, users / 10, rtol=1e-6)
        for u, v in zip(xa, xb):
            np.testing.assert_array_equal(u, v)
    seen = np.concatenate([xb[0] for xb, _ in a])
    np.testing.assert_array_equal(np.sort(seen), np.arange(23))


def test_one_element_tuple_is_still_a_tuple() -> None:
    loader = DataLoader((np.arange(5.0)[:, None],), batch_size=2)
    xb, yb = next(iter(loader))
    assert isinstance(xb, tuple) and xb[0].shape == (2, 1) and yb is None


def test_a_list_is_one_array_as_before() -> None:
    loader = DataLoader([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], batch_size=2)
    assert isinstance(loader.x, np.ndarray) and loader.x.shape == (3, 2)


def test_length_mismatch_between_inputs_names_the_lengths() -> None:
    with pytest.raises(ValueError, match=r"arrays of x have different numbers of samples \(\[5, 4\]\)"):
        DataLoader((np.zeros(5), np.zeros(4)))


def test_length_mismatch_with_y() -> None:
    x, _ = _tabular(6)
    with pytest.raises(ValueError, match=r"x and y have different numbers of samples \(6 and 5\)"):
        DataLoader(x, np.zeros(5))


def test_validation_names_the_array_in_the_tuple() -> None:
    dense = np.zeros((6, 2))
    dense[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"x\[1\] contains non-finite values.*row 3"):
        DataLoader((np.arange(6), dense))
    with pytest.raises(ValueError, match=r"x\[0\] must have a sample dimension"):
        DataLoader((np.float64(1.0), dense))
    with pytest.raises(ValueError, match=r"x\[1\] has no samples"):
        DataLoader((np.zeros(3), np.zeros((0, 2))))
    with pytest.raises(ValueError, match="empty tuple"):
        DataLoader(())


@given(n=st.integers(1, 40), batch_size=st.integers(1, 50), shuffle=st.booleans(), k=st.integers(1, 4))
def test_every_sample_once_for_any_number_of_inputs(n: int, batch_size: int, shuffle: bool, k: int) -> None:
    x = tuple(np.arange(n) * (j + 1) for j in range(k))
    loader = DataLoader(x, batch_size=batch_size, shuffle=shuffle, rng=np.random.default_rng(0))
    batches = [xb for xb, _ in loader]
    assert len(batches) == len(loader)
    for xb in batches:
        assert len(xb) == k
        for j in range(k):
            np.testing.assert_array_equal(xb[j], xb[0] * (j + 1))
    np.testing.assert_array_equal(np.sort(np.concatenate([xb[0] for xb in batches])), np.arange(n))


# ---------------------------------------------------------------------------------------- transform


def test_transform_is_applied_to_every_batch_with_the_loaders_generator() -> None:
    calls = []

    def record(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        calls.append(rng)
        return xb + 1000

    x = np.arange(10, dtype=np.float32)[:, None]
    gen = np.random.default_rng(0)
    loader = DataLoader(x, np.arange(10), batch_size=3, transform=record, rng=gen)
    batches = list(loader)
    assert len(calls) == 4 and all(c is gen for c in calls)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb + 1000)
    np.testing.assert_array_equal(loader.x[:, 0], np.arange(10))  # the data itself is untouched


def test_transform_is_reproducible_and_fresh_each_epoch() -> None:
    x = np.zeros((12, 2, 8), dtype=np.float32)
    x[:, :, 0] = 1.0
    t = augment.random_shift_1d(3)

    def epoch(loader: DataLoader) -> np.ndarray:
        return np.concatenate([xb for xb, _ in loader])

    a = DataLoader(x, batch_size=5, shuffle=True, transform=t, rng=np.random.default_rng(9))
    b = DataLoader(x, batch_size=5, shuffle=True, transform=t, rng=np.random.default_rng(9))
    first = epoch(a)
    np.testing.assert_array_equal(first, epoch(b))
    assert not np.array_equal(first, epoch(a))
    assert first.shape == x.shape and first.dtype == np.float32


def test_transform_without_rng_uses_the_default_generator_at_iteration_time() -> None:
    x = np.zeros((6, 3), dtype=np.float32)
    loader = DataLoader(x, batch_size=6, transform=augment.gaussian_noise(1.0))
    gw.manual_seed(5)
    a = next(iter(loader))[0]
    gw.manual_seed(5)
    b = next(iter(loader))[0]
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0.1


def test_transform_receives_and_returns_the_tuple_of_a_multi_input_loader() -> None:
    x, y = _tabular(8)
    noise = augment.gaussian_noise(0.5)

    def noisy_dense(xb: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        users, items, dense = xb
        return users, items, noise(dense, rng)

    loader = DataLoader(x, y, batch_size=8, transform=noisy_dense, rng=np.random.default_rng(0))
    (users, _, dense), _ = next(iter(loader))
    np.testing.assert_array_equal(users, np.arange(8))
    assert not np.allclose(dense[:, 0], users)
    assert dense.dtype == np.float32


def test_transform_must_be_callable() -> None:
    with pytest.raises(TypeError, match="transform must be a callable"):
        DataLoader(np.zeros((3, 1)), transform=0.5)  # type: ignore[arg-type]


def test_no_transform_keeps_the_old_behaviour() -> None:
    x = np.arange(6, dtype=np.float32)[:, None]
    loader = DataLoader(x, batch_size=4)
    assert loader.transform is None
    assert "transform" not in repr(loader)
    xb, _ = next(iter(loader))
    assert np.shares_memory(xb, loader.x)
