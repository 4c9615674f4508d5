"""Small models with one planted problem each, for the tests of `gradwise.diagnostics.diagnose`
and of the `Babysitter` (the "Done when" list of issue 10): each builder returns
``(model, loss, data, optimizer)`` on the spiral or MNIST-1D data, sized to run in about a second."""

from __future__ import annotations

from typing import Any

import numpy as np

import gradwise as gw
from gradwise.core import Layer, Parameter
from gradwise.layers import Linear, ReLU, Sigmoid

CE = gw.losses.SoftmaxCrossEntropy


def spiral(seed: int = 0, n_per_class: int = 200) -> tuple[np.ndarray, np.ndarray]:
    return gw.data.make_spiral(n_per_class, 3, noise=0.2, rng=np.random.default_rng(seed))


def mlp(hidden: int = 64, act: type[Layer] = ReLU, seed: int = 0) -> gw.Sequential:
    gw.manual_seed(seed)
    return gw.Sequential(Linear(2, hidden), act(), Linear(hidden, hidden), act(), Linear(hidden, 3))


class BadLinear(Layer):
    """A custom fully connected layer whose backward is wrong in one place (`bug`):
    ``"weight"`` doubles dL/dW, ``"input"`` halves dL/dx."""

    def __init__(self, n_in: int, n_out: int, bug: str, rng: np.random.Generator) -> None:
        super().__init__()
        self.weight = Parameter(rng.standard_normal((n_out, n_in)).astype(np.float32) * np.float32(np.sqrt(2 / n_in)))
        self.bias = Parameter(np.zeros(n_out, dtype=np.float32))
        self.bug = bug
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.weight.data.T + self.bias.data

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        x = self._x
        assert x is not None
        self.weight.grad += (2.0 if self.bug == "weight" else 1.0) * grad_out.T @ x
        self.bias.grad += grad_out.sum(axis=0)
        return grad_out @ self.weight.data * (0.5 if self.bug == "input" else 1.0)


def healthy() -> tuple[Any, ...]:
    model = mlp()
    return model, CE(), spiral(), gw.optim.Adam(model.parameters(), lr=1e-2)


def sgd(lr: float) -> tuple[Any, ...]:
    """The healthy spiral MLP trained by SGD with momentum; 0.1 trains it well."""
    model = mlp()
    return model, CE(), spiral(), gw.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def wrong_backward(bug: str) -> tuple[Any, ...]:
    gw.manual_seed(0)
    rng = np.random.default_rng(1)
    model = gw.Sequential(Linear(2, 32), ReLU(), BadLinear(32, 32, bug, rng), ReLU(), Linear(32, 3))
    return model, CE(), spiral(), gw.optim.Adam(model.parameters(), lr=1e-2)


def dead_relus() -> tuple[Any, ...]:
    model = mlp()
    model[0].bias.data[...] = -10.0  # spiral inputs lie in [-1, 1]: no unit of layer 1 ever fires
    return model, CE(), spiral(), gw.optim.Adam(model.parameters(), lr=1e-2)


def saturated_sigmoids() -> tuple[Any, ...]:
    model = mlp(act=Sigmoid)
    for p in model.parameters():
        if p.data.ndim == 2:
            p.data *= 30.0
    return model, CE(), spiral(), gw.optim.Adam(model.parameters(), lr=1e-2)


def overfitting() -> tuple[Any, ...]:
    """A large MLP on 100 MNIST-1D samples, judged on 500 others: high variance."""
    x, y, x_test, y_test = gw.data.load_mnist1d()
    gw.manual_seed(0)
    model = gw.Sequential(Linear(40, 128), ReLU(), Linear(128, 128), ReLU(), Linear(128, 10))
    data = (x[:100], y[:100], x_test[:500], y_test[:500])
    return model, CE(), data, gw.optim.Adam(model.parameters(), lr=1e-3)


def underfitting() -> tuple[Any, ...]:
    """A linear classifier on the spiral: high bias."""
    gw.manual_seed(0)
    model = gw.Sequential(Linear(2, 3))
    return model, CE(), spiral(), gw.optim.Adam(model.parameters(), lr=1e-2)
