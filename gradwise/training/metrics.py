"""Metrics: plain functions ``metric(scores, y) -> float``.

A metric's ``__name__`` is its key in the epoch logs and in `History` (``"accuracy"``, and
``"val_accuracy"`` for the validation set). The `Trainer` calls each metric once per epoch on the
concatenated scores of the whole epoch, so the value is exact rather than a mean of batch values.
To write your own, define a function with a telling name::

    def balanced_accuracy(scores, y): ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["accuracy", "top_k_accuracy", "rmse", "mae", "check_metrics", "EpochAccumulator"]

Metric = Callable[[np.ndarray, np.ndarray], float]

# Keys of the epoch logs that are not metrics: no metric may take these names.
RESERVED_KEYS = ("loss", "epoch", "lr", "time")


def _predicted_classes(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class indices, both of shape (N,)."""
    scores = np.asarray(scores)
    y = np.asarray(y)
    if scores.ndim == 0 or scores.shape[0] == 0:
        raise ValueError(
            f"accuracy: scores must have shape (N,), (N, 1) or (N, C) with N >= 1, got {scores.shape}"
        )
    n = scores.shape[0]
    if scores.ndim == 2 and scores.shape[1] > 1:
        pred = scores.argmax(axis=1)
        if y.shape == scores.shape:  # one-hot (or soft) targets
            y = y.argmax(axis=1)
    elif scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        # Binary logits: sigmoid(s) > 0.5  <=>  s > 0. Soft targets count as their nearest class.
        pred = (scores.reshape(n) > 0).astype(np.intp)
        if y.size == n and np.issubdtype(y.dtype, np.floating):
            y = (y >= 0.5).astype(np.intp)
    else:
        raise ValueError(f"accuracy: scores must have shape (N,), (N, 1) or (N, C), got {scores.shape}")
    y = y.reshape(-1) if y.size == n else y
    if y.shape != (n,):
        raise ValueError(
            f"accuracy: labels of shape {np.shape(y)} do not match scores of shape {scores.shape}"
        )
    return pred, y


def accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose predicted class equals the label.

    Parameters
    ----------
    scores : (N, C) class scores (prediction = argmax), or (N,) / (N, 1) binary logits
        (prediction = ``scores > 0``, i.e. ``sigmoid(scores) > 0.5``).
    y : (N,) integer labels; (N, C) one-hot targets for (N, C) scores; for binary logits,
        (N,) or (N, 1) targets in {0, 1} (soft targets count as ``y >= 0.5``).

    Returns
    -------
    float in [0, 1]
    """
    pred, y = _predicted_classes(scores, y)
    return float(np.mean(pred == y))


def top_k_accuracy(k: int) -> Metric:
    """A metric counting a sample as correct when its label is among the `k` highest scores.

    Parameters
    ----------
    k : int
        At least 1; ``top_k_accuracy(1)`` equals `accuracy` for (N, C) scores.

    Returns
    -------
    callable
        ``metric(scores, y) -> float`` named ``top{k}_accuracy`` (its key in the logs), for
        scores (N, C) with C >= k and labels (N,).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k_accuracy: {k=} must be an integer >= 1")
    k = int(k)

    def metric(scores: np.ndarray, y: np.ndarray) -> float:
        scores = np.asarray(scores)
        y = np.asarray(y)
        if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < k:
            raise ValueError(
                f"top{k}_accuracy: scores must have shape (N, C) with N >= 1 and C >= {k}, got {scores.shape}"
            )
        if y.shape != (scores.shape[0],):
            raise ValueError(
                f"top{k}_accuracy: labels of shape {y.shape} do not match scores of shape {scores.shape}"
            )
        # A label is in the top k iff fewer than k classes score strictly higher (ties favour the label),
        # which needs no sort: O(N C) instead of O(N C log C).
        true_score = np.take_along_axis(scores, y.astype(np.intp)[:, None], axis=1)
        n_higher = np.count_nonzero(scores > true_score, axis=1)
        return float(np.mean(n_higher < k))

    metric.__name__ = metric.__qualname__ = f"top{k}_accuracy"
    metric.__doc__ = f"Fraction of samples whose label is among the {k} highest scores."
    return metric


