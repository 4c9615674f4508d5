"""Tests of gradwise/init.py: shapes, moments, orthogonality, gains, `init=` resolution, determinism."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import gradwise as gw
from gradwise import init
from gradwise.layers import Linear

# A non-square weight so that fan_in (1024) and fan_out (256) give different variances.
BIG = (256, 1024)
FAN_IN, FAN_OUT = 1024, 256

UNIFORM_KURTOSIS = 1.8  # E[(x - m)^4] / var^2 of a uniform distribution
NORMAL_KURTOSIS = 3.0

# (id, initializer, expected mean, expected variance, family)
MOMENT_CASES = [
    ("xavier_uniform", init.xavier_uniform, 0.0, 2 / (FAN_IN + FAN_OUT), "uniform"),
    (
        "xavier_uniform-gain",
        functools.partial(init.xavier_uniform, gain=5 / 3),
        0.0,
        25 / 9 * 2 / (FAN_IN + FAN_OUT),
        "uniform",
    ),
    ("xavier_normal", init.xavier_normal, 0.0, 2 / (FAN_IN + FAN_OUT), "normal"),
    (
        "xavier_normal-gain",
        functools.partial(init.xavier_normal, gain=math.sqrt(2)),
        0.0,
        4 / (FAN_IN + FAN_OUT),
        "normal",
    ),
    ("kaiming_uniform", init.kaiming_uniform, 0.0, 2 / FAN_IN, "uniform"),
    ("kaiming_uniform-fan_out", functools.partial(init.kaiming_uniform, mode="fan_out"), 0.0, 2 / FAN_OUT, "uniform"),
    (
        "kaiming_uniform-leaky",
        functools.partial(init.kaiming_uniform, a=0.2, nonlinearity="leaky_relu"),
        0.0,
        2 / (1 + 0.2**2) / FAN_IN,
        "uniform",
    ),
    (
        "kaiming_uniform-tanh-fan_out",
        functools.partial(init.kaiming_uniform, mode="fan_out", nonlinearity="tanh"),
        0.0,
        (5 / 3) ** 2 / FAN_OUT,
        "uniform",
    ),
    ("kaiming_normal", init.kaiming_normal, 0.0, 2 / FAN_IN, "normal"),
    ("kaiming_normal-fan_out", functools.partial(init.kaiming_normal, mode="fan_out"), 0.0, 2 / FAN_OUT, "normal"),
    (
        "kaiming_normal-leaky",
        functools.partial(init.kaiming_normal, a=0.3, nonlinearity="leaky_relu"),
        0.0,
        2 / (1 + 0.3**2) / FAN_IN,
        "normal",
    ),
    (
        "kaiming_normal-linear",
        functools.partial(init.kaiming_normal, nonlinearity="linear"),
        0.0,
        1 / FAN_IN,
        "normal",
    ),
    ("lecun_uniform", init.lecun_uniform, 0.0, 1 / FAN_IN, "uniform"),
    ("lecun_normal", init.lecun_normal, 0.0, 1 / FAN_IN, "normal"),
    ("torch_default", init.torch_default, 0.0, 1 / (3 * FAN_IN), "uniform"),
    ("normal", init.normal, 0.0, 1e-4, "normal"),
    ("normal-shifted", functools.partial(init.normal, mean=0.5, std=0.2), 0.5, 0.04, "normal"),
    ("uniform", functools.partial(init.uniform, a=-2.0, b=3.0), 0.5, 25 / 12, "uniform"),
]


@pytest.mark.parametrize(
    ("fn", "mean", "var", "family"), [c[1:] for c in MOMENT_CASES], ids=[c[0] for c in MOMENT_CASES]
)
def test_empirical_moments_match_the_formula(rng, tol, fn, mean, var, family):
    w = fn(BIG, rng)
    assert w.shape == BIG and w.dtype == np.float64
    std = math.sqrt(var)
    # The sample mean has standard error std / sqrt(n); 5 standard errors never trips with a fixed seed.
    assert abs(w.mean() - mean) < 5 * std / math.sqrt(w.size)
    assert w.var() == pytest.approx(var, rel=tol.init_var)
    kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2
    assert kurtosis == pytest.approx(UNIFORM_KURTOSIS if family == "uniform" else NORMAL_KURTOSIS, abs=0.05)
    if family == "uniform":
        # U(m - b, m + b) has variance b^2 / 3: every draw within b, the extremes close to it.
        bound = math.sqrt(3 * var)
        assert np.abs(w - mean).max() <= bound
        assert np.abs(w - mean).max() > 0.999 * bound


NAMED_SHAPES = [(7, 5), (1, 1), (8, 4, 3, 3), (6, 2, 5)]


@pytest.mark.parametrize("name", sorted(init.NAMED))
@pytest.mark.parametrize("shape", NAMED_SHAPES, ids=str)
def test_every_named_initializer_returns_the_requested_shape(rng, name, shape):
    w = init.resolve(name)(shape, rng)
    assert w.shape == shape
    assert np.all(np.isfinite(w))


def test_zeros_and_ones():
    np.testing.assert_array_equal(init.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(init.ones((4,)), np.ones(4))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((5, 3), (3, 5)), ((1, 9), (9, 1)), ((8, 4, 3, 3), (36, 72)), ((6, 2, 5), (10, 30))],
    ids=str,
)
def test_fans_follow_the_out_in_kernel_convention(shape, expected):
    assert init.fans(shape) == expected


def test_fans_and_orthogonal_need_two_dimensions(rng):
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        init.fans((5,))
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        init.orthogonal((5,), rng)


def test_unknown_fan_mode_is_a_value_error(rng):
    with pytest.raises(ValueError, match="mode='fan_avg' must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal((3, 3), rng, mode="fan_avg")


# ------------------------------------------------------------------------------------- orthogonal


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (50, 50), (16, 4, 3, 3), (3, 40, 2)], ids=str)
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_has_orthonormal_rows_or_columns(rng, tol, shape, gain):
    w = init.orthogonal(shape, rng, gain=gain)
    assert w.shape == shape
    flat = w.reshape(shape[0], -1)
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), rtol=0, atol=tol.ortho * gain**2)


def test_orthogonal_is_not_always_the_same_matrix(rng):
    a, b = init.orthogonal((8, 8), rng), init.orthogonal((8, 8), rng)
    assert not np.allclose(a, b)


# ------------------------------------------------------------------------------------------ gains


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert init.calculate_gain("leaky_relu", 0.5) == math.sqrt(2 / 1.25)
    assert init.calculate_gain("selu") == 0.75


def test_calculate_gain_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="nonlinearity='swish' is not one of .*leaky_relu"):
        init.calculate_gain("swish")


GAIN_CASES = [
    ("linear", None),
    ("conv1d", None),
    ("conv2d", None),
    ("sigmoid", None),
    ("tanh", None),
    ("relu", None),
    ("leaky_relu", None),
    ("leaky_relu", 0),
    ("leaky_relu", 0.2),
    ("leaky_relu", 3.0),
    ("selu", None),
]


@pytest.mark.oracle
@pytest.mark.parametrize(("nonlinearity", "param"), GAIN_CASES, ids=[f"{n}-{p}" for n, p in GAIN_CASES])
def test_calculate_gain_equals_torch(nonlinearity, param):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)


@pytest.mark.oracle
@pytest.mark.parametrize("nonlinearity", ["conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"])
def test_calculate_gain_knows_every_torch_linear_name(nonlinearity):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(nonlinearity) == torch.nn.init.calculate_gain(nonlinearity)


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3, 3), (6, 2, 5), (2, 3, 4, 5, 6)], ids=str)
def test_fans_equal_torch(shape):
    torch = pytest.importorskip("torch")
    assert init.fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


TORCH_INIT_CASES = [
    ("xavier_uniform", init.xavier_uniform, "xavier_uniform_", {}),
    ("xavier_normal-gain", functools.partial(init.xavier_normal, gain=1.7), "xavier_normal_", {"gain": 1.7}),
    ("kaiming_uniform", init.kaiming_uniform, "kaiming_uniform_", {"nonlinearity": "relu"}),
    (
        "kaiming_uniform-fan_out-leaky",
        functools.partial(init.kaiming_uniform, a=0.1, mode="fan_out", nonlinearity="leaky_relu"),
        "kaiming_uniform_",
        {"a": 0.1, "mode": "fan_out", "nonlinearity": "leaky_relu"},
    ),
    ("kaiming_normal", init.kaiming_normal, "kaiming_normal_", {"nonlinearity": "relu"}),
    (
        "kaiming_normal-fan_out-tanh",
        functools.partial(init.kaiming_normal, mode="fan_out", nonlinearity="tanh"),
        "kaiming_normal_",
        {"mode": "fan_out", "nonlinearity": "tanh"},
    ),
]


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("fn", "torch_fn", "kwargs"), [c[1:] for c in TORCH_INIT_CASES], ids=[c[0] for c in TORCH_INIT_CASES]
)
def test_initializers_have_the_variance_and_bound_of_torch(rng, tol, fn, torch_fn, kwargs):
    torch = pytest.importorskip("torch")
    theirs = torch.empty(BIG, dtype=torch.float64)
    getattr(torch.nn.init, torch_fn)(theirs, generator=torch.Generator().manual_seed(0), **kwargs)
    theirs = theirs.numpy()
    ours = fn(BIG, rng)
    assert ours.var() == pytest.approx(theirs.var(), rel=2 * tol.init_var)
    if torch_fn.endswith("uniform_"):
        assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=1e-3)


@pytest.mark.oracle
def test_default_linear_init_has_torch_bounds(tol):
    torch = pytest.importorskip("torch")
    fan_in, fan_out = 1000, 300
    bound = 1 / math.sqrt(fan_in)
    ours = Linear(fan_in, fan_out, rng=np.random.default_rng(0))
    torch.manual_seed(0)
    theirs = torch.nn.Linear(fan_in, fan_out)
    for w, tw in [(ours.weight.data, theirs.weight.detach().numpy()), (ours.bias.data, theirs.bias.detach().numpy())]:
        assert np.abs(w).max() <= bound and np.abs(tw).max() <= bound
        assert np.abs(w).max() == pytest.approx(np.abs(tw).max(), rel=0.02)
    assert ours.weight.data.var() == pytest.approx(bound**2 / 3, rel=tol.init_var)
    assert theirs.weight.detach().numpy().var() == pytest.approx(bound**2 / 3, rel=tol.init_var)


def test_default_linear_init_bounds(tol):
    fan_in = 400
    layer = Linear(fan_in, 500, rng=np.random.default_rng(0))
    bound = 1 / math.sqrt(fan_in)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.999 * bound
    assert np.abs(layer.bias.data).max() <= bound and np.abs(layer.bias.data).max() > 0.98 * bound
    assert np.float64(layer.weight.data).var() == pytest.approx(bound**2 / 3, rel=tol.init_var)


# ------------------------------------------------------------------------------------------ init=


@pytest.mark.parametrize("name", sorted(init.NAMED))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_accepts_every_init_name(rng, name, dtype):
    layer = Linear(6, 4, init=name, rng=rng, dtype=dtype)
    assert layer.weight.shape == (4, 6) and layer.weight.dtype == dtype and layer.bias.dtype == dtype
    if name != "default":
        np.testing.assert_array_equal(layer.bias.data, np.zeros(4))  # Keras' convention


def test_linear_init_by_name_uses_that_formula(rng):
    layer = Linear(20, 10, init="xavier_uniform", rng=rng)
    bound = math.sqrt(6 / 30)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound


def test_linear_accepts_a_callable(rng):
    layer = Linear(3, 2, init=lambda shape, g: np.full(shape, 0.25), rng=rng)
    np.testing.assert_array_equal(layer.weight.data, np.full((2, 3), 0.25, dtype=np.float32))
    assert layer.weight.dtype == np.float32


def test_linear_accepts_a_partial_with_the_same_stream_as_the_function():
    fn = functools.partial(init.kaiming_normal, nonlinearity="tanh")
    layer = Linear(30, 20, init=fn, rng=np.random.default_rng(3), dtype=np.float64)
    expected = init.kaiming_normal((20, 30), np.random.default_rng(3), nonlinearity="tanh")
    np.testing.assert_array_equal(layer.weight.data, expected)


def test_resolve_returns_callables_unchanged():
    assert init.resolve(init.orthogonal) is init.orthogonal
    assert init.resolve("he_normal") is init.kaiming_normal
    assert init.resolve("glorot_uniform") is init.xavier_uniform


def test_unknown_init_name_lists_the_choices():
    with pytest.raises(ValueError) as info:
        Linear(3, 2, init="glorot")
    msg = str(info.value)
    assert "init='glorot'" in msg
    for name in init.NAMED:
        assert repr(name) in msg


def test_initializer_returning_the_wrong_shape_is_a_value_error(rng):
    with pytest.raises(ValueError, match=r"returned shape \(3, 2\), expected \(2, 3\)"):
        Linear(3, 2, init=lambda shape, g: np.zeros(shape[::-1]), rng=rng)


# ------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("name", sorted(init.NAMED))
def test_same_seed_same_weights(name):
    fn = init.resolve(name)
    a = fn((9, 7), np.random.default_rng(11))
    b = fn((9, 7), np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(set(init.NAMED) - {"zeros"}))
def test_different_seeds_different_weights(name):
    fn = init.resolve(name)
    assert not np.array_equal(fn((9, 7), np.random.default_rng(1)), fn((9, 7), np.random.default_rng(2)))


def test_linear_is_deterministic_given_a_generator_or_manual_seed():
    a = Linear(5, 4, rng=np.random.default_rng(7))
    b = Linear(5, 4, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    gw.manual_seed(7)
    c = Linear(5, 4)
    gw.manual_seed(7)
    d = Linear(5, 4)
    np.testing.assert_array_equal(c.weight.data, d.weight.data)
    np.testing.assert_array_equal(c.weight.data, a.weight.data)  # manual_seed(s) is default_rng(s)
