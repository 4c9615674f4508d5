"""Tests of gradwise/optim/clip.py against torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from helpers import rel_err
from hypothesis import given
from hypothesis import strategies as st

from gradwise.core import Parameter
from gradwise.optim.clip import clip_grad_norm, clip_grad_value, grad_norm

# (torch cannot take the inf-norm of an empty tensor; empty gradients are tested on their own.)
SHAPES = ((5, 3), (4,), (2, 2, 2))


def make_params(rng: np.random.Generator, dtype: type = np.float64, scale: float = 1.0) -> list[Parameter]:
    params = []
    for i, shape in enumerate(SHAPES):
        p = Parameter(np.zeros(shape, dtype=dtype), name=f"p{i}")
        p.grad[...] = scale * rng.standard_normal(shape)
        params.append(p)
    return params


def torch_twins(params: list[Parameter]) -> list[Any]:
    torch = pytest.importorskip("torch")
    twins = []
    for p in params:
        t = torch.nn.Parameter(torch.from_numpy(p.data.copy()))
        t.grad = torch.from_numpy(p.grad.copy())
        twins.append(t)
    return twins


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(
    rng: np.random.Generator, tol: Any, dtype: type, norm_type: Any, max_norm: float
) -> None:
    torch = pytest.importorskip("torch")
    params = make_params(rng, dtype)
    twins = torch_twins(params)
    before = [p.grad.copy() for p in params]
    total = clip_grad_norm(params, max_norm, norm_type)
    expected = float(torch.nn.utils.clip_grad_norm_(twins, max_norm, norm_type))
    assert isinstance(total, float)
    assert abs(total - expected) <= tol.oracle_for(dtype) * expected
    for p, t in zip(params, twins):
        assert p.grad.dtype == dtype
        assert rel_err(p.grad, t.grad.numpy()) <= tol.oracle_for(dtype)
    if max_norm > total:  # nothing to clip: gradients untouched, to the bit
        for p, b in zip(params, before):
            np.testing.assert_array_equal(p.grad, b)
    else:
        assert grad_norm(params, norm_type) <= max_norm


@pytest.mark.oracle
@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_non_finite_gradients_as_torch(rng: np.random.Generator, bad: float, norm_type: float) -> None:
    torch = pytest.importorskip("torch")
    params = make_params(rng)
    params[0].grad[1, 2] = bad
    twins = torch_twins(params)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(twins, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match=f"norm of order {norm_type} is {bad}"):
        clip_grad_norm(params, 1.0, norm_type, error_if_nonfinite=True)
    # Both checks happen before any scaling.
    for p, t in zip(params, twins):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())

    total = clip_grad_norm(params, 1.0, norm_type)
    expected = float(torch.nn.utils.clip_grad_norm_(twins, 1.0, norm_type))
    assert (math.isnan(total) and math.isnan(expected)) or total == expected
    for p, t in zip(params, twins):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())  # NaN where torch has NaN, 0 where 0


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_value_matches_torch(rng: np.random.Generator, dtype: type) -> None:
    torch = pytest.importorskip("torch")
    params = make_params(rng, dtype, scale=2.0)
    params[1].grad[0] = math.nan
    twins = torch_twins(params)
    grads = [p.grad for p in params]
    assert clip_grad_value(params, 0.7) is None
    torch.nn.utils.clip_grad_value_(twins, 0.7)
    for p, g, t in zip(params, grads, twins):
        assert p.grad is g  # in place
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
        finite = p.grad[np.isfinite(p.grad)]
        assert np.all(np.abs(finite) <= np.float32(0.7) if dtype == np.float32 else np.abs(finite) <= 0.7)


def test_clip_grad_norm_is_in_place_and_keeps_the_direction(rng: np.random.Generator) -> None:
    params = make_params(rng, scale=10.0)
    grads = [p.grad for p in params]
    before = np.concatenate([g.ravel() for g in grads])
    total = clip_grad_norm(params, 1.0)
    after = np.concatenate([p.grad.ravel() for p in params])
    assert all(p.grad is g for p, g in zip(params, grads))
    assert total == pytest.approx(np.linalg.norm(before), rel=1e-12)
    # scale = max_norm / (total + 1e-6): the clipped norm sits just below max_norm.
    np.testing.assert_allclose(after, before * (1.0 / (total + 1e-6)), rtol=1e-14)
    assert 1.0 - 1e-6 < np.linalg.norm(after) <= 1.0


def test_frozen_parameters_are_neither_counted_nor_clipped(rng: np.random.Generator) -> None:
    params = make_params(rng, scale=5.0)
    frozen = params[0]
    frozen.requires_grad = False
    kept = frozen.grad.copy()
    expected = np.linalg.norm(np.concatenate([p.grad.ravel() for p in params[1:]]))
    assert clip_grad_norm(params, 1.0) == pytest.approx(expected, rel=1e-12)
    assert grad_norm(params[1:]) <= 1.0
    np.testing.assert_array_equal(frozen.grad, kept)
    clip_grad_value(params, 0.1)
    np.testing.assert_array_equal(frozen.grad, kept)


def test_single_parameter_and_empty_inputs() -> None:
    p = Parameter(np.zeros(2))
    p.grad[...] = [3.0, 4.0]
    assert clip_grad_norm(p, 10.0) == 5.0
    assert clip_grad_norm([], 1.0) == 0.0
    assert clip_grad_norm([Parameter(np.zeros((0, 3)))], 1.0) == 0.0
    clip_grad_value(p, 3.5)
    np.testing.assert_array_equal(p.grad, [3.0, 3.5])


def test_float32_norm_is_accumulated_in_float64() -> None:
    # Large enough for several chunks; a float32 running sum would be off by far more than 1e-12.
    g = np.random.default_rng(0).standard_normal(300_001).astype(np.float32)
    p = Parameter(np.zeros_like(g))
    p.grad[...] = g
    exact = math.sqrt(math.fsum(float(x) ** 2 for x in g.astype(np.float64)))
    assert abs(grad_norm(p) - exact) <= 1e-12 * exact


@given(
    shapes=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=4),
    log_scale=st.floats(-6, 6),
    max_norm=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_clipped_norm_never_exceeds_max_norm(
    shapes: list[tuple[int, int]], log_scale: float, max_norm: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    params = [Parameter(np.zeros(s)) for s in shapes]
    for p in params:
        p.grad[...] = 10.0**log_scale * rng.standard_normal(p.shape)
    total = clip_grad_norm(params, max_norm)
    after = grad_norm(params)
    assert after <= max_norm * (1 + 1e-12)
    assert after == pytest.approx(min(total, total * max_norm / (total + 1e-6)), rel=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda ps: clip_grad_norm(ps, 0.0), ValueError, "max_norm=0.0 must be"),
        (lambda ps: clip_grad_norm(ps, -1), ValueError, "max_norm=-1 must be"),
        (lambda ps: clip_grad_norm(ps, 1.0, norm_type=0), ValueError, "norm_type=0 must be"),
        (lambda ps: clip_grad_norm(ps, 1.0, norm_type=-2.0), ValueError, r"norm_type=-2\.0"),
        (lambda ps: clip_grad_value(ps, 0), ValueError, "clip_value=0 must be"),
        (lambda ps: clip_grad_value(ps, math.nan), ValueError, "clip_value=nan"),
        (lambda ps: clip_grad_norm([*ps, np.zeros(3)], 1.0), TypeError, r"params\[3\] is a ndarray"),
    ],
)
def test_invalid_arguments(rng: np.random.Generator, call: Any, error: type, match: str) -> None:
    params = make_params(rng)
    with pytest.raises(error, match=match):
        call(params)