def _regression_pair(name: str, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred)
    y = np.asarray(y)
    if pred.size == 0:
        raise ValueError(f"{name}: no predictions")
    if pred.shape != y.shape:
        # (N, 1) predictions against (N,) targets is the usual single-output regression case.
        if pred.size == y.size and pred.shape[0] == y.shape[0]:
            y = y.reshape(pred.shape)
        else:
            raise ValueError(
                f"{name}: targets of shape {y.shape} do not match predictions of shape {pred.shape}"
            )
    return pred.astype(np.float64, copy=False) - y.astype(np.float64, copy=False)


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    """Root mean squared error, sqrt(mean((pred - y)^2)) over all elements (computed in float64).

    Shapes: `pred` and `y` the same shape, or (N, 1) against (N,).
    """
    diff = _regression_pair("rmse", pred, y).ravel()
    return float(np.sqrt(np.dot(diff, diff) / diff.size))


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute error, mean(|pred - y|) over all elements (computed in float64).

    Shapes: `pred` and `y` the same shape, or (N, 1) against (N,).
    """
    return float(np.mean(np.abs(_regression_pair("mae", pred, y))))


def check_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    """Check that each metric is callable and has a unique name usable as a logs key.

    Raises
    ------
    TypeError
        For something that is not a named callable.
    ValueError
        For a lambda (its name, ``<lambda>``, would be its key), a name clashing with ``loss``,
        ``epoch``, ``lr``, ``time`` or ``val_*``, or two metrics of the same name.
    """
    checked: list[Metric] = []
    names: set[str] = set()
    for i, m in enumerate(metrics):
        name = getattr(m, "__name__", None)
        if not callable(m) or not isinstance(name, str):
            raise TypeError(f"metrics[{i}] must be a function metric(scores, y) -> float, got {m!r}")
        if name == "<lambda>" or not name.isidentifier():
            raise ValueError(
                f"metrics[{i}] is named {name!r}; its name becomes its key in the logs, so define it "
                f"with `def` (or set its __name__)"
            )
        if name in RESERVED_KEYS or name.startswith("val_"):
            raise ValueError(
                f"metric name {name!r} clashes with a logs key (reserved: {RESERVED_KEYS} and 'val_*')"
            )
        if name in names:
            raise ValueError(f"two metrics are named {name!r}")
        names.add(name)
        checked.append(m)
    return checked


class EpochAccumulator:
    """Exact per-epoch loss and metrics from batches (used by `Trainer.fit` and `Trainer.evaluate`).

    The epoch loss is the sample-weighted mean of the batch losses (for a ``reduction="sum"``
    loss, their total); metrics run once on the concatenated scores, not as a mean of batch
    values (a mean of batch accuracies is off when the last batch is smaller).

    Parameters
    ----------
    loss : Loss
        Only its ``reduction`` is read.
    metrics : sequence of metric functions
        Scores and labels are kept only when there is at least one.
    """

    def __init__(self, loss: object, metrics: Sequence[Metric]) -> None:
        self.sum_reduction = getattr(loss, "reduction", "mean") == "sum"
        self.metrics = list(metrics)
        self.total = 0.0
        self.seen = 0
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, value: float, scores: np.ndarray, y: np.ndarray) -> None:
        """Record one batch: its loss `value`, scores (n, ...) and targets (n, ...)."""
        n = len(y)
        self.total += value if self.sum_reduction else value * n
        self.seen += n
        if self.metrics:
            # A copy: a layer may hand back a buffer it overwrites on the next forward.
            self.scores.append(np.array(scores, copy=True))
            self.labels.append(np.asarray(y))

    def loss(self) -> float:
        """The epoch loss so far."""
        return self.total if self.sum_reduction else self.total / max(self.seen, 1)

    def results(self, owner: str) -> dict[str, float]:
        """``{"loss": ..., <metric>: ...}``; `owner` names the loader in the error for an empty one."""
        if self.seen == 0:
            raise ValueError(f"{owner} yielded no batches")
        results = {"loss": self.loss()}
        if self.metrics:
            scores = np.concatenate(self.scores) if len(self.scores) > 1 else self.scores[0]
            labels = np.concatenate(self.labels) if len(self.labels) > 1 else self.labels[0]
            results.update({m.__name__: float(m(scores, labels)) for m in self.metrics})
        return results
