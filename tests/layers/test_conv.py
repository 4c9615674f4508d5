"""Tests of gradwise/layers/conv.py: Conv1d, Conv2d."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from helpers import record, rel_err, run_gradwise, run_torch
from hypothesis import given
from hypothesis import strategies as st

from gradwise.core import Sequential
from gradwise.diagnostics import check_layer, check_model
from gradwise.layers import Flatten, Linear, ReLU
from gradwise.layers.conv import Conv1d, Conv2d, column_blocks, conv_output_shape
from gradwise.losses import SoftmaxCrossEntropy

DTYPES = [np.float32, np.float64]

# (in_channels, out_channels, kernel_size, stride, padding, dilation, groups, input length)
CONV1D = [
    (1, 1, 1, 1, 0, 1, 1, 5),
    (3, 4, 3, 1, 0, 1, 1, 9),
    (2, 5, 5, 2, 1, 1, 1, 17),  # the MNIST-1D CNN's first layer, shorter input
    (4, 6, 3, 2, 2, 2, 2, 12),
    (6, 6, 3, 1, "same", 1, 3, 8),
    (2, 3, 4, 1, "same", 2, 1, 10),  # even span: PyTorch's asymmetric 'same' padding
    (3, 2, 2, 3, "valid", 1, 1, 11),
    (4, 4, 7, 1, 3, 1, 4, 7),  # depthwise, kernel as long as the input
]
# (in_channels, out_channels, kernel_size, stride, padding, dilation, groups, (H, W))
CONV2D = [
    (1, 2, 1, 1, 0, 1, 1, (3, 4)),
    (2, 3, 3, 1, 0, 1, 1, (5, 6)),
    (3, 4, (3, 2), (2, 1), (1, 0), 1, 1, (7, 5)),
    (4, 6, 3, 2, 1, (2, 1), 2, (8, 7)),
    (2, 4, (2, 3), 1, "same", (1, 2), 2, (5, 6)),
    (3, 3, 3, (1, 3), 2, 1, 3, (4, 9)),
    (1, 6, 5, 1, 0, 1, 1, (6, 7)),  # LeNet's first layer, smaller image
    (6, 4, (1, 3), 2, (0, 1), 1, 1, (1, 6)),  # height 1
]


def _ids(grid: list[tuple]) -> list[str]:
    return ["-".join(str(v).replace(" ", "") for v in case) for case in grid]


def make(cls: type, case: tuple, rng: np.random.Generator, dtype: Any = np.float64, bias: bool = True):
    c_in, c_out, k, s, p, d, g, _ = case
    return cls(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=g, bias=bias, rng=rng, dtype=dtype)


def input_shape(cls: type, case: tuple, n: int = 3) -> tuple[int, ...]:
    spatial = case[-1]
    return (n, case[0], spatial) if cls is Conv1d else (n, case[0], *spatial)


def torch_conv(layer: Conv1d | Conv2d, dtype: Any) -> Any:
    """`torch.nn.Conv1d/2d` with the same settings and weights (loaded through the state dict)."""
    import torch

    cls = torch.nn.Conv1d if isinstance(layer, Conv1d) else torch.nn.Conv2d
    m = cls(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias=layer.bias is not None,
        dtype=torch.float64 if np.dtype(dtype) == np.float64 else torch.float32,
    )
    m.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return m


def oracle(layer: Conv1d | Conv2d, x: np.ndarray, upstream: np.ndarray) -> dict[str, float]:
    """Norm-wise relative errors against torch of the output, the input gradient and each
    parameter gradient."""
    y, gx, grads = run_gradwise(layer, x, upstream)
    ty, tgx, tgrads = run_torch(torch_conv(layer, x.dtype), x, upstream)
    assert sorted(grads) == sorted(tgrads)
    errors = {"output": rel_err(y, ty), "input": rel_err(gx, tgx)}
    errors.update({name: rel_err(grads[name], tgrads[name]) for name in grads})
    for name, err in errors.items():
        kind = name if name in ("output", "input") else "param"
        record(f"{np.dtype(x.dtype).name}:{type(layer).__name__}:{kind}", err)
    return errors


GRID = [(Conv1d, c) for c in CONV1D] + [(Conv2d, c) for c in CONV2D]
GRID_IDS = [f"{cls.__name__}-{i}" for (cls, _), i in zip(GRID, _ids(CONV1D) + _ids(CONV2D))]


# ------------------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize(("cls", "case"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_gradient_check(rng, tol, cls, case, bias):
    layer = make(cls, case, rng, bias=bias)
    report = check_layer(layer, rng.standard_normal(input_shape(cls, case, n=2)), max_entries=None)
    assert [c.name for c in report.checks] == ["input", "weight"] + (["bias"] if bias else [])
    assert all(c.checked == c.total for c in report.checks)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


def test_gradient_check_of_a_small_cnn(rng, tol):
    model = Sequential(
        Conv1d(2, 4, 3, stride=2, padding=1, rng=rng),
        ReLU(),
        Conv1d(4, 3, 3, padding=1, groups=1, rng=rng),
        ReLU(),
        Flatten(),
        Linear(15, 4, rng=rng),
    )
    x = rng.standard_normal((5, 2, 10))
    y = rng.integers(0, 4, 5)
    report = check_model(model, SoftmaxCrossEntropy(), x, y, check_input=True, max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


# ------------------------------------------------------------------------------------- oracle


@pytest.mark.oracle
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@pytest.mark.parametrize(("cls", "case"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(rng, tol, cls, case, bias, dtype):
    pytest.importorskip("torch")
    layer = make(cls, case, rng, dtype, bias)
    x = rng.standard_normal(input_shape(cls, case, n=4)).astype(dtype)
    upstream = rng.standard_normal(conv_output_shape(layer, x.shape)).astype(dtype)
    errors = oracle(layer, x, upstream)
    assert set(errors) == {"output", "input", "weight"} | ({"bias"} if bias else set())
    assert max(errors.values()) < tol.oracle_for(dtype), errors


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("cls", "c_in", "c_out", "k", "s", "p", "shape"),
    [
        (Conv1d, 1, 25, 5, 2, 1, (100, 1, 40)),  # the MNIST-1D CNN, one batch
        (Conv1d, 25, 25, 3, 2, 1, (100, 25, 19)),
        (Conv2d, 1, 6, 5, 1, 0, (64, 1, 28, 28)),  # LeNet, one batch
        (Conv2d, 6, 16, 5, 1, 0, (64, 6, 12, 12)),
        (Conv2d, 2, 8, 3, 1, 0, (10, 2, 25, 23)),  # 4,830 columns: blocked GEMMs, a partial last block
    ],
    ids=["mnist1d-conv1", "mnist1d-conv2", "lenet-conv1", "lenet-conv2", "blocked-partial"],
)
def test_benchmark_shapes_match_torch(rng, tol, dtype, cls, c_in, c_out, k, s, p, shape):
    """Full-size batches: sums over up to 36,864 terms. In float32 torch's own rounding error
    reaches ~2e-6 there (its weight and bias gradients against the exact values), so gradwise is
    held to the exact result (torch in float64 on the same float32 numbers) within the oracle
    tolerance, and to torch's float32 result within torch's own error plus that tolerance."""
    pytest.importorskip("torch")
    layer = cls(c_in, c_out, k, stride=s, padding=p, rng=rng, dtype=dtype)
    x = rng.standard_normal(shape).astype(dtype)
    upstream = rng.standard_normal(conv_output_shape(layer, shape)).astype(dtype)
    if dtype == np.float64:
        errors = oracle(layer, x, upstream)
        assert max(errors.values()) < tol.oracle64, errors
        return
    y, gx, grads = run_gradwise(layer, x, upstream)
    ours = {"output": y, "input": gx, **grads}
    exact64 = copy.deepcopy(layer).astype(np.float64)
    ty64, tgx64, tg64 = run_torch(torch_conv(exact64, np.float64), x.astype(np.float64), upstream.astype(np.float64))
    ty32, tgx32, tg32 = run_torch(torch_conv(layer, np.float32), x, upstream)
    exact = {"output": ty64, "input": tgx64, **tg64}
    theirs = {"output": ty32, "input": tgx32, **tg32}
    for name, value in ours.items():
        kind = name if name in ("output", "input") else "param"
        err = record(f"float32:{cls.__name__}:{kind}", rel_err(value, exact[name]))
        assert err < tol.oracle, (name, err)
        assert rel_err(value, theirs[name]) < rel_err(theirs[name], exact[name]) + tol.oracle, name


@pytest.mark.oracle
@given(
    nd=st.sampled_from([1, 2]),
    groups=st.integers(1, 3),
    c_in_per=st.integers(1, 3),
    c_out_per=st.integers(1, 3),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    extra=st.lists(st.integers(0, 6), min_size=2, max_size=2),
    n=st.integers(1, 4),
    bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_torch_for_any_geometry(
    tol, nd, groups, c_in_per, c_out_per, kernel, stride, padding, dilation, extra, n, bias, seed
):
    pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    cls = Conv1d if nd == 1 else Conv2d
    span = dilation * (kernel - 1) + 1
    spatial = tuple(max(1, span - 2 * padding) + e for e in extra[:nd])  # the kernel always fits
    c_in, c_out = groups * c_in_per, groups * c_out_per
    layer = cls(c_in, c_out, kernel, stride, padding, dilation, groups, bias, rng=rng, dtype=np.float64)
    x = rng.standard_normal((n, groups * c_in_per, *spatial))
    upstream = rng.standard_normal(conv_output_shape(layer, x.shape))
    errors = oracle(layer, x, upstream)
    assert max(errors.values()) < tol.oracle64, errors


@pytest.mark.oracle
@pytest.mark.parametrize("cls", [Conv1d, Conv2d])
def test_state_dict_loads_into_torch_and_back(rng, tol, cls):
    torch = pytest.importorskip("torch")
    layer = cls(4, 6, 3, stride=2, padding=1, groups=2, rng=rng)
    state = layer.state_dict()
    tcls = torch.nn.Conv1d if cls is Conv1d else torch.nn.Conv2d
    twin = tcls(4, 6, 3, stride=2, padding=1, groups=2)
    assert {k: tuple(v.shape) for k, v in twin.state_dict().items()} == {k: v.shape for k, v in state.items()}
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = rng.standard_normal((2, 4, 9) if cls is Conv1d else (2, 4, 9, 7)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    assert rel_err(layer.forward(x), expected) < tol.oracle
    # and back: torch's freshly initialized weights into a new gradwise layer
    fresh = tcls(4, 6, 3, stride=2, padding=1, groups=2)
    layer.load_state_dict({k: v.detach().numpy() for k, v in fresh.state_dict().items()})
    with torch.no_grad():
        expected = fresh(torch.from_numpy(x)).numpy()
    assert rel_err(layer.forward(x), expected) < tol.oracle


# ------------------------------------------------------------------------------- initialization


@pytest.mark.parametrize(("cls", "shape"), [(Conv1d, (8, 3, 5)), (Conv2d, (8, 3, 5, 5))])
def test_default_init_is_pytorchs_uniform_bound(cls, shape):
    layer = cls(6, 8, shape[2:], groups=2, rng=np.random.default_rng(0))
    assert layer.weight.shape == shape and layer.bias.shape == (8,)
    bound = 1.0 / math.sqrt(3 * math.prod(shape[2:]))  # fan_in = in_channels / groups * prod(k)
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound


def test_other_inits_start_the_bias_at_zero():
    layer = Conv2d(2, 3, 3, init="he_normal", rng=np.random.default_rng(0))
    assert not layer.bias.data.any() and layer.weight.data.std() > 0


def test_same_rng_same_weights():
    a = Conv2d(2, 3, 3, rng=np.random.default_rng(5))
    b = Conv2d(2, 3, 3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)


# ------------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("cls", [Conv1d, Conv2d])
def test_float32_in_float32_out_and_float32_grads(rng, cls):
    layer = cls(2, 3, 3, padding=1, rng=rng)
    x = rng.standard_normal((4, 2, 6) if cls is Conv1d else (4, 2, 6, 5)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (4, 3, *x.shape[2:])
    gx = layer.backward(np.ones_like(y))
    assert gx.dtype == np.float32 and gx.shape == x.shape
    assert layer.weight.grad.dtype == np.float32 and layer.bias.grad.dtype == np.float32


@pytest.mark.parametrize("input_dtype", [np.float32, np.float64, np.int64])
def test_the_layer_dtype_wins(rng, input_dtype):
    for dtype in DTYPES:
        layer = Conv1d(2, 3, 3, rng=rng, dtype=dtype)
        y = layer.forward(np.ones((2, 2, 5), dtype=input_dtype))
        assert y.dtype == dtype
        assert layer.backward(np.ones(y.shape, dtype=np.float64)).dtype == dtype
        assert layer.weight.grad.dtype == dtype


def test_astype_float64_then_forward_is_float64(rng):
    layer = Conv2d(2, 3, 3, rng=rng).astype(np.float64)
    y = layer.forward(rng.standard_normal((1, 2, 4, 4)).astype(np.float32))
    assert y.dtype == np.float64 and layer.backward(y).dtype == np.float64


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cls", "shape", "expected"),
    [
        (Conv1d, (4, 2, 10), "(N, 3, L)"),
        (Conv2d, (4, 5, 8, 8), "(N, 3, H, W)"),
    ],
)
def test_wrong_channel_count_names_layer_and_shapes(rng, cls, shape, expected):
    layer = cls(3, 4, 3, rng=rng)
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape))
    msg = str(info.value)
    assert f"{cls.__name__}(3, 4" in msg and str(shape) in msg and expected in msg and f"{shape[1]} channels" in msg


@pytest.mark.parametrize(
    ("cls", "shape"), [(Conv1d, (4, 3)), (Conv1d, (4, 3, 8, 8)), (Conv2d, (3, 8, 8)), (Conv2d, (1, 3, 2, 8, 8))]
)
def test_wrong_rank_names_layer_and_shapes(rng, cls, shape):
    layer = cls(3, 4, 3, rng=rng)
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape))
    msg = str(info.value)
    assert cls.__name__ in msg and str(shape) in msg and f"{len(shape)} dimensions" in msg


@pytest.mark.parametrize(
    ("layer", "shape", "span", "padded"),
    [
        (Conv1d(1, 2, 5), (2, 1, 4), "(5,)", "(4,)"),
        (Conv1d(1, 2, 3, padding=1, dilation=3), (2, 1, 4), "(7,)", "(6,)"),
        (Conv2d(1, 2, (3, 5), padding=(0, 1)), (2, 1, 6, 2), "(3, 5)", "(6, 4)"),
    ],
)
def test_kernel_larger_than_padded_input(layer, shape, span, padded):
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape, dtype=np.float32))
    msg = str(info.value)
    assert type(layer).__name__ in msg and str(shape) in msg
    assert f"spans {span}" in msg and f"padded input {padded}" in msg


def test_a_kernel_exactly_as_large_as_the_padded_input_is_fine():
    layer = Conv2d(1, 2, 4, padding=1)
    assert layer.forward(np.zeros((1, 1, 2, 2), dtype=np.float32)).shape == (1, 2, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_channels": 0}, r"in_channels=0 .* must be positive"),
        ({"groups": 2, "in_channels": 3}, r"groups=2 must be positive and divide in_channels=3"),
        ({"groups": 2, "out_channels": 3}, r"groups=2 must be positive and divide"),
        ({"kernel_size": 0}, r"kernel_size=0 must be >= 1"),
        ({"kernel_size": (3, 3, 3)}, r"kernel_size=\(3, 3, 3\) must be an int or a sequence of 2 ints"),
        ({"stride": 0}, r"stride=0 must be >= 1"),
        ({"dilation": (1, 0)}, r"dilation=\(1, 0\) must be >= 1"),
        ({"padding": -1}, r"padding=-1 must be >= 0"),
        ({"padding": "full"}, r"padding='full' must be 'same', 'valid'"),
        ({"padding": "same", "stride": 2}, r"padding='same' needs stride 1"),
        ({"kernel_size": 2.5}, r"kernel_size=2.5 must be an int"),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    args = {"in_channels": 4, "out_channels": 4, "kernel_size": 3} | kwargs
    with pytest.raises(ValueError, match=f"Conv2d: {match}"):
        Conv2d(**args)


def test_backward_before_forward_is_an_error(rng):
    layer = Conv1d(1, 2, 3, rng=rng)
    with pytest.raises(RuntimeError, match="Conv1d.backward was called before forward"):
        layer.backward(np.zeros((1, 2, 3), dtype=np.float32))
    y = layer.forward(np.zeros((1, 1, 5), dtype=np.float32))
    layer.backward(y)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(y)


# ----------------------------------------------------------------------------------- semantics


def test_forward_is_the_cross_correlation_formula(rng):
    layer = Conv2d(3, 2, (2, 3), stride=(2, 1), padding=1, dilation=(1, 2), rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 5, 6))
    y = layer.forward(x)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    w, b = layer.weight.data, layer.bias.data
    expected = np.empty(y.shape)
    for n, o, h, v in np.ndindex(*y.shape):
        patch = xp[n, :, 2 * h : 2 * h + 2, v : v + 5 : 2]
        expected[n, o, h, v] = np.sum(patch * w[o]) + b[o]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_groups_act_like_separate_convolutions(rng):
    layer = Conv1d(4, 6, 3, groups=2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 4, 8))
    y = layer.forward(x)
    for gi in range(2):
        part = Conv1d(2, 3, 3, rng=rng, dtype=np.float64)
        part.weight.data[...] = layer.weight.data[3 * gi : 3 * gi + 3]
        part.bias.data[...] = layer.bias.data[3 * gi : 3 * gi + 3]
        np.testing.assert_allclose(y[:, 3 * gi : 3 * gi + 3], part.forward(x[:, 2 * gi : 2 * gi + 2]), rtol=1e-13)


def test_conv1d_equals_conv2d_on_height_one(rng):
    c1 = Conv1d(2, 3, 3, stride=2, padding=1, dilation=2, rng=rng, dtype=np.float64)
    c2 = Conv2d(2, 3, (1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2), rng=rng, dtype=np.float64)
    c2.weight.data[...] = c1.weight.data[:, :, None, :]
    c2.bias.data[...] = c1.bias.data
    x = rng.standard_normal((4, 2, 11))
    np.testing.assert_allclose(c1.forward(x), c2.forward(x[:, :, None, :])[:, :, 0, :], rtol=1e-14)
    g = rng.standard_normal((4, 3, 5))
    np.testing.assert_allclose(c1.backward(g), c2.backward(g[:, :, None, :])[:, :, 0, :], rtol=1e-14)
    np.testing.assert_allclose(c1.weight.grad, c2.weight.grad[:, :, 0, :], rtol=1e-14)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_padding_keeps_the_length(rng, k, dilation):
    layer = Conv1d(1, 1, k, padding="same", dilation=dilation, rng=rng)
    assert layer.forward(np.zeros((2, 1, 9), dtype=np.float32)).shape == (2, 1, 9)


def test_valid_padding_is_zero_padding(rng):
    a = Conv2d(1, 2, 3, padding="valid", rng=np.random.default_rng(1))
    b = Conv2d(1, 2, 3, padding=0, rng=np.random.default_rng(1))
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_gradients_accumulate(rng):
    layer = Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 4, 4))
    g = rng.standard_normal((2, 3, 4, 4))
    layer.forward(x)
    layer.backward(g)
    once = (layer.weight.grad.copy(), layer.bias.grad.copy())
    layer.forward(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once[0], rtol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, 2 * once[1], rtol=1e-14)


def test_memory_layout_of_the_input_does_not_matter(rng):
    """C-contiguous, Fortran-ordered, batch-innermost and strided inputs give identical results."""
    layer = Conv2d(3, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((5, 3, 7, 6))
    g = rng.standard_normal((5, 4, 4, 3))
    y_ref, gx_ref, grads_ref = run_gradwise(layer, x, g)
    big = np.zeros((5, 6, 7, 12))
    big[:, ::2, :, ::2] = x
    batch_last = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    for variant in (np.asfortranarray(x), batch_last, big[:, ::2, :, ::2]):
        y, gx, grads = run_gradwise(layer, variant, np.asfortranarray(g))
        np.testing.assert_allclose(y, y_ref, rtol=1e-14)
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-14)
        np.testing.assert_allclose(grads["weight"], grads_ref["weight"], rtol=1e-13)


def test_outputs_are_never_overwritten_by_later_calls(rng):
    """The im2col buffer is reused across calls; what the layer returns must not live in it."""
    layer = Conv1d(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    x1, x2 = rng.standard_normal((4, 2, 8)), rng.standard_normal((6, 2, 8))
    y1 = layer.forward(x1)
    saved = y1.copy()
    gx1 = layer.backward(np.ones_like(y1))
    saved_gx = gx1.copy()
    y2 = layer.forward(x2)
    layer.backward(np.ones_like(y2))
    layer.forward(x1[:1])
    np.testing.assert_array_equal(y1, saved)
    np.testing.assert_array_equal(gx1, saved_gx)


def test_batch_size_may_change_between_calls(rng):
    layer = Conv2d(1, 2, 3, rng=rng, dtype=np.float64)
    big, small = rng.standard_normal((6, 1, 5, 5)), rng.standard_normal((2, 1, 5, 5))
    layer.forward(big)
    y = layer.forward(small)  # a smaller view into the grown buffer
    gx = layer.backward(np.ones_like(y))
    fresh = copy.deepcopy(layer)
    fresh.zero_grad()
    layer.zero_grad()
    fresh.forward(small)
    np.testing.assert_array_equal(fresh.backward(np.ones_like(y)), gx)
    layer.forward(small)
    layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(fresh.weight.grad, layer.weight.grad)


def test_forward_does_not_modify_the_input(rng):
    layer = Conv1d(2, 2, 3, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 2, 6))
    before = x.copy()
    layer.backward(layer.forward(x))
    np.testing.assert_array_equal(x, before)


def test_output_shape_helper_and_repr():
    layer = Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2), dilation=(2, 1), groups=1, bias=False)
    assert conv_output_shape(layer, (7, 3, 20, 21)) == layer.forward(np.zeros((7, 3, 20, 21))).shape == (7, 8, 9, 11)
    assert repr(layer) == "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), dilation=(2, 1), bias=False)"
    assert repr(Conv1d(1, 25, 5, stride=2, padding=1)) == "Conv1d(1, 25, kernel_size=5, stride=2, padding=1)"
    assert repr(Conv1d(2, 2, 3, padding="same", groups=2)) == "Conv1d(2, 2, kernel_size=3, padding=same, groups=2)"
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_empty_batch(rng):
    layer = Conv2d(2, 3, 3, rng=rng)
    y = layer.forward(np.zeros((0, 2, 5, 5), dtype=np.float32))
    assert y.shape == (0, 3, 3, 3)
    assert layer.backward(y).shape == (0, 2, 5, 5)
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


@pytest.mark.parametrize("groups", [1, 2])
def test_frozen_parameters_get_no_gradient_but_the_input_does(rng, groups):
    layer = Conv2d(2, 4, 3, padding=1, groups=groups, rng=rng, dtype=np.float64)
    trained = copy.deepcopy(layer)
    layer.weight.requires_grad = False
    layer.bias.requires_grad = False
    x, g = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 4, 5, 5))
    layer.forward(x)
    trained.forward(x)
    np.testing.assert_array_equal(layer.backward(g), trained.backward(g))
    assert not layer.weight.grad.any() and not layer.bias.grad.any()
    assert trained.weight.grad.any()


@pytest.mark.parametrize("rows", [1, 8, 9, 16])
@pytest.mark.parametrize("size", [0, 1, 4096, 4830, 36864])
def test_column_blocks_cover_every_column_once(rows, size):
    blocks = column_blocks(rows, size)
    covered = np.concatenate([np.arange(size)[s] for s in blocks])
    np.testing.assert_array_equal(covered, np.arange(size))
    assert len(blocks) == (max(1, math.ceil(size / 4096)) if rows <= 8 else 1)
