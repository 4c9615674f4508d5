"""Tests of gradwise/layers/pooling.py: MaxPool1d/2d, AvgPool1d/2d, GlobalAvgPool."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import distinct_values, record, rel_err
from hypothesis import given
from hypothesis import strategies as st

from gradwise.core import Sequential
from gradwise.diagnostics import check_layer
from gradwise.layers.conv import Conv2d
from gradwise.layers.pooling import (
    AvgPool1d,
    AvgPool2d,
    GlobalAvgPool,
    MaxPool1d,
    MaxPool2d,
)

DTYPES = [np.float32, np.float64]

# (kernel_size, stride, padding, input length)
POOL1D = [(2, None, 0, 8), (2, None, 0, 9), (3, 2, 1, 10), (3, 1, 1, 7), (4, 3, 2, 11), (1, 1, 0, 3), (5, 2, 0, 5)]
# (kernel_size, stride, padding, (H, W))
POOL2D = [
    (2, None, 0, (6, 8)),
    (2, None, 0, (5, 7)),  # the last row and column are in no window
    (3, 2, 1, (7, 6)),
    (3, 1, 1, (4, 5)),  # overlapping windows
    ((2, 3), (1, 2), (1, 1), (5, 7)),
    ((1, 2), None, 0, (1, 6)),
    (4, 4, 2, (6, 6)),
]
GRID = [(nd, case) for nd, cases in ((1, POOL1D), (2, POOL2D)) for case in cases]
GRID_IDS = [f"{nd}d-" + "-".join(str(v).replace(" ", "") for v in case) for nd, case in GRID]


def shape_of(nd: int, case: tuple, n: int = 2, c: int = 3) -> tuple[int, ...]:
    spatial = case[-1]
    return (n, c, spatial) if nd == 1 else (n, c, *spatial)


def max_pool(nd: int, case: tuple) -> MaxPool1d | MaxPool2d:
    k, s, p, _ = case
    return (MaxPool1d if nd == 1 else MaxPool2d)(k, stride=s, padding=p)


def avg_pool(nd: int, case: tuple, count_include_pad: bool = True) -> AvgPool1d | AvgPool2d:
    k, s, p, _ = case
    return (AvgPool1d if nd == 1 else AvgPool2d)(k, stride=s, padding=p, count_include_pad=count_include_pad)


def torch_pool(layer: Any, x: np.ndarray, upstream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """torch.nn.functional's pooling on the same input: (output, input gradient)."""
    import torch
    import torch.nn.functional as F

    w = layer.window
    xt = torch.tensor(x, requires_grad=True)
    if isinstance(layer, (MaxPool1d, MaxPool2d)):
        fn = F.max_pool1d if w.nd == 1 else F.max_pool2d
        y = fn(xt, w.kernel, w.stride, w.padding)
    else:
        fn = F.avg_pool1d if w.nd == 1 else F.avg_pool2d
        y = fn(xt, w.kernel, w.stride, w.padding, count_include_pad=layer.count_include_pad)
    y.backward(torch.from_numpy(np.array(upstream)))
    return y.detach().numpy(), xt.grad.numpy()


def oracle(layer: Any, x: np.ndarray, upstream: np.ndarray) -> dict[str, float]:
    y = layer.forward(x)
    gx = layer.backward(upstream)
    ty, tgx = torch_pool(layer, x, upstream)
    errors = {"output": rel_err(y, ty), "input": rel_err(gx, tgx)}
    for name, err in errors.items():
        record(f"{np.dtype(x.dtype).name}:{type(layer).__name__}:{name}", err)
    return errors


# ------------------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize(("nd", "case"), GRID, ids=GRID_IDS)
def test_max_pool_gradient_check(rng, tol, nd, case):
    layer = max_pool(nd, case)
    # distinct values 0.1 apart: no two cells of a window within a finite-difference step
    report = check_layer(layer, distinct_values(rng, shape_of(nd, case)), max_entries=None)
    assert [c.name for c in report.checks] == ["input"] and report.checks[0].checked == report.checks[0].total
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.parametrize(("nd", "case"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_gradient_check(rng, tol, nd, case, count_include_pad):
    layer = avg_pool(nd, case, count_include_pad)
    report = check_layer(layer, rng.standard_normal(shape_of(nd, case)), max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5), (2, 2, 3, 1, 4)], ids=str)
