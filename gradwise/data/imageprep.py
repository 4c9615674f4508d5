"""Image preprocessing fitted on the training split: mean-image subtraction, per-channel standardization.

Following the CS231n notes ("Data Preprocessing", https://cs231n.github.io/neural-networks-2/),
with the training images as ``X`` (N samples of shape F..., e.g. ``(1, 28, 28)``):

- mean subtraction: ``X - mu``, ``mu`` the mean image (`MeanImage`);
- normalization per channel: ``(X[:, c] - mu_c) / sigma_c`` with the mean and std over every sample
  and pixel of channel ``c`` (`ChannelStandardizer`; per-pixel standardization is
  `gradwise.data.Standardizer`). PCA and ZCA whitening are in `gradwise.data.whitening`.

Every transform is fitted on the training data only (fitting on the held-out data would leak it
into training), computed and kept in float64, and applied unchanged to new data. Each has
``fit``, ``transform``, ``fit_transform``, ``inverse_transform``, ``state_dict`` /
``load_state_dict`` (a dict of float64 arrays that defines the transform completely) and
``save(path)`` / ``Class.load(path)`` (a safetensors file), so the preprocessing can be saved
beside a model and applied to the data it will predict on. The transforms return the input's
floating dtype (float32 stays float32); integer input becomes float64.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from gradwise.fileio import atomic_write_bytes

__all__ = ["ChannelStandardizer", "MeanImage"]

T = TypeVar("T", bound="_Fitted")
_FORMAT = "gradwise-preprocessing"


def _check_samples(x: Any, who: str, min_samples: int = 1) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] < min_samples or x[0].size == 0:
        raise ValueError(
            f"{who} needs x of shape (N, features...) with N >= {min_samples} and at least one feature, "
            f"got shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{who} needs real numbers, got dtype {x.dtype} (x of shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError(f"{who}: x of shape {x.shape} has NaN or inf values")
    return x


def _float_dtype(x: np.ndarray) -> np.dtype:
    return x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)


class _Fitted(ABC):
    """What every preprocessing transform shares: its state as named float64 arrays, saved and loaded."""

    _KEYS: tuple[str, ...] = ()

    def _hyper(self) -> dict[str, Any]:
        """The constructor arguments, saved in a file's metadata."""
        return {}

    def _is_fitted(self) -> bool:
        return all(getattr(self, k) is not None for k in self._KEYS)

    def _require_fit(self, method: str) -> None:
        if not self._is_fitted():
            raise RuntimeError(f"{type(self).__name__}.{method} called before fit (or load_state_dict)")

    @abstractmethod
    def fit(self: T, x: np.ndarray) -> T:
        """Compute the statistics of the training data `x`."""

    @abstractmethod
    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the fitted transform to `x`."""

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """`fit` on `x`, then `transform` it."""
        return self.fit(x).transform(x)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the fitted arrays (float64); they define the transform completely."""
        self._require_fit("state_dict")
        return {k: np.array(getattr(self, k), dtype=np.float64) for k in self._KEYS}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore arrays saved by `state_dict` (checked for their keys, shapes and values)."""
        name = type(self).__name__
        missing, unexpected = set(self._KEYS) - set(state), set(state) - set(self._KEYS)
        if missing or unexpected:
            raise ValueError(
                f"{name}.load_state_dict: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}"
            )
        arrays = {k: np.array(state[k], dtype=np.float64) for k in self._KEYS}
        for k, a in arrays.items():
            if not np.isfinite(a).all():
                raise ValueError(f"{name}.load_state_dict: {k!r} (shape {a.shape}) has NaN or inf values")
        self._set_state(arrays)

    @abstractmethod
    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Check the shapes of the arrays of a state dict against each other and adopt them."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted state and the constructor arguments to a safetensors file, atomically."""
        from safetensors.numpy import save as st_save

        state = self.state_dict()
        meta = {"format": _FORMAT, "type": type(self).__name__, "arguments": json.dumps(self._hyper())}
        return atomic_write_bytes(Path(path), st_save({k: np.array(v, order="C") for k, v in state.items()}, meta))

    @classmethod
    def load(cls: type[T], path: str | os.PathLike[str]) -> T:
        """A fitted instance from a file written by `save` of this class.

        Raises
        ------
        ValueError
            The file is not such a file, or was written by another transform (both named).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load as st_load

        path = Path(path)
        data = path.read_bytes()
        try:
            header_len = int.from_bytes(data[:8], "little")
            meta = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
            state = st_load(data)
        except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError) as e:
            raise ValueError(f"{path}: not a preprocessing file written by {cls.__name__}.save ({e})") from None
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a preprocessing file written by {cls.__name__}.save")
        if meta.get("type") != cls.__name__:
            other = meta.get("type")
            raise ValueError(f"{path}: holds a {other}, not a {cls.__name__}; load it with {other}.load")
        obj = cls(**json.loads(meta.get("arguments", "{}")))
        obj.load_state_dict(state)
        return obj


class MeanImage(_Fitted):
    """Subtract the mean training image: ``x - mu``, ``mu = mean(X_train, axis=0)``.

    Attributes
    ----------
    mean : (F...) float64 or None
        The mean image, of shape ``x.shape[1:]`` (e.g. ``(1, 28, 28)``); None before `fit`.
    """

    _KEYS = ("mean",)

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> MeanImage:
        """The mean of `x` (N, F...) over its samples."""
        x = _check_samples(x, "MeanImage.fit")
        self.mean = np.asarray(x.mean(axis=0, dtype=np.float64))
        return self

    def _check(self, x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
        self._require_fit(method)
        assert self.mean is not None
        x = np.asarray(x)
        if x.shape[1:] != self.mean.shape or x.ndim < 2:
            raise ValueError(
                f"MeanImage.{method}: fit on images of shape {self.mean.shape}, got x of shape {x.shape}"
            )
        return x, self.mean.astype(_float_dtype(x), copy=False)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``x - mean`` for `x` of shape (M, F...), in the dtype of `x` (float64 for integers)."""
        x, mean = self._check(x, "transform")
        return np.subtract(x, mean, dtype=mean.dtype)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """``x + mean``."""
        x, mean = self._check(x, "inverse_transform")
        return np.add(x, mean, dtype=mean.dtype)

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean = arrays["mean"]

    def __repr__(self) -> str:
        return f"MeanImage({'unfitted' if self.mean is None else f'shape={self.mean.shape}'})"


