"""Tests of gradwise/layers/reshape.py: Reshape."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import rel_err

from gradwise.core import Sequential
from gradwise.diagnostics import check_layer, check_model
from gradwise.layers import Flatten, Linear
from gradwise.layers.conv import Conv1d
from gradwise.layers.reshape import Reshape
from gradwise.losses import SoftmaxCrossEntropy

# (input shape, target per-sample shape, resulting shape)
CASES = [
    ((5, 40), (1, 40), (5, 1, 40)),
    ((5, 40), [2, -1], (5, 2, 20)),
    ((3, 2, 6), (12,), (3, 12)),
    ((3, 2, 6), (3, 4), (3, 3, 4)),
    ((2, 4, 3, 2), (-1, 2, 2), (2, 6, 2, 2)),
    ((4, 1), (1, 1, 1), (4, 1, 1, 1)),
    ((0, 6), (2, 3), (0, 2, 3)),
]


@pytest.mark.parametrize(("in_shape", "shape", "out_shape"), CASES, ids=str)
def test_output_shape_and_values(rng, in_shape, shape, out_shape):
    x = rng.standard_normal(in_shape)
    y = Reshape(shape).forward(x)
    assert y.shape == out_shape
    np.testing.assert_array_equal(y.ravel(), x.ravel())


@pytest.mark.parametrize(("in_shape", "shape", "out_shape"), CASES[:-1], ids=str)
def test_gradient_check(rng, tol, in_shape, shape, out_shape):
    report = check_layer(Reshape(shape), rng.standard_normal(in_shape), max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


def test_gradient_check_of_the_mnist1d_cnn_front(rng, tol):
    model = Sequential(
        Reshape([1, 12]), Conv1d(1, 3, 3, stride=2, padding=1, rng=rng), Flatten(), Linear(18, 4, rng=rng)
    )
    x, y = rng.standard_normal((6, 12)), rng.integers(0, 4, 6)
    report = check_model(model, SoftmaxCrossEntropy(), x, y, check_input=True)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("in_shape", "shape"), [((5, 40), (1, 40)), ((3, 12), (3, 2, 2)), ((4, 6), (2, 3))], ids=str)
def test_matches_torch_unflatten(rng, dtype, in_shape, shape):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(in_shape).astype(dtype)
    layer = Reshape(shape)
    y = layer.forward(x)
    upstream = rng.standard_normal(y.shape).astype(dtype)
    gx = layer.backward(upstream)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.Unflatten(1, shape)(xt)
    yt.backward(torch.from_numpy(upstream))
    assert y.dtype == gx.dtype == dtype
    assert rel_err(y, yt.detach().numpy()) == 0.0 and rel_err(gx, xt.grad.numpy()) == 0.0


def test_no_copy_for_a_contiguous_input(rng):
    x = rng.standard_normal((4, 40)).astype(np.float32)
    layer = Reshape((1, 40))
    y = layer.forward(x)
    assert np.shares_memory(x, y) and y.dtype == np.float32
    g = np.ones_like(y)
    assert np.shares_memory(layer.backward(g), g)


def test_integer_inputs_keep_their_dtype():
    assert Reshape((2, 2)).forward(np.arange(8).reshape(2, 4)).dtype == np.arange(1).dtype


def test_a_single_int_is_a_one_axis_shape():
    assert Reshape(6).forward(np.zeros((2, 2, 3))).shape == (2, 6)


@pytest.mark.parametrize(
    ("in_shape", "shape", "need"),
    [((3, 41), (1, 40), "needs 40"), ((3, 7), (2, -1), "needs a multiple of 2"), ((3, 2, 5), (3, 3), "needs 9")],
)
def test_size_mismatch_names_layer_and_shapes(in_shape, shape, need):
    with pytest.raises(ValueError) as info:
        Reshape(shape).forward(np.zeros(in_shape))
    msg = str(info.value)
    assert f"Reshape{tuple(shape)}" in msg and str(in_shape) in msg and need in msg


@pytest.mark.parametrize("shape", [(2, -1, -1), (0, 4), (-2, 3), "14", (1.5, 2), (True, 2)])
def test_invalid_shapes_are_value_errors(shape):
    with pytest.raises(ValueError, match="Reshape: shape="):
        Reshape(shape)


def test_scalar_input_is_a_value_error():
    with pytest.raises(ValueError, match="has no batch axis"):
        Reshape((1,)).forward(np.float32(3.0))


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="Reshape.backward was called before forward"):
        Reshape((1, 4)).backward(np.zeros((2, 1, 4)))


def test_repr_and_no_parameters():
    layer = Reshape([1, 40])
    assert repr(layer) == "Reshape(shape=(1, 40))" and layer.parameters() == []
