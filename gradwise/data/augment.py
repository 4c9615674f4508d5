"""Data augmentation for training batches: crops, flips, noise and shifts.

Each function returns a transform ``t(xb, rng) -> xb`` that works on a whole batch at once (one
draw of random numbers per batch, one gather; no loop over samples), for a `DataLoader`'s
``transform=`` argument. Transforms are deterministic given the generator's state, return new
arrays (the input batch is never modified) and return the batch itself when their parameter
makes them the identity (``padding=0``, ``p=0``, ``std=0``, ``max_shift=0``).

Augment training batches only: a validation or test loader without a transform measures the
model on the data as it is.

Layouts: images are (N, C, H, W) or (N, H, W); sequences (N, L) or (N, C, L). A transform acts
on the trailing axes (H and W for images, L for sequences) and is the same on every channel of
a sample.

Examples
--------
>>> from gradwise.data import DataLoader
>>> from gradwise.data import augment
>>> t = augment.compose(augment.random_crop(4), augment.horizontal_flip(0.5))
>>> train = DataLoader(X_train, y_train, batch_size=128, shuffle=True, transform=t)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["compose", "gaussian_noise", "horizontal_flip", "random_crop", "random_shift_1d"]

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def random_crop(padding: int) -> Transform:
    """Pad each image by `padding` zeros on every side, then crop it back at a random offset.

    The CIFAR recipe (He et al., 2016; torchvision's ``RandomCrop(size, padding)``): each sample
    gets its own offset (dy, dx), uniform in ``[0, 2 * padding]`` per axis, so its content moves
    by up to `padding` pixels in each direction, zeros filling in.

    Parameters
    ----------
    padding : int
        >= 0; 0 is the identity.

    Shapes
    ------
    xb : (N, C, H, W) or (N, H, W) -> the same shape and dtype.
    """
    padding = _non_negative_int("random_crop", "padding", padding)

    def crop(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        xb = _batch("random_crop", xb, (3, 4), "images (N, C, H, W) or (N, H, W)")
        if padding == 0:
            return xb
        offsets = rng.integers(0, 2 * padding + 1, size=(len(xb), 2))
        widths = [(0, 0)] * (xb.ndim - 2) + [(padding, padding)] * 2
        return _windows_at(np.pad(xb, widths), xb.shape[-2:], offsets)

    crop.__name__ = f"random_crop({padding})"
    return crop


def horizontal_flip(p: float = 0.5) -> Transform:
    """Mirror each image left-right (reverse its last axis) with probability `p`.

    Parameters
    ----------
    p : float
        Probability of flipping each sample, in [0, 1]; 0 is the identity.

    Shapes
    ------
    xb : (N, C, H, W), (N, H, W), or any (N, ..., W) -> the same shape and dtype.
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"horizontal_flip: {p=} must be in [0, 1]")

    def flip(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        xb = _batch("horizontal_flip", xb, None, "a batch (N, ..., W)")
        if p == 0.0:
            return xb
        chosen = np.flatnonzero(rng.random(len(xb)) < p)
        out = xb.copy()
        out[chosen] = xb[chosen, ..., ::-1]
        return out

    flip.__name__ = f"horizontal_flip({p})"
    return flip


def gaussian_noise(std: float) -> Transform:
    """Add independent N(0, std^2) noise to every element (Bishop, 1995: training with noise
    is equivalent to Tikhonov regularization).

    Parameters
    ----------
    std : float
        Standard deviation, >= 0; 0 is the identity.

    Shapes
    ------
    xb : any floating (N, ...) -> the same shape and dtype (the noise is drawn in that dtype).
    """
    std = float(std)
    if not std >= 0.0:
        raise ValueError(f"gaussian_noise: {std=} must be >= 0")

    def noise(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        xb = _batch("gaussian_noise", xb, None, "a batch (N, ...)")
        if not np.issubdtype(xb.dtype, np.floating):
            raise TypeError(f"gaussian_noise: the batch must be floating, got dtype {xb.dtype}")
        if std == 0.0:
            return xb
        dtype = xb.dtype if xb.dtype in (np.float32, np.float64) else np.float64
        out = rng.standard_normal(xb.shape, dtype=dtype)
        out *= std
        out += xb
        return out.astype(xb.dtype, copy=False)

    noise.__name__ = f"gaussian_noise({std})"
    return noise


def random_shift_1d(max_shift: int, mode: str = "wrap") -> Transform:
    """Shift each sequence along time by a random whole number of steps in [-max_shift, max_shift].

    Positive shifts move the content later (``np.roll``'s direction). With ``mode="wrap"`` what
    leaves one end comes back at the other (a circular shift, the augmentation of the MNIST-1D
    paper); with ``mode="zeros"`` the vacated steps are zero.

    Parameters
    ----------
    max_shift : int
        >= 0; 0 is the identity.
    mode : {"wrap", "zeros"}

    Shapes
    ------
    xb : (N, L) or (N, C, L) -> the same shape and dtype; every channel of a sample moves together.
    """
    max_shift = _non_negative_int("random_shift_1d", "max_shift", max_shift)
    if mode not in ("wrap", "zeros"):
        raise ValueError(f"random_shift_1d: {mode=} must be 'wrap' or 'zeros'")
    pad_mode: Literal["wrap", "constant"] = "wrap" if mode == "wrap" else "constant"

    def shift(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        xb = _batch("random_shift_1d", xb, (2, 3), "sequences (N, L) or (N, C, L)")
        if max_shift == 0:
            return xb
        # A window of length L at offset o of the padded sequence is x shifted by max_shift - o.
        offsets = rng.integers(0, 2 * max_shift + 1, size=(len(xb), 1))
        widths = [(0, 0)] * (xb.ndim - 1) + [(max_shift, max_shift)]
        return _windows_at(np.pad(xb, widths, mode=pad_mode), xb.shape[-1:], offsets)

    shift.__name__ = f"random_shift_1d({max_shift}, {mode!r})"
    return shift


def compose(*transforms: Transform) -> Transform:
    """Apply `transforms` in order, all with the same generator."""
    for i, t in enumerate(transforms):
        if not callable(t):
            raise TypeError(f"compose: item {i} is {type(t).__name__}, not a transform (xb, rng) -> xb")

    def composed(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in transforms:
            xb = t(xb, rng)
        return xb

    composed.__name__ = "compose(" + ", ".join(getattr(t, "__name__", "?") for t in transforms) + ")"
    return composed


# ---------------------------------------------------------------------------------------- helpers


def _windows_at(padded: np.ndarray, size: tuple[int, ...], offsets: np.ndarray) -> np.ndarray:
    """For every sample n, the window of `size` over the trailing axes of `padded` starting at
    `offsets[n]`: one strided view of all windows, then one fancy-indexing gather.

    padded : (N, *mid, *padded_size); offsets : (N, len(size)) -> (N, *mid, *size).
    """
    k = len(size)
    mid = padded.ndim - 1 - k
    windows = sliding_window_view(padded, size, axis=tuple(range(-k, 0)))  # (N, *mid, *starts, *size)
    n = np.arange(len(padded))
    index: tuple[Any, ...] = (n, *([slice(None)] * mid), *(offsets[:, j] for j in range(k)))
    # With slices between them the advanced indices' axis (N) goes first, without it stays first.
    return windows[index]


def _batch(name: str, xb: np.ndarray, ranks: tuple[int, ...] | None, expected: str) -> np.ndarray:
    if isinstance(xb, tuple):
        raise TypeError(
            f"{name}: got a tuple (a multi-input batch); augment each array with its own transform "
            "inside a function (xb, rng) -> tuple"
        )
    xb = np.asarray(xb)
    if xb.ndim < 2 or (ranks is not None and xb.ndim not in ranks):
        raise ValueError(f"{name}: expected {expected}, got shape {xb.shape}")
    return xb


def _non_negative_int(name: str, arg: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}: {arg}={value!r} must be an integer >= 0")
    return int(value)
