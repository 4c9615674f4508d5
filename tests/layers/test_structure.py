"""Tests of gradwise/layers/structure.py: Flatten."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import oracle_errors
from hypothesis import given
from hypothesis import strategies as st

from gradwise.diagnostics import check_layer
from gradwise.layers import Flatten

# (start_dim, input shape)
CASES = [
    (1, (4, 3)),
    (1, (2, 3, 4)),
    (1, (2, 3, 2, 2)),
    (2, (2, 3, 2, 2)),
    (0, (3, 4)),
    (0, (2, 3, 2)),
    (3, (2, 1, 3, 2)),
]
IDS = [f"start{s}-{shape}" for s, shape in CASES]
DTYPES = [np.float32, np.float64]


def flat_shape(start_dim: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[:start_dim], int(np.prod(shape[start_dim:])))


@pytest.mark.parametrize(("start_dim", "shape"), CASES, ids=IDS)
def test_gradient_check(rng, tol, start_dim, shape):
    report = check_layer(Flatten(start_dim), rng.standard_normal(shape), max_entries=None)
    assert [c.name for c in report.checks] == ["input"]
    assert report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.oracle
@pytest.mark.parametrize(("start_dim", "shape"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch_flatten(rng, tol, start_dim, shape, dtype):
    pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(dtype)
    upstream = rng.standard_normal(flat_shape(start_dim, shape)).astype(dtype)
    errors = oracle_errors(Flatten(start_dim), x, upstream)
    # Flatten only moves numbers: equal, not merely close.
    assert max(errors.values()) == 0.0, errors


@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=5).map(tuple),
    data=st.data(),
)
def test_round_trip_for_any_shape(shape, data):
    start_dim = data.draw(st.integers(0, len(shape) - 1))
    layer = Flatten(start_dim)
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    y = layer.forward(x)
    assert y.shape == flat_shape(start_dim, shape)
    np.testing.assert_array_equal(y.ravel(), x.ravel())
    g = layer.backward(y * 2)
    assert g.shape == shape
    np.testing.assert_array_equal(g, 2 * x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_dtype_is_preserved(dtype):
    layer = Flatten()
    y = layer.forward(np.ones((2, 3, 4), dtype=dtype))
    assert y.dtype == dtype
    assert layer.backward(y).dtype == dtype


def test_default_flattens_all_but_the_batch_axis():
    y = Flatten().forward(np.zeros((5, 3, 2, 7), dtype=np.float32))
    assert y.shape == (5, 42)


def test_negative_start_dim_is_a_value_error():
    with pytest.raises(ValueError, match="Flatten: start_dim=-1 must be >= 0"):
        Flatten(-1)


@pytest.mark.parametrize(("start_dim", "shape"), [(3, (2, 3)), (2, (2, 3)), (1, (4,))], ids=str)
def test_too_few_dimensions_is_a_value_error(start_dim, shape):
    # torch.nn.Flatten(start_dim) needs start_dim < x.ndim as well.
    pattern = re.escape(f"Flatten(start_dim={start_dim}): input of shape {shape} has too few dimensions")
    with pytest.raises(ValueError, match=pattern):
        Flatten(start_dim).forward(np.zeros(shape))


def test_repr():
    assert repr(Flatten(2)) == "Flatten(start_dim=2)"


def test_empty_batch():
    layer = Flatten()
    y = layer.forward(np.zeros((0, 3, 4), dtype=np.float32))
    assert y.shape == (0, 12)
    assert layer.backward(y).shape == (0, 3, 4)
