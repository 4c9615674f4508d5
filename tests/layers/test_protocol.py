"""The layer protocol across every layer (gradwise/core.py, docs/layers.md "The layer protocol").

`backward(g, input_grad=False)` returns None and leaves exactly the parameter gradients of
`backward(g)`; the first gradient after `zero_grad` (written into the buffer, whatever it held)
equals the one added to zeros; a second backward without `zero_grad` adds to it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest

from gradwise.core import Layer, Sequential
from gradwise.layers import (
    ELU,
    GELU,
    GRU,
    LSTM,
    RNN,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Concat,
    Conv1d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    LeakyReLU,
    Linear,
    Maxout,
    MaxPool1d,
    MaxPool2d,
    Parallel,
    ReLU,
    Reshape,
    Residual,
    Sigmoid,
    Softplus,
    TakeLast,
    Tanh,
)


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _floats(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.standard_normal(shape)


CASES: dict[str, tuple[Callable[[], Layer], Callable[[np.random.Generator], object]]] = {
    "Linear": (lambda: Linear(6, 4, rng=_rng()), _floats(5, 6)),
    "Linear-3d": (lambda: Linear(6, 4, rng=_rng()), _floats(2, 3, 6)),
    "Linear-nobias": (lambda: Linear(6, 4, bias=False, rng=_rng()), _floats(5, 6)),
    "Conv1d": (lambda: Conv1d(2, 3, 3, padding=1, rng=_rng()), _floats(4, 2, 9)),
    "Conv2d-groups": (lambda: Conv2d(4, 6, 3, stride=2, groups=2, rng=_rng()), _floats(2, 4, 7, 7)),
    "BatchNorm1d": (lambda: BatchNorm1d(6), _floats(5, 6)),
    "BatchNorm2d": (lambda: BatchNorm2d(3), _floats(4, 3, 5, 5)),
    "BatchNorm1d-eval": (lambda: BatchNorm1d(6).eval(), _floats(5, 6)),
    "LayerNorm": (lambda: LayerNorm(6), _floats(5, 6)),
    "LayerNorm-noaffine": (lambda: LayerNorm(6, elementwise_affine=False), _floats(5, 6)),
    "Embedding": (lambda: Embedding(7, 3, rng=_rng()), lambda rng: rng.integers(0, 7, size=(4, 5))),
    "RNN": (lambda: RNN(6, 3, rng=_rng()), _floats(7, 2, 6)),
    "LSTM-2layers": (lambda: LSTM(6, 3, num_layers=2, rng=_rng()), _floats(7, 2, 6)),
    "GRU-bidirectional": (lambda: GRU(6, 3, bidirectional=True, batch_first=True, rng=_rng()), _floats(2, 7, 6)),
    "ReLU": (ReLU, _floats(5, 6)),
    "LeakyReLU": (LeakyReLU, _floats(5, 6)),
    "ELU": (ELU, _floats(5, 6)),
    "Sigmoid": (Sigmoid, _floats(5, 6)),
    "Tanh": (Tanh, _floats(5, 6)),
    "Softplus": (Softplus, _floats(5, 6)),
    "GELU": (GELU, _floats(5, 6)),
    "GELU-tanh": (lambda: GELU("tanh"), _floats(5, 6)),
    "Maxout": (lambda: Maxout(2), _floats(5, 6)),
    "Dropout-eval": (lambda: Dropout(0.5).eval(), _floats(5, 6)),
    "MaxPool1d": (lambda: MaxPool1d(2), _floats(2, 3, 8)),
    "MaxPool2d": (lambda: MaxPool2d(2), _floats(2, 3, 6, 6)),
    "AvgPool1d": (lambda: AvgPool1d(2), _floats(2, 3, 8)),
    "AvgPool2d": (lambda: AvgPool2d(2), _floats(2, 3, 6, 6)),
    "GlobalAvgPool": (GlobalAvgPool, _floats(2, 3, 6, 6)),
    "Flatten": (Flatten, _floats(2, 3, 4)),
    "Reshape": (lambda: Reshape((4, 3)), _floats(2, 12)),
    "TakeLast": (TakeLast, _floats(2, 5, 3)),
    "Residual": (lambda: Residual(Sequential(Linear(6, 6, rng=_rng()), Tanh())), _floats(5, 6)),
    "Concat": (lambda: Concat(Linear(6, 2, rng=_rng()), Sequential(Linear(6, 3, rng=_rng()), ReLU())), _floats(5, 6)),
    "Parallel": (
        lambda: Parallel(Embedding(7, 3, rng=_rng()), Linear(6, 2, rng=_rng())),
        lambda rng: (rng.integers(0, 7, size=5), rng.standard_normal((5, 6))),
    ),
    "Sequential": (lambda: Sequential(Conv1d(2, 3, 3, rng=_rng()), ReLU(), Flatten(), Linear(21, 2, rng=_rng())),
                   _floats(4, 2, 9)),
}


def _input(make_x: Callable[[np.random.Generator], object]) -> object:
    x = make_x(np.random.default_rng(1))
    if isinstance(x, tuple):
        return tuple(a if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32) for a in x)
    return x if np.issubdtype(np.asarray(x).dtype, np.integer) else np.asarray(x, dtype=np.float32)


@pytest.mark.parametrize("name", CASES)
def test_input_grad_false_returns_none_and_the_same_parameter_gradients(name):
    make, make_x = CASES[name]
    x = _input(make_x)
    reference = make()
    g = np.random.default_rng(2).standard_normal(np.shape(reference.forward(x))).astype(np.float32)
    gx = reference.backward(g)  # grads added to materialized zeros: the accumulate path
    assert gx is not None or name in ("Embedding",)

    layer = make()
    for p in layer.parameters():
        p.grad[...] = 123.0  # stale values the fresh write must overwrite entirely
    layer.zero_grad()
    layer.forward(x)
    assert layer.backward(g, input_grad=False) is None
    for p, q in zip(layer.parameters(), reference.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=f"{name}: {p.name}")

    layer.forward(x)  # no zero_grad: the second backward adds
    assert layer.backward(g, input_grad=False) is None
    for p, q in zip(layer.parameters(), reference.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, 2 * q.grad, err_msg=f"{name}: {p.name}")


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("Embedding", "Parallel")])
def test_input_gradient_does_not_depend_on_a_pending_or_lazy_parameter_gradient(name):
    make, make_x = CASES[name]
    x = _input(make_x)
    a, b = make(), make()
    g = np.random.default_rng(2).standard_normal(np.shape(a.forward(x))).astype(np.float32)
    b.forward(x)
    b.zero_grad()
    np.testing.assert_array_equal(a.backward(g), b.backward(g))


def test_a_frozen_first_layer_of_a_model_gets_no_gradient_and_gives_none():
    model = Sequential(Linear(6, 4, rng=_rng()), ReLU(), Linear(4, 2, rng=_rng()))
    model[0].freeze()
    model.zero_grad()
    model.forward(np.ones((3, 6), dtype=np.float32))
    assert model.backward(np.ones((3, 2), dtype=np.float32), input_grad=False) is None
    assert not model[0].weight.grad.any() and not model[0].bias.grad.any()
    assert model[2].weight.grad.any()


def test_deepcopy_keeps_the_zero_mark():
    layer = Linear(3, 2, rng=_rng())
    layer.weight.grad[...] = 5.0
    layer.zero_grad()
    twin = copy.deepcopy(layer)
    assert not twin.weight.grad.any()
