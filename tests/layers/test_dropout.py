"""Tests of gradwise/layers/dropout.py: Dropout (inverted)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradwise as gw
import gradwise.random
from gradwise.diagnostics import check_layer, check_model
from gradwise.layers import Linear, Tanh
from gradwise.layers.dropout import Dropout
from gradwise.losses import SoftmaxCrossEntropy

DTYPES = [np.float32, np.float64]
PS = [0.1, 0.5, 0.8]
SHAPES = [(7,), (4, 6), (2, 3, 5), (2, 3, 4, 4)]
# Sampling bounds: with n draws the fraction dropped has standard deviation sqrt(p (1 - p) / n);
# five of them never fail with a fixed seed and still catch a wrong convention (p vs 1 - p).
N_DRAWS = 200_000
SIGMAS = 5.0


def seeded(p: float, seed: int = 0) -> Dropout:
    return Dropout(p, rng=np.random.default_rng(seed))


# ----------------------------------------------------------------------------------- gradient check


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradient_check_with_the_mask_frozen(rng, tol, p, shape):
    layer = seeded(p)
    state = copy.deepcopy(layer.rng.bit_generator.state)
    report = check_layer(layer, rng.standard_normal(shape), max_entries=None)
    assert [c.name for c in report.checks] == ["input"]
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)
    assert layer.rng.bit_generator.state == state  # the check ran on a copy


def test_gradient_check_fails_when_the_mask_is_not_frozen(rng, tol):
    """A generator the check cannot see is not rewound: every evaluation draws a new mask and the
    finite differences are garbage. This is what storing a Generator as `rng` buys."""

    class Wrapped:
        """Draws from a Generator without being one."""

        def __init__(self, gen: np.random.Generator) -> None:
            self.gen = gen

        def random(self, shape: tuple[int, ...], dtype: type) -> np.ndarray:
            return self.gen.random(shape, dtype=dtype)

    layer = seeded(0.5)
    layer.rng = Wrapped(layer.rng)
    report = check_layer(layer, rng.standard_normal((6, 5)), max_entries=None)
    assert report.max_rel_error > tol.gradcheck_bug, str(report)


def test_gradient_check_of_a_model_with_dropout(rng, tol):
    model = gw.Sequential(Linear(5, 16, rng=rng), Tanh(), Dropout(0.3, rng=rng), Linear(16, 3, rng=rng))
    report = check_model(model, SoftmaxCrossEntropy(), rng.standard_normal((8, 5)), rng.integers(0, 3, 8),
                         check_input=True, max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


# --------------------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("p", [0.0, *PS, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_eval_is_the_identity(rng, p, dtype):
    layer = seeded(p).eval()
    x = rng.standard_normal((4, 5)).astype(dtype)
    state = copy.deepcopy(layer.rng.bit_generator.state)
    np.testing.assert_array_equal(layer.forward(x), x)
    g = rng.standard_normal((4, 5)).astype(dtype)
    np.testing.assert_array_equal(layer.backward(g), g)
    assert layer.rng.bit_generator.state == state  # no mask drawn


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_drops_a_fraction_p_and_scales_survivors(rng, p, dtype):
    layer = seeded(p)
    x = rng.uniform(1.0, 2.0, N_DRAWS).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype
    dropped = y == 0
    np.testing.assert_allclose(y[~dropped], x[~dropped] * dtype(1 / (1 - p)), rtol=2 * np.finfo(dtype).eps)
    assert abs(dropped.mean() - p) < SIGMAS * np.sqrt(p * (1 - p) / N_DRAWS)


@pytest.mark.parametrize("p", PS)
def test_training_preserves_the_mean(p):
    layer = seeded(p, seed=1)
    y = layer.forward(np.ones(N_DRAWS, dtype=np.float32))
    # E[y] = 1, Var[y] = p / (1 - p)
    assert abs(float(y.mean(dtype=np.float64)) - 1.0) < SIGMAS * np.sqrt(p / (1 - p) / N_DRAWS)


@pytest.mark.parametrize("p", PS)
def test_backward_uses_the_forward_mask(rng, p):
    layer = seeded(p)
    x = rng.uniform(1.0, 2.0, (30, 20))
    y = layer.forward(x)
    g = rng.standard_normal((30, 20))
    np.testing.assert_allclose(layer.backward(g), g * (y / x), rtol=1e-15)


def test_each_forward_draws_a_new_mask(rng):
    layer = seeded(0.5)
    x = np.ones((50, 50))
    assert not np.array_equal(layer.forward(x), layer.forward(x))


def test_the_same_seed_gives_the_same_masks(rng):
    x = rng.standard_normal((20, 30)).astype(np.float32)
    a, b = seeded(0.4, seed=7), seeded(0.4, seed=7)
    for _ in range(3):
        np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert not np.array_equal(seeded(0.4, seed=8).forward(x), seeded(0.4, seed=7).forward(x))


def test_default_generator_is_the_library_one_at_construction(monkeypatch):
    monkeypatch.setattr(gradwise.random, "_generator", gradwise.random.default_rng())  # restored afterwards
    x = np.ones((10, 10))
    gw.manual_seed(3)
    first = Dropout(0.5).forward(x)
    gw.manual_seed(3)
    layer = Dropout(0.5)
    assert layer.rng is gw.default_rng()
    np.testing.assert_array_equal(layer.forward(x), first)


@pytest.mark.parametrize("dtype", DTYPES)
def test_p_zero_is_the_identity_in_training(rng, dtype):
    layer = seeded(0.0)
    x = rng.standard_normal((3, 4)).astype(dtype)
    np.testing.assert_array_equal(layer.forward(x), x)
    g = rng.standard_normal((3, 4)).astype(dtype)
    np.testing.assert_array_equal(layer.backward(g), g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_p_one_drops_everything_in_training(rng, dtype):
    layer = seeded(1.0)
    x = rng.standard_normal((3, 4)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype and not y.any()
    g = layer.backward(np.ones((3, 4), dtype=dtype))
    assert g.dtype == dtype and g.shape == (3, 4) and not g.any()


@pytest.mark.parametrize(("input_dtype", "out_dtype"), [(np.float32, np.float32), (np.float64, np.float64),
                                                        (np.float16, np.float16), (np.int64, np.float32)])
def test_output_dtype(rng, input_dtype, out_dtype):
    layer = seeded(0.5)
    y = layer.forward((10 * rng.standard_normal((40, 5))).astype(input_dtype))
    assert y.dtype == out_dtype
    assert layer.backward(np.ones((40, 5), dtype=out_dtype)).dtype == out_dtype


def test_forward_does_not_modify_the_input(rng):
    layer = seeded(0.5)
    x = rng.standard_normal((6, 6))
    before = x.copy()
    layer.backward(layer.forward(x))
    np.testing.assert_array_equal(x, before)


def test_state_dict_is_empty_and_repr_names_p():
    layer = Dropout(0.25)
    assert layer.state_dict() == {} and layer.parameters() == [] and layer.buffers() == []
    assert repr(layer) == "Dropout(p=0.25)"


@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6),
                 elements=st.floats(-10, 10, allow_nan=False).filter(lambda v: v != 0)),
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_entry_is_dropped_or_scaled(x, p, seed):
    layer = seeded(p, seed)
    y = layer.forward(x)
    g = layer.backward(np.ones_like(x))
    kept = y != 0
    if p < 1:
        np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-12)
        np.testing.assert_allclose(g[kept], 1 / (1 - p), rtol=1e-12)
    assert not g[~kept].any()
    if p == 1:
        assert not kept.any()
    if p == 0:
        assert kept.all()


# ------------------------------------------------------------------------------------------ oracle


@pytest.mark.oracle
@pytest.mark.parametrize("p", [0.0, *PS, 1.0])
def test_p_is_the_drop_probability_as_in_torch(p):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)  # torch's generator: its masks differ from ours, the statistics do not
    x = np.ones(N_DRAWS, dtype=np.float32)
    ours = seeded(p).forward(x)
    theirs = torch.nn.Dropout(p)(torch.from_numpy(x)).numpy()
    # The same set of values (0 and 1 / (1 - p)) and the same dropped fraction within sampling error.
    assert set(np.unique(ours)) == set(np.unique(theirs))
    bound = SIGMAS * np.sqrt(p * (1 - p) / N_DRAWS) * 2
    assert abs((ours == 0).mean() - (theirs == 0).mean()) <= bound
    assert np.array_equal(torch.nn.Dropout(p).eval()(torch.from_numpy(x)).numpy(), Dropout(p).eval().forward(x))


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_p_outside_zero_one_is_a_value_error(p):
    with pytest.raises(ValueError, match=r"Dropout: p=.* must be a probability in \[0, 1\]"):
        Dropout(p)


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="Dropout: rng must be a numpy Generator"):
        Dropout(0.5, rng=0)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("training", [True, False])
def test_backward_before_forward_or_twice_is_an_error(p, training):
    layer = seeded(p).train(training)
    with pytest.raises(RuntimeError, match="Dropout.backward was called before forward"):
        layer.backward(np.ones(3))
    layer.backward(layer.forward(np.ones(3)))
    with pytest.raises(RuntimeError, match="Dropout.backward was called before forward"):
        layer.backward(np.ones(3))
