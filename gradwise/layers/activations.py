"""Element-wise activations and Maxout.

Each backward multiplies the upstream gradient by the local derivative, written in terms of what
forward already computed (the output for sigmoid/tanh/ELU, a mask for ReLU), so nothing is
recomputed. Inputs are cast to float32 unless they already are a floating type.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from gradwise.core import DEFAULT_DTYPE, Layer
from gradwise.special import erf


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(DEFAULT_DTYPE)  # kind "f": any floating dtype (issubdtype costs 0.6 us)


# Read-only zero arrays, one per (shape, memory layout, dtype) met, shared by every ReLU: NumPy 2.4's
# `np.maximum` against a scalar 0 runs without its SIMD loop, 2.5-3x slower than against a zero
# array of the same memory layout (float32, 128 x 512, F order: 35 us vs 13 us, measured on a
# 2-core AMD EPYC). The results are the same bits. At most `_ZEROS_ENTRIES` arrays of at most
# `_ZEROS_BYTES` each are kept; larger or strided inputs take the scalar, and so do small ones
# (below `_ZEROS_MIN_SIZE` entries the lookup costs more than it saves: 1.7 vs 1.4 us at 512).
_ZEROS: dict[tuple[tuple[int, ...], str | tuple[int, ...], str], np.ndarray | np.floating] = {}
_ZEROS_ENTRIES = 16
_ZEROS_BYTES = 1 << 24
_ZEROS_MIN_SIZE = 4096


def _layout(a: np.ndarray) -> str | tuple[int, ...]:
    # "C" or "F" for a contiguous array (NumPy ignores the strides of its length-1 axes: a (1, 512)
    # row is both), else the strides with those of length-1 axes as 0.
    if a.flags.c_contiguous:
        return "C"
    if a.flags.f_contiguous:
        return "F"
    return tuple(0 if n == 1 else s for n, s in zip(a.shape, a.strides))


def _zeros_like(x: np.ndarray) -> np.ndarray | np.floating:
    """Zeros to take the maximum of `x` against: a cached array laid out as `x`, else a scalar."""
    if x.size < _ZEROS_MIN_SIZE:
        return x.dtype.type(0)
    key = (x.shape, _layout(x), x.dtype.char)
    zeros = _ZEROS.get(key)
    if zeros is not None:
        return zeros
    zeros = x.dtype.type(0)
    if x.nbytes <= _ZEROS_BYTES:
        like = np.empty_like(x)  # order "K": the memory layout of x when x is dense in any order
        if _layout(like) == key[1]:  # else x is a strided view no zero array matches: the scalar
            # np.zeros (calloc) rather than zeros_like (which writes every zero): the pages of a
            # large one are never written, so they cost no resident memory (they all map the
            # kernel's one zero page) and read as fast (measured: 12.7 vs 12.1 us at 128 x 512).
            flat = np.zeros(x.size, dtype=x.dtype)
            zeros = as_strided(flat, shape=x.shape, strides=like.strides, writeable=False)
    if len(_ZEROS) >= _ZEROS_ENTRIES:
        _ZEROS.pop(next(iter(_ZEROS)), None)  # the oldest
    _ZEROS[key] = zeros  # the scalar too, so that a strided input does not allocate every call
    return zeros


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


class _Elementwise(Layer):
    """Shared plumbing: forward stores one array for backward; backward refuses without it."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: np.ndarray | None = None

    def _take_cache(self) -> np.ndarray:
        if self._cache is None:
            raise self.no_cache_error()
        cache, self._cache = self._cache, None
        return cache


class ReLU(_Elementwise):
    """max(0, x); derivative 1 where x > 0, else 0 (0 at the kink, as PyTorch)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        self._cache = x > 0
        # np.maximum rather than x * mask: a third faster (no bool-to-float cast), and -inf gives
        # 0 rather than -inf * 0 = nan (as torch.relu); nan stays nan either way.
        return np.maximum(x, _zeros_like(x))

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        mask = self._take_cache()
        return grad_out * mask if input_grad else None


class LeakyReLU(_Elementwise):
    """x if x > 0 else negative_slope * x (Maas et al., 2013)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        self._cache = x > 0
        return np.where(self._cache, x, x * x.dtype.type(self.negative_slope))

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        mask = self._take_cache()
        if not input_grad:
            return None
        return np.where(mask, grad_out, grad_out * grad_out.dtype.type(self.negative_slope))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Elementwise):
    """x if x > 0 else alpha * (exp(x) - 1) (Clevert et al., 2016); derivative 1 or alpha * exp(x).

    The derivative is computed from exp(x), not as y + alpha, which would cancel for very negative x.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        a = x.dtype.type(self.alpha)
        e = np.exp(np.minimum(x, 0))  # exp(x) on the negative side, 1 on the positive side
        self._cache = np.where(x > 0, x.dtype.type(1), a * e)
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        slope = self._take_cache()
        return grad_out * slope if input_grad else None

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)); derivative y (1 - y)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = _sigmoid(_as_float(x))
        self._cache = y
        return y

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        y = self._take_cache()
        return grad_out * y * (1 - y) if input_grad else None


class Tanh(_Elementwise):
    """tanh(x); derivative 1 - y^2."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(_as_float(x))
        self._cache = y
        return y

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        y = self._take_cache()
        return grad_out * (1 - y * y) if input_grad else None


