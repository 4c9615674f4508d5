"""What `gradwise.diagnostics.diagnose` checks before it runs or writes anything, and how it splits
the data: pure functions of the model, the loss and the arrays (no training)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from gradwise.core import Layer
from gradwise.data.splits import train_test_split
from gradwise.losses import MSE, Loss

__all__ = ["Data", "check_budgets", "check_inputs", "model_width", "split"]

Data = Sequence[np.ndarray]


def check_inputs(model: Layer, loss: Loss, data: Data, *, overfit_samples: int = 20) -> list[np.ndarray]:
    """What `diagnose` checks before it runs or writes anything: the data are finite, of matching
    lengths and big enough, and the model's output fits the loss and every target. Raises a
    one-line ValueError; returns the arrays."""
    xs = _check_data(data, overfit_samples)
    _check_fit(model, loss, xs)
    return xs


def _check_data(data: Data, overfit_samples: int) -> list[np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 4):
        raise ValueError("diagnose: data must be (x_train, y_train) or (x_train, y_train, x_dev, y_dev)")
    names = ("x_train", "y_train", "x_dev", "y_dev")
    arrays = [np.asarray(a) for a in data]
    for name, a in zip(names, arrays):
        if a.ndim == 0 or len(a) == 0:
            raise ValueError(f"diagnose: {name} is empty or not an array (shape {a.shape})")
        if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a.reshape(len(a), -1)))[0][0])
            raise ValueError(f"diagnose: {name} holds NaN or inf (first in sample {row}); clean or impute the data first")
    for i in (0, 2)[: len(arrays) // 2]:
        if len(arrays[i]) != len(arrays[i + 1]):
            raise ValueError(f"diagnose: {names[i]} has {len(arrays[i])} samples but {names[i + 1]} has {len(arrays[i + 1])}")
    if len(arrays[0]) < max(2 * overfit_samples, 20):
        raise ValueError(f"diagnose: x_train has {len(arrays[0])} samples; need at least {max(2 * overfit_samples, 20)}")
    return arrays


def check_budgets(**budgets: int) -> None:
    for name, v in budgets.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"diagnose: {name}={v!r} must be an integer >= 1")


def cast(x: np.ndarray, net: Layer) -> np.ndarray:
    return x.astype(net.dtype) if np.issubdtype(x.dtype, np.floating) and x.dtype != net.dtype else x


def _check_fit(model: Layer, loss: Loss, xs: list[np.ndarray]) -> int:
    """The model must take the inputs and its output fit the loss and every target; returns its width."""
    net = copy.deepcopy(model).eval()
    x = xs[0][:2]
    try:
        out = np.asarray(net.forward(cast(x, net)))
    except (ValueError, TypeError) as e:
        raise ValueError(f"diagnose: the model does not take inputs of shape {xs[0].shape[1:]}: {e}") from None
    for name, y in (("y_train", xs[1]), ("y_dev", xs[3] if len(xs) == 4 else None)):
        if y is None:
            continue
        try:
            loss.forward(np.zeros((len(y), *out.shape[1:]), dtype=out.dtype), y)
        except (ValueError, TypeError, IndexError) as e:
            raise ValueError(f"diagnose: the model's output {out.shape[1:]} does not fit {type(loss).__name__} with {name} of shape {y.shape}: {e}") from None
    if isinstance(loss, MSE) and out.ndim > 2:
        raise ValueError(f"diagnose: MSE on outputs of shape {out.shape[1:]}: expected (N,) or (N, D)")
    return int(out.shape[1]) if out.ndim > 1 else 1


def split(xs: list[np.ndarray], frac: float, classify: bool, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x, y = xs[0], xs[1]
    strat = y if classify and y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and np.bincount(y).min(initial=2) >= 2 else None
    x_a, x_b, y_a, y_b = train_test_split(x, y, test=frac, stratify=strat, rng=rng)
    if len(xs) == 4:
        return {"train": (x_a, y_a), "train_dev": (x_b, y_b), "dev": (xs[2], xs[3])}
    return {"train": (x_a, y_a), "dev": (x_b, y_b)}




def model_width(model: Layer, x: np.ndarray) -> int:
    """The width of the model's output (its number of classes): C for (N, C), 1 for (N,)."""
    net = copy.deepcopy(model).eval()
    out = np.asarray(net.forward(cast(x[:2], net)))
    return int(out.shape[1]) if out.ndim > 1 else 1
