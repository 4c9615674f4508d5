"""Gradient checks: one layer, a model with a loss and a penalty, and a deliberately broken layer.

    python examples/gradcheck_demo.py

Every check runs in float64 on a copy of what it is given (see docs/gradcheck.md).
"""

from __future__ import annotations

import numpy as np

import gradwise as gw
from gradwise.diagnostics import check_layer, check_model
from gradwise.layers import GELU, Linear, Tanh
from gradwise.losses import L2, SoftmaxCrossEntropy

rng = np.random.default_rng(0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# 1. One layer: the input and every parameter against a random upstream gradient.
x = rng.standard_normal((4, 5))
print("1. Linear(5, 3)")
print(check_layer(Linear(5, 3, rng=rng), x))

# 2. A model with a loss and an L2 penalty: every parameter, and the input too. max_entries=100
#    checks 100 randomly chosen entries of each larger tensor (the "checked" column says how many).
model = gw.Sequential(Linear(2, 16, rng=rng), Tanh(), Linear(16, 16, rng=rng), GELU(), Linear(16, 3, rng=rng))
x = rng.standard_normal((8, 2))
y = rng.integers(0, 3, size=8)
print("\n2. Linear-Tanh-Linear-GELU-Linear + SoftmaxCrossEntropy + L2(1e-2)")
print(check_model(model, SoftmaxCrossEntropy(), x, y, penalty=L2(1e-2), check_input=True, max_entries=100))


# 3. A custom layer with a classic bug: Swish y = x sigmoid(x) whose backward forgets the
#    product rule (it uses sigmoid(x) instead of sigmoid(x) + x sigmoid(x) (1 - sigmoid(x))).
class BrokenSwish(gw.Layer):
    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * sigmoid(x)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise self.no_cache_error()
        s = sigmoid(self._x)
        self._x = None
        return grad_out * s  # BUG: should be grad_out * (s + x * s * (1 - s))


class Swish(BrokenSwish):
    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise self.no_cache_error()
        x, self._x = self._x, None
        s = sigmoid(x)
        return grad_out * (s + x * s * (1 - s))  # d/dx [x s(x)] = s + x s (1 - s)


x = rng.standard_normal((4, 6))
print("\n3a. BrokenSwish (backward forgets the product rule)")
report = check_layer(BrokenSwish(), x)
print(report)
print("\n3b. Swish, fixed")
print(check_layer(Swish(), x))
print(f"\nThe broken layer's report: passed={report.passed}, input reading: {report['input'].reading!r}")
