"""Tests for gradwise/data/preprocessing.py."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.data.preprocessing import Standardizer
from gradwise.data.preprocessing import one_hot


def _data(shape: tuple[int, ...], dtype=np.float64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (3.0 + 5.0 * rng.standard_normal(shape)).astype(dtype)


# -------------------------------------------------------------------------------------- Standardizer


def test_fit_uses_training_statistics_only() -> None:
    x_train = _data((200, 4))
    x_test = _data((50, 4), seed=1) + 100.0
    std = Standardizer().fit(x_train)
    np.testing.assert_allclose(std.mean, x_train.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(std.scale, x_train.std(axis=0), rtol=1e-12)
    z_test = std.transform(x_test)
    # test data is shifted by the *training* mean, so its mean stays far from zero
    np.testing.assert_allclose(z_test, (x_test - x_train.mean(0)) / x_train.std(0), rtol=1e-12)
    assert np.all(z_test.mean(axis=0) > 10.0)


def test_fit_transform_standardizes() -> None:
    z = Standardizer().fit_transform(_data((500, 3)))
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)


@pytest.mark.parametrize("shape", [(30,), (30, 5), (30, 2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_and_dtype(shape: tuple[int, ...], dtype) -> None:
    x = _data(shape, dtype)
    std = Standardizer().fit(x)
    z = std.transform(x)
    back = std.inverse_transform(z)
    assert z.dtype == dtype and back.dtype == dtype
    assert z.shape == shape and back.shape == shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(back, x, rtol=tol, atol=tol)


def test_transform_does_not_modify_input() -> None:
    x = _data((10, 2))
    x_copy = x.copy()
    std = Standardizer().fit(x)
    std.inverse_transform(std.transform(x))
    assert np.array_equal(x, x_copy)


def test_integer_input_becomes_float64() -> None:
    x = np.arange(12).reshape(6, 2)
    z = Standardizer().fit_transform(x)
    assert z.dtype == np.float64
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_feature_stays_finite(dtype) -> None:
    x = np.c_[np.full(7, 1000.1), np.arange(7.0)].astype(dtype)
    std = Standardizer()
    z = std.fit_transform(x)
    assert np.all(np.isfinite(z))
    assert std.scale[0] == 1.0
    np.testing.assert_allclose(z[:, 0], 0.0, atol=1e-10)
    np.testing.assert_allclose(std.inverse_transform(z), x, rtol=1e-6)


def test_transform_before_fit_raises() -> None:
    std = Standardizer()
    with pytest.raises(RuntimeError, match=r"Standardizer\.transform called before fit"):
        std.transform(np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match=r"Standardizer\.inverse_transform called before fit"):
        std.inverse_transform(np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match=r"state_dict called before fit"):
        std.state_dict()


@pytest.mark.parametrize(
    ("bad_value", "match"), [(np.nan, r"NaN or inf values in column\(s\) \[2\]"), (np.inf, r"column\(s\) \[2\]")]
)
def test_non_finite_input_names_the_column(bad_value: float, match: str) -> None:
    x = _data((5, 4))
    x[3, 2] = bad_value
    with pytest.raises(ValueError, match=match):
        Standardizer().fit(x)


def test_non_finite_input_names_several_columns() -> None:
    x = _data((5, 4))
    x[0, 0] = np.nan
    x[1, 3] = -np.inf
    with pytest.raises(ValueError, match=r"column\(s\) \[0, 3\]"):
        Standardizer().fit(x)


@pytest.mark.parametrize("x", [np.float64(1.0), np.zeros((0, 3))])
def test_fit_needs_samples(x) -> None:
    with pytest.raises(ValueError, match=r"shape \(N, \.\.\.\) with N >= 1"):
        Standardizer().fit(x)


def test_feature_shape_mismatch() -> None:
    std = Standardizer().fit(_data((10, 3)))
    with pytest.raises(ValueError, match=r"fit on features of shape \(3,\), got x of shape \(4, 5\)"):
        std.transform(np.zeros((4, 5)))


def test_bad_eps() -> None:
    with pytest.raises(ValueError, match="eps=0"):
        Standardizer(eps=0)


def test_state_dict_round_trip() -> None:
    x = _data((20, 3))
    a = Standardizer().fit(x)
    state = a.state_dict()
    assert set(state) == {"mean", "scale"}
    b = Standardizer()
    b.load_state_dict(state)
    assert np.array_equal(a.transform(x), b.transform(x))
    state["mean"][0] = 1e9  # state_dict hands out copies
    assert a.mean[0] != 1e9


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"mean": np.zeros(2)}, r"missing keys \['scale'\]"),
        ({"mean": np.zeros(2), "scale": np.ones(2), "std": np.ones(2)}, r"unexpected keys \['std'\]"),
        ({"mean": np.zeros(2), "scale": np.ones(3)}, "mean shape"),
        ({"mean": np.zeros(2), "scale": np.array([1.0, 0.0])}, "finite and positive"),
    ],
)
def test_load_state_dict_rejects_bad_state(state: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Standardizer().load_state_dict(state)


# ------------------------------------------------------------------------------------------- one_hot


def test_one_hot_values_and_dtype() -> None:
    out = one_hot(np.array([2, 0, 1, 2]), 3)
    assert out.dtype == np.float32
    assert np.array_equal(out, np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])


def test_one_hot_keeps_leading_shape() -> None:
    y = np.array([[0, 1], [3, 2]])
    out = one_hot(y, 4, dtype=np.float64)
    assert out.shape == (2, 2, 4) and out.dtype == np.float64
    assert np.array_equal(out.argmax(-1), y) and np.array_equal(out.sum(-1), np.ones((2, 2)))


@pytest.mark.parametrize(
    ("y", "num_classes", "match"),
    [
        (np.array([0, 3]), 3, r"labels must be in \[0, 3\), got range \[0, 3\]"),
        (np.array([-1, 0]), 3, r"labels must be in \[0, 3\)"),
        (np.array([0.0, 1.0]), 3, "integer labels"),
        (np.array([0, 1]), 0, "num_classes=0"),
    ],
)
def test_one_hot_rejects_bad_input(y: np.ndarray, num_classes: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        one_hot(y, num_classes)