class Softplus(_Elementwise):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's form).

    Derivative sigmoid(beta x), and 1 in the linear region.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"Softplus: {beta=} must be > 0")
        self.beta = float(beta)
        self.threshold = float(threshold)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        bx = x * x.dtype.type(self.beta)
        self._cache = bx
        # log(1 + e^z) = max(z, 0) + log1p(e^-|z|) never overflows
        soft = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / x.dtype.type(self.beta)
        return np.where(bx > self.threshold, x, soft)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        bx = self._take_cache()
        if not input_grad:
            return None
        return grad_out * np.where(bx > self.threshold, 1, _sigmoid(bx)).astype(bx.dtype, copy=False)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class GELU(_Elementwise):
    """x Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel, 2016).

    ``approximate="none"`` uses the exact erf (as PyTorch's default); ``"tanh"`` uses
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the form of BERT and GPT-2.
    Derivative (exact form): Phi(x) + x phi(x).
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: {approximate=} must be 'none' or 'tanh'")
        self.approximate = approximate
        self._aux: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        self._cache = x
        if self.approximate == "none":
            cdf = 0.5 * (1 + erf(x * x.dtype.type(1 / math.sqrt(2.0))))
            self._aux = cdf
            return x * cdf
        c = x.dtype.type(math.sqrt(2.0 / math.pi))
        t = np.tanh(c * (x + x.dtype.type(0.044715) * x**3))
        self._aux = t
        return 0.5 * x * (1 + t)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        x = self._take_cache()
        aux, self._aux = self._aux, None
        if not input_grad:
            return None
        if self.approximate == "none":
            pdf = np.exp(-0.5 * x * x) / x.dtype.type(math.sqrt(2.0 * math.pi))
            return grad_out * (aux + x * pdf)
        c = x.dtype.type(math.sqrt(2.0 / math.pi))
        dt = (1 - aux * aux) * c * (1 + x.dtype.type(3 * 0.044715) * x * x)
        return grad_out * (0.5 * (1 + aux) + 0.5 * x * dt)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Maxout(Layer):
    """The maximum over groups of `pieces` consecutive channels (Goodfellow et al., 2013).

    Put it after a `Linear(in, out * pieces)` (or a convolution with `out * pieces` channels) to get
    a maxout unit: h_i = max_j (W_ij x + b_ij). The gradient flows to the winner of each group only
    (the first one on ties, as `argmax`).

    Shapes: (N, C, *) -> (N, C // pieces, *); C must be divisible by `pieces`.
    """

    def __init__(self, pieces: int) -> None:
        super().__init__()
        if pieces < 1:
            raise ValueError(f"Maxout: {pieces=} must be >= 1")
        self.pieces = pieces
        self._arg: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        if x.ndim < 2 or x.shape[1] % self.pieces:
            raise ValueError(
                f"Maxout(pieces={self.pieces}): input of shape {x.shape} needs a channel dimension (axis 1) "
                f"divisible by {self.pieces}"
            )
        n, c = x.shape[:2]
        grouped = x.reshape(n, c // self.pieces, self.pieces, *x.shape[2:])
        self._arg = np.argmax(grouped, axis=2)
        self._shape = grouped.shape
        return np.take_along_axis(grouped, self._arg[:, :, None], axis=2)[:, :, 0]

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._arg is None or self._shape is None:
            raise self.no_cache_error()
        if not input_grad:
            self._arg = None
            return None
        grad = np.zeros(self._shape, dtype=grad_out.dtype)
        np.put_along_axis(grad, self._arg[:, :, None], grad_out[:, :, None], axis=2)
        self._arg = None
        n, groups, pieces = self._shape[:3]
        return grad.reshape(n, groups * pieces, *self._shape[3:])

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"
