"""Tests of gradwise/layers/linear.py: Linear."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import oracle_errors
from hypothesis import given
from hypothesis import strategies as st

from gradwise.diagnostics import check_layer
from gradwise.layers import Linear

FEATURES = [(1, 1), (3, 5), (16, 4), (7, 1)]
LEADING = [(6,), (2, 3), (1,), ()]  # (N,), (N, T) or nothing in front of the feature axis
DTYPES = [np.float32, np.float64]


def make(in_f: int, out_f: int, bias: bool, rng: np.random.Generator, dtype: type = np.float32) -> Linear:
    return Linear(in_f, out_f, bias=bias, rng=rng, dtype=dtype)


@pytest.mark.parametrize(("in_f", "out_f"), FEATURES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", LEADING, ids=str)
def test_gradient_check(rng, tol, in_f, out_f, bias, lead):
    layer = make(in_f, out_f, bias, rng)
    report = check_layer(layer, rng.standard_normal((*lead, in_f)), max_entries=None)
    assert [c.name for c in report.checks] == ["input", "weight"] + (["bias"] if bias else [])
    assert all(c.checked == c.total for c in report.checks)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.oracle
@pytest.mark.parametrize(("in_f", "out_f"), FEATURES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", LEADING, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(rng, tol, in_f, out_f, bias, lead, dtype):
    pytest.importorskip("torch")
    layer = make(in_f, out_f, bias, rng, dtype)
    x = rng.standard_normal((*lead, in_f)).astype(dtype)
    upstream = rng.standard_normal((*lead, out_f)).astype(dtype)
    errors = oracle_errors(layer, x, upstream)
    assert set(errors) == {"output", "input", "weight"} | ({"bias"} if bias else set())
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
def test_3d_input_matches_torch(rng, tol, dtype):
    pytest.importorskip("torch")
    layer = make(12, 9, True, rng, dtype)
    x = rng.standard_normal((4, 10, 12)).astype(dtype)
    upstream = rng.standard_normal((4, 10, 9)).astype(dtype)
    errors = oracle_errors(layer, x, upstream)
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@given(
    in_f=st.integers(1, 40),
    out_f=st.integers(1, 40),
    lead=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_torch_for_any_shape(tol, in_f, out_f, lead, bias, seed):
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    layer = make(in_f, out_f, bias, rng, np.float64)
    x = rng.standard_normal((*lead, in_f))
    errors = oracle_errors(layer, x, rng.standard_normal((*lead, out_f)))
    assert max(errors.values()) < tol.oracle64, errors


# ------------------------------------------------------------------------------------------- dtype


@pytest.mark.parametrize("lead", LEADING, ids=str)
def test_float32_in_float32_out_and_float32_grads(rng, lead):
    layer = make(5, 3, True, rng)
    y = layer.forward(rng.standard_normal((*lead, 5)).astype(np.float32))
    assert y.dtype == np.float32 and y.shape == (*lead, 3)
    gx = layer.backward(np.ones_like(y))
    assert gx.dtype == np.float32 and gx.shape == (*lead, 5)
    assert layer.weight.grad.dtype == np.float32 and layer.bias.grad.dtype == np.float32


def test_float32_layer_casts_float64_and_integer_inputs(rng):
    layer = make(3, 2, True, rng)
    assert layer.forward(rng.standard_normal((4, 3))).dtype == np.float32
    layer.backward(np.ones((4, 2), dtype=np.float32))
    assert layer.forward(np.arange(6).reshape(2, 3)).dtype == np.float32


@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
def test_float64_layer_stays_float64(rng, input_dtype):
    layer = make(5, 3, True, rng, np.float64)
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64
    y = layer.forward(rng.standard_normal((4, 5)).astype(input_dtype))
    assert y.dtype == np.float64
    gx = layer.backward(np.ones_like(y))
    assert gx.dtype == np.float64
    assert layer.weight.grad.dtype == np.float64 and layer.bias.grad.dtype == np.float64


def test_astype_float64_then_forward_is_float64(rng):
    layer = make(5, 3, True, rng).astype(np.float64)
    y = layer.forward(rng.standard_normal((2, 5)).astype(np.float32))
    assert y.dtype == np.float64


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("shape", [(4, 2), (4, 5, 2), (2,)], ids=str)
def test_wrong_feature_count_names_layer_and_both_shapes(rng, shape):
    layer = make(3, 7, True, rng)
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape, dtype=np.float32))
    msg = str(info.value)
    assert "Linear" in msg and str(shape) in msg and "(N, 3)" in msg


def test_scalar_input_is_a_value_error(rng):
    with pytest.raises(ValueError, match="Linear"):
        make(1, 1, True, rng).forward(np.float32(1.0))


@pytest.mark.parametrize(("in_f", "out_f"), [(0, 3), (3, 0), (-1, 2)])
def test_non_positive_sizes_are_value_errors(in_f, out_f):
    with pytest.raises(ValueError, match="Linear: in_features=.* must be positive"):
        Linear(in_f, out_f)


# --------------------------------------------------------------------------------------- semantics


def test_forward_is_x_wt_plus_b(rng):
    layer = make(4, 3, True, rng, np.float64)
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(layer.forward(x), x @ layer.weight.data.T + layer.bias.data, rtol=1e-14)


def test_without_bias_has_only_a_weight(rng):
    layer = make(4, 3, False, rng)
    assert layer.bias is None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert "bias=False" in repr(layer)


def test_forward_does_not_modify_the_input(rng):
    layer = make(4, 4, True, rng, np.float64)
    x = rng.standard_normal((3, 4))
    before = x.copy()
    y = layer.forward(x)
    layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(x, before)


def test_empty_batch(rng):
    layer = make(4, 3, True, rng)
    y = layer.forward(np.zeros((0, 4), dtype=np.float32))
    assert y.shape == (0, 3)
    assert layer.backward(y).shape == (0, 4)
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_frozen_linear_does_no_gradient_work_but_passes_the_input_gradient():
    from gradwise.layers import Linear

    layer = Linear(4, 3, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    g = np.ones((5, 3), dtype=np.float32)
    layer.forward(x)
    expected = layer.backward(g)
    layer.zero_grad()
    layer.freeze()
    layer.forward(x)
    assert np.array_equal(layer.backward(g), expected)
    assert not layer.weight.grad.any() and not layer.bias.grad.any()