def test_global_avg_pool_gradient_check(rng, tol, shape):
    report = check_layer(GlobalAvgPool(), rng.standard_normal(shape), max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


def test_gradient_check_through_conv_and_pool(rng, tol):
    model = Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), MaxPool2d(2), Conv2d(3, 2, 2, rng=rng), AvgPool2d(2, 1))
    x = distinct_values(rng, (2, 2, 6, 6), gap=0.37)
    report = check_layer(model, x, max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


# ------------------------------------------------------------------------------------- oracle


@pytest.mark.oracle
@pytest.mark.parametrize(("nd", "case"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg", "avg-exclude-pad"])
def test_matches_torch(rng, tol, nd, case, dtype, kind):
    pytest.importorskip("torch")
    layer = max_pool(nd, case) if kind == "max" else avg_pool(nd, case, kind == "avg")
    x = rng.standard_normal(shape_of(nd, case, n=4)).astype(dtype)
    upstream = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    errors = oracle(layer, x, upstream)
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@pytest.mark.parametrize(("nd", "case"), GRID, ids=GRID_IDS)
def test_max_pool_ties_go_to_the_first_maximum_as_in_torch(rng, nd, case):
    """Small integers: many windows hold their maximum more than once (ReLU outputs do too)."""
    pytest.importorskip("torch")
    layer = max_pool(nd, case)
    x = rng.integers(0, 3, shape_of(nd, case, n=4)).astype(np.float64)
    upstream = rng.standard_normal(layer.forward(x).shape)
    y, gx = layer.forward(x), layer.backward(upstream)
    ty, tgx = torch_pool(layer, x, upstream)
    np.testing.assert_array_equal(y, ty)
    # exact but for the order of additions where windows overlap; a misplaced gradient is O(1)
    np.testing.assert_allclose(gx, tgx, rtol=0, atol=1e-14)


@pytest.mark.oracle
@pytest.mark.parametrize("nd", [1, 2])
def test_nan_propagates_as_in_torch(rng, nd):
    pytest.importorskip("torch")
    layer = MaxPool1d(2) if nd == 1 else MaxPool2d(2)
    x = rng.standard_normal((2, 2, 6) if nd == 1 else (2, 2, 4, 4))
    x.flat[[1, 8, 13]] = np.nan
    ty, _ = torch_pool(layer, x, np.ones(layer.forward(x).shape))
    y = layer.forward(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
    np.testing.assert_array_equal(y[~np.isnan(y)], ty[~np.isnan(ty)])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_lenet_shapes_match_torch(rng, tol, dtype, kind):
    pytest.importorskip("torch")
    layer = MaxPool2d(2) if kind == "max" else AvgPool2d(2)
    x = rng.standard_normal((64, 6, 24, 24)).astype(dtype)
    upstream = rng.standard_normal((64, 6, 12, 12)).astype(dtype)
    assert max(oracle(layer, x, upstream).values()) < tol.oracle_for(dtype)


@pytest.mark.oracle
@given(
    nd=st.sampled_from([1, 2]),
    kind=st.sampled_from(["max", "avg", "avg-exclude-pad"]),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 4),
    pad_frac=st.floats(0, 1),
    extra=st.lists(st.integers(0, 5), min_size=2, max_size=2),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_torch_for_any_geometry(tol, nd, kind, kernel, stride, pad_frac, extra, n, seed):
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    padding = int(pad_frac * kernel / 2)  # PyTorch's limit: at most half the kernel
    spatial = tuple(max(1, kernel - 2 * padding) + e for e in extra[:nd])
    case = (kernel, stride, padding, spatial[0] if nd == 1 else spatial)
    layer = max_pool(nd, case) if kind == "max" else avg_pool(nd, case, kind == "avg")
    x = distinct_values(rng, shape_of(nd, case, n=n, c=2))
    errors = oracle(layer, x, rng.standard_normal(layer.forward(x).shape))
    assert max(errors.values()) < tol.oracle64, errors


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5), (2, 2, 3, 1, 4)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_matches_torch(rng, tol, shape, dtype):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(dtype)
    upstream = rng.standard_normal(shape[:2]).astype(dtype)
    layer = GlobalAvgPool()
    y, gx = layer.forward(x), layer.backward(upstream)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt.mean(dim=tuple(range(2, len(shape))))
    yt.backward(torch.from_numpy(upstream))
    assert rel_err(y, yt.detach().numpy()) < tol.oracle_for(dtype)
    assert rel_err(gx, xt.grad.numpy()) < tol.oracle_for(dtype)
    if len(shape) == 4:
        adaptive = torch.nn.AdaptiveAvgPool2d(1)(torch.from_numpy(x)).flatten(1).numpy()
        assert rel_err(y, adaptive) < tol.oracle_for(dtype)


# ----------------------------------------------------------------------------------- semantics


def test_max_pool_is_the_window_maximum(rng):
    x = rng.standard_normal((2, 3, 7, 9))
    y = MaxPool2d((3, 2), stride=(2, 3), padding=(1, 1)).forward(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    expected = np.empty(y.shape)
    for n, c, h, w in np.ndindex(*y.shape):
        expected[n, c, h, w] = xp[n, c, 2 * h : 2 * h + 3, 3 * w : 3 * w + 2].max()
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_is_the_window_mean(rng, count_include_pad):
    x = rng.standard_normal((2, 3, 11))
    y = AvgPool1d(4, stride=3, padding=2, count_include_pad=count_include_pad).forward(x)
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2)))
    inside = np.pad(np.ones(11), 2)
    expected = np.empty(y.shape)
    for n, c, l in np.ndindex(*y.shape):
        count = 4 if count_include_pad else inside[3 * l : 3 * l + 4].sum()
        expected[n, c, l] = xp[n, c, 3 * l : 3 * l + 4].sum() / count
    np.testing.assert_allclose(y, expected, rtol=1e-14)


def test_max_pool_gradient_goes_to_the_argmax(rng):
    x = distinct_values(rng, (1, 1, 4, 4))
    layer = MaxPool2d(2)
    layer.forward(x)
    gx = layer.backward(np.full((1, 1, 2, 2), 5.0))
    assert gx.sum() == 20.0 and np.count_nonzero(gx) == 4
    for h, w in np.ndindex(2, 2):
        window = x[0, 0, 2 * h : 2 * h + 2, 2 * w : 2 * w + 2]
        assert gx[0, 0, 2 * h : 2 * h + 2, 2 * w : 2 * w + 2][np.unravel_index(window.argmax(), (2, 2))] == 5.0


def test_overlapping_windows_add_their_gradients():
    x = np.array([[[0.0, 3.0, 1.0, 2.0]]])
    layer = MaxPool1d(2, stride=1)
    np.testing.assert_array_equal(layer.forward(x), [[[3.0, 3.0, 2.0]]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 3))), [[[0.0, 2.0, 0.0, 1.0]]])


