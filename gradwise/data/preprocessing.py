"""Input preprocessing: per-feature standardization and one-hot labels.

Statistics are fit on the training data only and then applied unchanged to dev and test data;
fitting on all data leaks information about the held-out parts into the model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Standardizer", "one_hot"]


class Standardizer:
    """Shift and scale every feature to zero mean and unit variance: ``(x - mean) / std``.

    ``mean`` and ``std`` are taken per feature over the samples (axis 0) of the training data, in
    float64, and kept in float64; the transforms return the input's floating dtype (float32 stays
    float32) and integer inputs become float64.

    Parameters
    ----------
    eps : float
        Features whose std is below `eps` are treated as constant and get scale 1 (they are only
        centered). Dividing by a floor like `eps` instead would blow the rounding error of the mean
        up by 1/eps; scale 1 keeps such features at (about) zero.

    Attributes
    ----------
    mean : (F...) float64 or None
        Per-feature mean; None before `fit`. ``F...`` is ``x.shape[1:]``.
    scale : (F...) float64 or None
        Per-feature std, with 1 for constant features; None before `fit`.

    Examples
    --------
    >>> std = Standardizer()
    >>> x_train = std.fit_transform(x_train)   # statistics from the training set only
    >>> x_test = std.transform(x_test)
    """

    def __init__(self, eps: float = 1e-8) -> None:
        if not eps > 0:
            raise ValueError(f"{eps=} must be positive")
        self.eps = float(eps)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> Standardizer:
        """Compute the per-feature mean and std of `x`.

        Parameters
        ----------
        x : (N, F...) array
            Training samples along axis 0, N >= 1.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If `x` has no sample axis, no samples, or NaN/inf values (the message lists the columns).
        """
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"Standardizer.fit needs x of shape (N, ...) with N >= 1, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise ValueError(f"Standardizer.fit needs real numbers, got dtype {x.dtype}")
        bad = ~np.isfinite(x).all(axis=0)
        if bad.any():
            # a 1-D x is one feature, column 0; n-D features are named by their index tuple
            where = np.argwhere(np.atleast_1d(bad))
            cols = [int(c[0]) if len(c) == 1 else tuple(int(i) for i in c) for c in where]
            raise ValueError(f"Standardizer.fit: x has NaN or inf values in column(s) {cols}")
        mean = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
        self.mean = np.asarray(mean)
        self.scale = np.where(std < self.eps, 1.0, std)
        return self

    def _check(self, x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.mean is None or self.scale is None:
            raise RuntimeError(f"Standardizer.{method} called before fit (or load_state_dict)")
        x = np.asarray(x)
        if x.shape[1:] != self.mean.shape:
            raise ValueError(
                f"Standardizer.{method}: fit on features of shape {self.mean.shape}, "
                f"got x of shape {x.shape} (features {x.shape[1:]})"
            )
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        return x, self.mean.astype(dtype, copy=False), self.scale.astype(dtype, copy=False)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / scale``.

        Parameters
        ----------
        x : (M, F...) array

        Returns
        -------
        (M, F...) array, a new array in the dtype of `x` (float64 for integer input).
        """
        x, mean, scale = self._check(x, "transform")
        out = np.subtract(x, mean, dtype=mean.dtype)
        np.divide(out, scale, out=out)
        return out

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """`fit` on `x`, then `transform` it."""
        return self.fit(x).transform(x)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """``x * scale + mean``, undoing `transform`.

        Parameters
        ----------
        x : (M, F...) array

        Returns
        -------
        (M, F...) array in the dtype of `x` (float64 for integer input).
        """
        x, mean, scale = self._check(x, "inverse_transform")
        out = np.multiply(x, scale, dtype=scale.dtype)
        np.add(out, mean, out=out)
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the fitted statistics: ``{"mean": (F...), "scale": (F...)}`` float64."""
        if self.mean is None or self.scale is None:
            raise RuntimeError("Standardizer.state_dict called before fit")
        return {"mean": self.mean.copy(), "scale": self.scale.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore statistics saved by `state_dict`."""
        missing = {"mean", "scale"} - set(state)
        unexpected = set(state) - {"mean", "scale"}
        if missing or unexpected:
            raise ValueError(
                f"Standardizer.load_state_dict: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}"
            )
        mean = np.array(state["mean"], dtype=np.float64)
        scale = np.array(state["scale"], dtype=np.float64)
        if mean.shape != scale.shape:
            raise ValueError(f"Standardizer.load_state_dict: mean shape {mean.shape} != scale shape {scale.shape}")
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("Standardizer.load_state_dict: scale must be finite and positive")
        self.mean, self.scale = mean, scale

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean is None else f"features={self.mean.shape}"
        return f"Standardizer(eps={self.eps}, {fitted})"


def one_hot(y: np.ndarray, num_classes: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """One-hot encode integer labels.

    Parameters
    ----------
    y : (...) int array
        Labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes C.
    dtype : numpy dtype
        Dtype of the result.

    Returns
    -------
    (..., C) array with a single 1 per label.

    Examples
    --------
    >>> one_hot(np.array([2, 0]), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]], dtype=float32)
    """
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"{num_classes=} must be a positive int")
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"one_hot: y must hold integer labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    out = np.zeros((*y.shape, num_classes), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
