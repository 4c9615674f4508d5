"""Tests of gradwise/layers/activations.py: the element-wise activations and Maxout."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import distinct_values, layer_input, oracle_errors, rel_err, run_gradwise, run_torch, torch_twin
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradwise.diagnostics import check_layer
from gradwise.layers import ELU, GELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softplus, Tanh

ELEMENTWISE = {
    "ReLU": ReLU,
    "LeakyReLU-0.01": lambda: LeakyReLU(0.01),
    "LeakyReLU-0.2": lambda: LeakyReLU(0.2),
    "LeakyReLU-0": lambda: LeakyReLU(0.0),
    "LeakyReLU-1.5": lambda: LeakyReLU(1.5),
    "ELU-1": ELU,
    "ELU-0.5": lambda: ELU(0.5),
    "ELU-2": lambda: ELU(2.0),
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "Softplus-1-20": Softplus,
    "Softplus-2-20": lambda: Softplus(beta=2.0),
    "Softplus-0.5-1": lambda: Softplus(beta=0.5, threshold=1.0),
    "Softplus-3-5": lambda: Softplus(beta=3.0, threshold=5.0),
    "GELU-none": GELU,
    "GELU-tanh": lambda: GELU("tanh"),
}
SHAPES = [(5,), (4, 6), (2, 3, 4), (2, 1, 3, 2)]
# (pieces, input shape): channels on axis 1, trailing axes carried along.
MAXOUT = [(1, (3, 4)), (2, (4, 6)), (3, (4, 6)), (2, (3, 4, 5)), (3, (2, 6, 2, 3)), (6, (2, 6))]
MAXOUT_IDS = [f"k{k}-{s}" for k, s in MAXOUT]
DTYPES = [np.float32, np.float64]
LARGE = [-1e4, -1e3, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4]


# ----------------------------------------------------------------------------------- gradient check


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_elementwise_gradient_check(rng, tol, name, shape):
    layer = ELEMENTWISE[name]()
    report = check_layer(layer, layer_input(layer, rng, shape), max_entries=None)
    assert [c.name for c in report.checks] == ["input"]
    assert report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.parametrize(("pieces", "shape"), MAXOUT, ids=MAXOUT_IDS)
def test_maxout_gradient_check(rng, tol, pieces, shape):
    layer = Maxout(pieces)
    report = check_layer(layer, layer_input(layer, rng, shape), max_entries=None)
    assert report.max_rel_error < tol.gradcheck, str(report)


# ------------------------------------------------------------------------------------------ oracle


@pytest.mark.oracle
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_matches_torch(rng, tol, name, shape, dtype):
    pytest.importorskip("torch")
    layer = ELEMENTWISE[name]()
    x = layer_input(layer, rng, shape).astype(dtype)
    errors = oracle_errors(layer, x, rng.standard_normal(shape).astype(dtype))
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@pytest.mark.parametrize(("pieces", "shape"), MAXOUT, ids=MAXOUT_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxout_matches_torch_view_max(rng, tol, pieces, shape, dtype):
    pytest.importorskip("torch")
    layer = Maxout(pieces)
    x = distinct_values(rng, shape).astype(dtype)
    out_shape = (shape[0], shape[1] // pieces, *shape[2:])
    errors = oracle_errors(layer, x, rng.standard_normal(out_shape).astype(dtype))
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@pytest.mark.parametrize("name", ELEMENTWISE)
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
        elements=st.floats(-40, 40, allow_nan=False, allow_subnormal=False),
    ),
    seed=st.integers(0, 2**16),
)
def test_elementwise_matches_torch_on_any_input(tol, name, x, seed):
    pytest.importorskip("torch")
    layer = ELEMENTWISE[name]()
    upstream = np.random.default_rng(seed).standard_normal(x.shape)
    y, gx, _ = run_gradwise(layer, x, upstream)
    ty, tgx, _ = run_torch(torch_twin(layer, np.float64), x, upstream)
    assert rel_err(y, ty) < tol.oracle64
    # Where a derivative is tiny it is computed as a difference of O(1) numbers (1 - y^2 for tanh,
    # y + alpha for ELU) and keeps only absolute accuracy, so the input gradient is measured against
    # the scale of the upstream gradient (every derivative here is O(1)).
    assert np.linalg.norm(gx - tgx) <= tol.oracle64 * np.linalg.norm(upstream)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_inputs_stay_finite_without_warnings(name, dtype):
    layer = ELEMENTWISE[name]()
    x = np.array(LARGE, dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y = layer.forward(x)
        g = layer.backward(np.ones_like(y))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    assert y.dtype == dtype and g.dtype == dtype


@pytest.mark.oracle
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_inputs_match_torch(rng, tol, name, dtype):
    pytest.importorskip("torch")
    x = np.array(LARGE, dtype=dtype)
    errors = oracle_errors(ELEMENTWISE[name](), x, rng.standard_normal(x.shape).astype(dtype))
    assert max(errors.values()) < tol.oracle_for(dtype), errors


# ------------------------------------------------------------------------------------ known values


def test_sigmoid_saturates_exactly_and_keeps_tiny_values():
    y = Sigmoid().forward(np.array([-1e4, -100.0, 0.0, 100.0, 1e4]))
    assert y[0] == 0.0 and y[2] == 0.5 and y[3] == 1.0 and y[4] == 1.0
    assert y[1] == pytest.approx(math.exp(-100), rel=1e-14)  # not 0: the stable form keeps it


def test_relu_family_derivative_is_zero_or_slope_at_the_kink():
    x = np.array([-1.0, 0.0, 1.0])
    relu = ReLU()
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward(np.ones(3)), [0.0, 0.0, 1.0])
    leaky = LeakyReLU(0.25)
    np.testing.assert_array_equal(leaky.forward(x), [-0.25, 0.0, 1.0])
    np.testing.assert_array_equal(leaky.backward(np.ones(3)), [0.25, 0.25, 1.0])


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_elu_derivative_is_alpha_exp_x_on_the_negative_side(alpha):
    x = np.linspace(-5, -0.01, 50)
    layer = ELU(alpha)
    np.testing.assert_allclose(layer.forward(x), alpha * np.expm1(x), rtol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), alpha * np.exp(x), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_derivative_keeps_relative_precision_for_very_negative_inputs(dtype):
    x = np.linspace(-14, -8, 7).astype(dtype) if dtype == np.float32 else np.linspace(-36, -16, 6)
    layer = ELU(1.0)
    layer.forward(x)
    expected = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), expected, rtol=1e-4)


@pytest.mark.parametrize(("beta", "threshold"), [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0)])
def test_softplus_is_the_identity_in_its_linear_region(beta, threshold):
    x = np.array([1.01, 2.0, 10.0, 1e3]) * threshold / beta
    layer = Softplus(beta, threshold)
    np.testing.assert_array_equal(layer.forward(x), x)
    g = np.array([0.5, -1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer.backward(g), g)


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_softplus_value_below_the_threshold(beta):
    x = np.linspace(-30, 6, 37) / beta
    layer = Softplus(beta)
    np.testing.assert_allclose(layer.forward(x), np.log1p(np.exp(beta * x)) / beta, rtol=1e-14)


def test_gelu_known_values():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(GELU().forward(x), x * cdf, rtol=1e-15)
    approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(GELU("tanh").forward(x), approx, rtol=1e-15)


def test_maxout_routes_the_gradient_to_the_winner_only():
    layer = Maxout(2)
    x = np.array([[1.0, 3.0, -2.0, -5.0, 0.5, 0.25]])
    np.testing.assert_array_equal(layer.forward(x), [[3.0, -2.0, 0.5]])
    np.testing.assert_array_equal(layer.backward(np.array([[10.0, 20.0, 30.0]])), [[0.0, 10.0, 20.0, 0.0, 30.0, 0.0]])


def test_maxout_tie_goes_to_the_first_piece():
    layer = Maxout(3)
    layer.forward(np.array([[2.0, 2.0, 2.0]]))
    np.testing.assert_array_equal(layer.backward(np.array([[1.0]])), [[1.0, 0.0, 0.0]])


# ------------------------------------------------------------------------------------------- dtype


ALL = {**ELEMENTWISE, "Maxout-2": lambda: Maxout(2)}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_preserved(rng, name, dtype):
    layer = ALL[name]()
    x = layer_input(layer, rng, (3, 4, 2)).astype(dtype)
    y = layer.forward(x)
    g = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and g.dtype == dtype
    assert g.shape == x.shape


@pytest.mark.parametrize("name", ALL)
def test_integer_input_becomes_float32(name):
    layer = ALL[name]()
    y = layer.forward(np.arange(-4, 4).reshape(2, 4))
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.parametrize("name", ALL)
def test_forward_does_not_modify_the_input(rng, name):
    layer = ALL[name]()
    x = layer_input(layer, rng, (4, 6))
    before = x.copy()
    layer.backward(np.ones_like(layer.forward(x)))
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("pieces", "shape"), [(2, (4, 5)), (3, (2, 4, 3)), (4, (1, 6))], ids=str)
def test_maxout_channels_must_be_divisible(pieces, shape):
    with pytest.raises(ValueError) as info:
        Maxout(pieces).forward(np.zeros(shape))
    msg = str(info.value)
    assert f"Maxout(pieces={pieces})" in msg and str(shape) in msg and f"divisible by {pieces}" in msg


def test_maxout_needs_a_channel_axis():
    with pytest.raises(ValueError, match=r"Maxout\(pieces=2\): input of shape \(4,\)"):
        Maxout(2).forward(np.zeros(4))


def test_maxout_output_shape(rng):
    y = Maxout(3).forward(distinct_values(rng, (2, 9, 4, 5)))
    assert y.shape == (2, 3, 4, 5)


@pytest.mark.parametrize(
    ("factory", "pattern"),
    [
        (lambda: Maxout(0), "pieces=0 must be >= 1"),
        (lambda: Softplus(beta=0.0), "beta=0.0 must be > 0"),
        (lambda: Softplus(beta=-1.0), "beta=-1.0 must be > 0"),
        (lambda: GELU("fast"), "approximate='fast' must be 'none' or 'tanh'"),
    ],
    ids=["maxout-0", "softplus-0", "softplus-neg", "gelu-fast"],
)
def test_invalid_arguments_are_named(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


def test_repr_shows_hyperparameters():
    assert repr(LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(Softplus(2.0, 10.0)) == "Softplus(beta=2.0, threshold=10.0)"
    assert repr(Maxout(3)) == "Maxout(pieces=3)"
    assert rel_err(np.ones(2), np.ones(2)) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "batch-innermost", "strided"])
def test_relu_against_cached_zeros_is_bitwise_the_scalar_maximum(rng, dtype, layout):
    # ReLU takes its maximum against a cached zero array of the input's layout (faster than
    # against the scalar 0 in NumPy 2.4); it must give the scalar form's bits in every layout,
    # with NaN kept, -inf and -0.0 sent to +0, and leave the cached zeros untouched.
    from gradwise.layers import activations

    base = rng.standard_normal((16, 8, 8, 8)).astype(dtype)  # above _ZEROS_MIN_SIZE (4,096)
    base.flat[:4] = [np.nan, -np.inf, -0.0, np.inf]
    x = {"C": base, "F": np.asfortranarray(base),
         "batch-innermost": np.ascontiguousarray(base.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2),
         "strided": base[:, ::2]}[layout]
    for _ in range(2):  # the second call meets the cached zeros
        y = ReLU().forward(x)
        want = np.maximum(x, dtype(0))
        assert y.dtype == dtype and y.shape == x.shape
        bits = np.int32 if dtype == np.float32 else np.int64  # same-size views: any layout
        np.testing.assert_array_equal(y.view(bits), want.view(bits))
        assert not np.signbit(y[x == 0]).any()
    for zeros in activations._ZEROS.values():  # arrays, or the scalar 0 for strided layouts
        assert not np.asarray(zeros).any() and (np.ndim(zeros) == 0 or not zeros.flags.writeable)
    if layout != "strided":
        assert isinstance(activations._zeros_like(x), np.ndarray)
    assert len(activations._ZEROS) <= activations._ZEROS_ENTRIES
