"""Losses and weight penalties.

A loss's `forward(scores, y)` returns the loss as a Python float and caches what `backward()` needs;
`backward()` returns dL/dscores with the shape and dtype of `scores`. With `reduction="mean"` (the
default) classification losses average over the batch and MSE/BCEWithLogits over all elements, as
in PyTorch; `reduction="sum"` adds instead.

Penalties (`L1`, `L2`, `ElasticNet`) add a term to the loss (`value(params)`) and its gradient to
each parameter's `.grad` (`backward(params)`); by default they apply to weights only (parameters
with 2 or more dimensions), not to biases or normalization scales.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gradwise.core import Parameter


def _check_reduction(owner: str, reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{owner}: {reduction=} must be 'mean' or 'sum'")


def _float_scores(scores: np.ndarray) -> np.ndarray:
    """Scores as a floating array (integer scores would truncate the scale factors and margins)."""
    scores = np.asarray(scores)
    return scores if np.issubdtype(scores.dtype, np.floating) else scores.astype(np.float32)


def _class_labels(owner: str, scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Validate integer labels for (N, C) scores and return them as intp."""
    if scores.ndim != 2:
        raise ValueError(f"{owner}: scores must have shape (N, C), got {scores.shape}")
    y = np.asarray(y)
    if y.shape != (scores.shape[0],):
        raise ValueError(f"{owner}: labels of shape {y.shape} do not match scores of shape {scores.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if y.size and np.any(y != np.round(y)):
            raise ValueError(f"{owner}: labels must be integers, got dtype {y.dtype}")
        y = y.astype(np.intp)
    if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
        bad = y[(y < 0) | (y >= scores.shape[1])][0]
        raise ValueError(
            f"{owner}: label {bad} is out of range for {scores.shape[1]} classes (valid: 0..{scores.shape[1] - 1})"
        )
    return y.astype(np.intp, copy=False)


class Loss:
    """Base of all losses: `forward(scores, y) -> float` then `backward() -> dL/dscores`."""

    def __init__(self, reduction: str = "mean") -> None:
        _check_reduction(type(self).__name__, reduction)
        self.reduction = reduction
        self._grad: np.ndarray | None = None

    def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def __call__(self, scores: np.ndarray, y: np.ndarray) -> float:
        return self.forward(scores, y)

    def backward(self) -> np.ndarray:
        """dL/dscores for the last `forward`; the loss gradient is computed in forward and handed over."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward was called before forward")
        grad, self._grad = self._grad, None
        return grad

    def _scale(self, n: int) -> float:
        return 1.0 / n if self.reduction == "mean" else 1.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class SoftmaxCrossEntropy(Loss):
    """L = -log softmax(s)_y, with the fused gradient softmax(s) - onehot(y).

    Numerically stable: the row maximum is subtracted before exponentiating and log-softmax is
    computed as (s - max) - log(sum exp(s - max)). Equals `torch.nn.CrossEntropyLoss`.

    Shapes: scores (N, C) float, y (N,) integers in [0, C).
    """

    def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
        scores = _float_scores(scores)
        y = _class_labels("SoftmaxCrossEntropy", scores, y)
        n = scores.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        log_prob_y = shifted[rows, y] - np.log(sum_exp[:, 0])
        # d/ds of -log p_y is p - onehot(y); the reduction scales it.
        exp /= sum_exp
        exp[rows, y] -= 1
        exp *= scores.dtype.type(self._scale(n))
        self._grad = exp
        return float(-log_prob_y.sum() * self._scale(n))


class MulticlassHinge(Loss):
    """The multiclass SVM loss, L_i = sum_{j != y_i} max(0, margin - s_{y_i} + s_j)^p / C.

    With ``divide_by_classes=True`` (the default) this equals `torch.nn.MultiMarginLoss`, which
    divides each sample's sum by the number of classes C. Weston & Watkins (1999) and CS231n do not
    divide: pass ``divide_by_classes=False`` for that form.

    Shapes: scores (N, C) float, y (N,) integers in [0, C).
    """

    def __init__(
        self, margin: float = 1.0, p: int = 1, divide_by_classes: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        if p not in (1, 2):
            raise ValueError(f"MulticlassHinge: {p=} must be 1 or 2")
        if margin < 0:
            raise ValueError(f"MulticlassHinge: {margin=} must be >= 0")
        self.margin = float(margin)
        self.p = p
        self.divide_by_classes = divide_by_classes

    def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
        scores = _float_scores(scores)
        y = _class_labels("MulticlassHinge", scores, y)
        n, c = scores.shape
        rows = np.arange(n)
        margins = scores - scores[rows, y][:, None] + scores.dtype.type(self.margin)
        margins[rows, y] = 0
        np.maximum(margins, 0, out=margins)
        scale = self._scale(n) / (c if self.divide_by_classes else 1)
        # dL/ds_j = p * m_j^(p-1) for each violating j; s_y gets minus their sum.
        dm = (margins > 0).astype(scores.dtype) if self.p == 1 else 2 * margins
        dm[rows, y] = -dm.sum(axis=1)
        dm *= scores.dtype.type(scale)
        self._grad = dm
        return float((margins if self.p == 1 else margins**2).sum() * scale)

    def __repr__(self) -> str:
        return f"MulticlassHinge(margin={self.margin}, p={self.p}, divide_by_classes={self.divide_by_classes})"


class MSE(Loss):
    """L = mean((s - y)^2) over all elements (`torch.nn.MSELoss`); gradient 2 (s - y) / numel.

    Shapes: scores and y the same shape, e.g. (N,) or (N, D).
    """

    def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
        scores = _float_scores(scores)
        y = np.asarray(y, dtype=scores.dtype)
        if scores.shape != y.shape:
            raise ValueError(f"MSE: targets of shape {y.shape} do not match scores of shape {scores.shape}")
        diff = scores - y
        scale = self._scale(scores.size)
        self._grad = diff * scores.dtype.type(2 * scale)
        return float(np.dot(diff.ravel(), diff.ravel()) * scale)


class BCEWithLogits(Loss):
    """Binary cross-entropy on logits: L = max(s, 0) - s y + log(1 + exp(-|s|)).

    The stable form of -[y log sigmoid(s) + (1 - y) log(1 - sigmoid(s))]
    (`torch.nn.BCEWithLogitsLoss`); gradient (sigmoid(s) - y) / numel. Targets may be soft, in [0, 1].

    Shapes: scores and y the same shape, e.g. (N,) or (N, K) for K independent labels.
    """

    def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
        scores = _float_scores(scores)
        y = np.asarray(y, dtype=scores.dtype)
        if scores.shape != y.shape:
            raise ValueError(f"BCEWithLogits: targets of shape {y.shape} do not match scores of shape {scores.shape}")
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError("BCEWithLogits: targets must lie in [0, 1]")
        e = np.exp(-np.abs(scores))
        losses = np.maximum(scores, 0) - scores * y + np.log1p(e)
        sig = np.where(scores >= 0, 1 / (1 + e), e / (1 + e))
        scale = self._scale(scores.size)
        self._grad = ((sig - y) * scale).astype(scores.dtype, copy=False)
        return float(losses.sum() * scale)


# ---------------------------------------------------------------------------------------- penalties


class Penalty:
    """A weight penalty R(w) added to the loss; `backward` adds dR/dw to each parameter's grad.

    `weights_only=True` applies it to parameters with 2 or more dimensions (weights of Linear and
    Conv layers), leaving biases and normalization parameters alone, as is usual.
    """

    def __init__(self, weights_only: bool = True) -> None:
        self.weights_only = weights_only

    def _targets(self, params: Iterable[Parameter]) -> list[Parameter]:
        return [p for p in params if p.requires_grad and (p.data.ndim >= 2 or not self.weights_only)]

    def term(self, w: np.ndarray) -> float:
        raise NotImplementedError

    def grad(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def value(self, params: Iterable[Parameter]) -> float:
        return float(sum(self.term(p.data) for p in self._targets(params)))

    __call__ = value

    def backward(self, params: Iterable[Parameter]) -> None:
        for p in self._targets(params):
            p.grad += self.grad(p.data)


class L1(Penalty):
    """R(w) = strength * sum |w|; subgradient strength * sign(w) (0 at 0). Encourages sparse weights."""

    def __init__(self, strength: float, weights_only: bool = True) -> None:
        super().__init__(weights_only)
        if strength < 0:
            raise ValueError(f"L1: {strength=} must be >= 0")
        self.strength = float(strength)

    def term(self, w: np.ndarray) -> float:
        return self.strength * float(np.abs(w).sum())

    def grad(self, w: np.ndarray) -> np.ndarray:
        return np.sign(w) * w.dtype.type(self.strength)

    def __repr__(self) -> str:
        return f"L1(strength={self.strength})"


class L2(Penalty):
    """R(w) = strength / 2 * sum w^2; gradient strength * w.

    The 1/2 makes `L2(lam)` add exactly what SGD's `weight_decay=lam` adds to the gradient (Keras'
    `l2(l)` has no 1/2: `L2(2 * l)` is Keras' `l2(l)`).
    """

    def __init__(self, strength: float, weights_only: bool = True) -> None:
        super().__init__(weights_only)
        if strength < 0:
            raise ValueError(f"L2: {strength=} must be >= 0")
        self.strength = float(strength)

    def term(self, w: np.ndarray) -> float:
        return 0.5 * self.strength * float(np.dot(w.ravel(), w.ravel()))

    def grad(self, w: np.ndarray) -> np.ndarray:
        return w * w.dtype.type(self.strength)

    def __repr__(self) -> str:
        return f"L2(strength={self.strength})"


class ElasticNet(Penalty):
    """R(w) = l1 * sum |w| + l2 / 2 * sum w^2 (Zou & Hastie, 2005), the sum of `L1(l1)` and `L2(l2)`."""

    def __init__(self, l1: float, l2: float, weights_only: bool = True) -> None:
        super().__init__(weights_only)
        self._l1 = L1(l1, weights_only)
        self._l2 = L2(l2, weights_only)

    def term(self, w: np.ndarray) -> float:
        return self._l1.term(w) + self._l2.term(w)

    def grad(self, w: np.ndarray) -> np.ndarray:
        return self._l1.grad(w) + self._l2.grad(w)

    def __repr__(self) -> str:
        return f"ElasticNet(l1={self._l1.strength}, l2={self._l2.strength})"