def test_stride_defaults_to_the_kernel_size():
    assert MaxPool2d(3).window.stride == (3, 3) and AvgPool1d(4).window.stride == (4,)
    assert MaxPool2d((2, 3), stride=1).window.stride == (1, 1)


def test_inputs_in_any_memory_layout(rng):
    x = rng.standard_normal((3, 2, 6, 5))
    for layer in (MaxPool2d(2), AvgPool2d(3, 2, 1)):
        y_ref = layer.forward(x)
        g = rng.standard_normal(y_ref.shape)
        gx_ref = layer.backward(g)
        for variant in (np.asfortranarray(x), np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)):
            np.testing.assert_array_equal(layer.forward(variant), y_ref)
            np.testing.assert_allclose(layer.backward(np.asfortranarray(g)), gx_ref, rtol=1e-15, atol=1e-15)


def test_forward_does_not_modify_the_input(rng):
    x = rng.standard_normal((2, 2, 5, 5))
    before = x.copy()
    for layer in (MaxPool2d(3, 2, 1), AvgPool2d(3, 2, 1), GlobalAvgPool()):
        layer.backward(layer.forward(x))
    np.testing.assert_array_equal(x, before)


def test_global_avg_pool_shapes(rng):
    assert GlobalAvgPool().forward(np.ones((4, 3, 5, 6))).shape == (4, 3)
    assert GlobalAvgPool().forward(np.ones((4, 3, 5))).shape == (4, 3)