class ChannelStandardizer(_Fitted):
    """Standardize each channel: ``(x[:, c] - mean_c) / std_c``, statistics over samples and pixels.

    For images ``(N, C, H, W)`` (any number of axes after the channel axis 1): C means and C
    standard deviations, as ``torchvision.transforms.Normalize(mean, std)`` uses them.

    Parameters
    ----------
    eps : float
        A channel whose std is below `eps` is only centered (scale 1), as in `Standardizer`.

    Attributes
    ----------
    mean, scale : (C,) float64 or None
        Per-channel mean and std (1 for a constant channel); None before `fit`.
    """

    _KEYS = ("mean", "scale")

    def __init__(self, eps: float = 1e-8) -> None:
        if not eps > 0:
            raise ValueError(f"{eps=} must be positive")
        self.eps = float(eps)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _hyper(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def fit(self, x: np.ndarray) -> ChannelStandardizer:
        """Per-channel mean and std of `x` of shape (N, C, ...)."""
        x = _check_samples(x, "ChannelStandardizer.fit")
        axes = (0, *range(2, x.ndim))
        self.mean = x.mean(axis=axes, dtype=np.float64)
        std = x.std(axis=axes, dtype=np.float64)
        self.scale = np.where(std < self.eps, 1.0, std)
        return self

    def _check(self, x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._require_fit(method)
        assert self.mean is not None and self.scale is not None
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"ChannelStandardizer.{method}: fit on {self.mean.shape[0]} channels (axis 1), "
                f"got x of shape {x.shape}"
            )
        dtype = _float_dtype(x)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x, self.mean.astype(dtype).reshape(shape), self.scale.astype(dtype).reshape(shape)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean_c) / scale_c`` for `x` of shape (M, C, ...)."""
        x, mean, scale = self._check(x, "transform")
        out = np.subtract(x, mean, dtype=mean.dtype)
        np.divide(out, scale, out=out)
        return out

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """``x * scale_c + mean_c``."""
        x, mean, scale = self._check(x, "inverse_transform")
        out = np.multiply(x, scale, dtype=scale.dtype)
        np.add(out, mean, out=out)
        return out

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        mean, scale = arrays["mean"], arrays["scale"]
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise ValueError(
                f"ChannelStandardizer.load_state_dict: mean shape {mean.shape} and scale shape {scale.shape} "
                "must be the same (C,)"
            )
        if not (scale > 0).all():
            raise ValueError("ChannelStandardizer.load_state_dict: scale must be positive")
        self.mean, self.scale = mean, scale

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean is None else f"channels={self.mean.shape[0]}"
        return f"ChannelStandardizer(eps={self.eps}, {fitted})"