def test_repr():
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))"
    assert repr(MaxPool1d(3, 2, 1)) == "MaxPool1d(kernel_size=3, stride=2, padding=1)"
    assert repr(AvgPool1d(2, count_include_pad=False)) == "AvgPool1d(kernel_size=2, stride=2, count_include_pad=False)"
    assert repr(GlobalAvgPool()) == "GlobalAvgPool()"


# --------------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "make", [lambda: MaxPool2d(2), lambda: AvgPool2d(2, 1, 1), GlobalAvgPool], ids=["max", "avg", "global"]
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_is_preserved(rng, make, dtype):
    layer = make()
    y = layer.forward(rng.standard_normal((2, 3, 4, 4)).astype(dtype))
    assert y.dtype == dtype
    assert layer.backward(np.ones(y.shape, dtype=np.float64)).dtype == dtype


@pytest.mark.parametrize(
    "make", [lambda: MaxPool1d(2), lambda: AvgPool1d(2), GlobalAvgPool], ids=["max", "avg", "global"]
)
def test_integer_inputs_become_float32(make):
    layer = make()
    y = layer.forward(np.arange(24).reshape(2, 3, 4))
    assert y.dtype == np.float32 and layer.backward(np.ones(y.shape)).dtype == np.float32


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (MaxPool1d(2), (4, 10), "(N, C, L)"),
        (MaxPool2d(2), (4, 3, 10), "(N, C, H, W)"),
        (AvgPool2d(2), (1, 4, 3, 10, 10), "(N, C, H, W)"),
        (AvgPool1d(2), (4, 3, 10, 10), "(N, C, L)"),
    ],
)
def test_wrong_rank_names_layer_and_shapes(layer, shape, expected):
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape))
    msg = str(info.value)
    assert type(layer).__name__ in msg and str(shape) in msg and expected in msg


@pytest.mark.parametrize(
    ("layer", "shape", "span", "padded"),
    [(MaxPool2d(3), (1, 1, 2, 5), "(3, 3)", "(2, 5)"), (AvgPool1d(5, padding=1), (1, 2, 2), "(5,)", "(4,)")],
)
def test_window_larger_than_padded_input(layer, shape, span, padded):
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape))
    msg = str(info.value)
    assert type(layer).__name__ in msg and str(shape) in msg
    assert f"spans {span}" in msg and f"padded input {padded}" in msg


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MaxPool2d(2, padding=2), r"MaxPool2d: padding=2 must be at most half of kernel_size=2"),
        (lambda: AvgPool1d(3, padding=2), r"AvgPool1d: padding=2 must be at most half"),
        (lambda: MaxPool1d(0), r"MaxPool1d: kernel_size=0 must be >= 1"),
        (lambda: AvgPool2d(2, stride=0), r"AvgPool2d: stride=0 must be >= 1"),
        (lambda: MaxPool2d((2, 2, 2)), r"MaxPool2d: kernel_size=\(2, 2, 2\) must be an int or a sequence of 2 ints"),
    ],
)
def test_invalid_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_global_avg_pool_needs_a_spatial_axis():
    with pytest.raises(ValueError, match=r"GlobalAvgPool: input of shape \(4, 3\) has no spatial axis"):
        GlobalAvgPool().forward(np.zeros((4, 3)))


@pytest.mark.parametrize("layer", [MaxPool2d(2), AvgPool1d(2), GlobalAvgPool()], ids=repr)
def test_backward_before_forward_is_an_error(layer):
    with pytest.raises(RuntimeError, match=f"{type(layer).__name__}.backward was called before forward"):
        layer.backward(np.zeros((1, 1, 1, 1)))
