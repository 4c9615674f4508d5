"""Pooling: MaxPool1d/2d, AvgPool1d/2d and GlobalAvgPool.

Like the convolutions (`gradwise.layers.conv`), the 1-d layers run the 2-d code on height-1
images. A pooling window of k_h x k_w cells is visited one kernel offset (i, j) at a time: for a
fixed offset, the cells it meets across all output positions form one strided view of the padded
input,

    x_pad[:, :, i + s_h * ho, j + s_w * wo]   for all (ho, wo),

so a pooling layer is k_h * k_w whole-array operations (4 for the usual 2 x 2 window), never a
loop over samples or positions. The backward pass adds the gradient back through the same views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradwise.core import DEFAULT_DTYPE, Layer
from gradwise.layers.conv import (
    IntOrTuple,
    Pads,
    int_tuple,
    lift_2d,
    offset_slices,
    out_size,
    pad2d,
    spatial_check,
)


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(DEFAULT_DTYPE)  # kind "f": any floating dtype (issubdtype costs 0.6 us)


@dataclass(frozen=True)
class _Window:
    """The geometry of a pooling layer, in its own dimension (`kernel`...) and lifted to 2-d."""

    nd: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]

    @classmethod
    def parse(
        cls, owner: str, nd: int, kernel_size: IntOrTuple, stride: IntOrTuple | None, padding: IntOrTuple, max_pad: str
    ) -> _Window:
        kernel = int_tuple(kernel_size, nd, "kernel_size", owner, 1)
        strides = kernel if stride is None else int_tuple(stride, nd, "stride", owner, 1)
        pads = int_tuple(padding, nd, "padding", owner, 0)
        # PyTorch's limit, which keeps every window from lying entirely in the padding.
        if any(2 * p > k for p, k in zip(pads, kernel)):
            raise ValueError(f"{owner}: padding={padding!r} must be at most half of {max_pad}={kernel_size!r}")
        return cls(nd, kernel, strides, pads)

    def lifted(self) -> tuple[tuple[int, int], tuple[int, int], Pads]:
        """Kernel, stride and padding of the 2-d computation (height 1 for nd == 1)."""
        k, s, p = lift_2d(self.kernel, 1), lift_2d(self.stride, 1), lift_2d(self.padding, 0)
        return k, s, ((p[0], p[0]), (p[1], p[1]))

    def prepare(self, owner: str, x: np.ndarray, expected: str) -> tuple[np.ndarray, tuple[int, int]]:
        """Check `x`, lift it to (N, C, H, W) and return it with the output size (H_out, W_out)."""
        if x.ndim != self.nd + 2:
            raise ValueError(f"{owner}: input of shape {x.shape} has {x.ndim} dimensions; expected {expected}")
        pads = tuple((p, p) for p in self.padding)
        spatial_check(owner, x.shape, x.shape[2:], self.kernel, (1,) * self.nd, pads)
        x4 = x[:, :, None, :] if self.nd == 1 else x
        k, s, p = self.lifted()
        return x4, (out_size(x4.shape[2], k[0], s[0], p[0], 1), out_size(x4.shape[3], k[1], s[1], p[1], 1))

    def finish(self, y: np.ndarray) -> np.ndarray:
        """Drop the height axis of a 1-d layer's (N, C, 1, L) result."""
        return y[:, :, 0, :] if self.nd == 1 else y

    def repr(self) -> str:
        def show(v: tuple[int, ...]) -> object:
            return v[0] if self.nd == 1 else v

        text = f"kernel_size={show(self.kernel)}, stride={show(self.stride)}"
        return text + (f", padding={show(self.padding)}" if any(self.padding) else "")


def _crop(dxp: np.ndarray, pads: Pads, h: int, w: int) -> np.ndarray:
    (t, _), (left, _) = pads
    return dxp[:, :, t : t + h, left : left + w]


def _in_layout(g: np.ndarray, like: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`g` in `dtype`, stored in the memory order of `like` (same shape): copied only if it is not.

    A gradient often arrives in another order than the forward pass ran in (from `Flatten`, in
    C order); mixing orders in one element-wise operation makes NumPy's inner loops short, which
    measured 4x slower than this one copy.
    """
    out = np.empty_like(like, dtype=dtype)
    if g.dtype == dtype and g.strides == out.strides:
        return g
    out[...] = g
    return out


def _padded_zeros(shape: tuple[int, ...], pads: Pads, dtype: np.dtype, like: np.ndarray) -> np.ndarray:
    """Zeros of `shape` (N, C, H, W) plus `pads`, in the memory order of `like`: the strided
    writes of `like`-shaped blocks then run along contiguous memory."""
    n, c, h, w = shape
    return np.zeros_like(like, dtype=dtype, shape=(n, c, h + sum(pads[0]), w + sum(pads[1])))


class _MaxPoolNd(Layer):
    """Maximum over each window; MaxPool1d and MaxPool2d only set `nd`."""

    nd = 2

    def __init__(self, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0) -> None:
        super().__init__()
        self.window = _Window.parse(type(self).__name__, self.nd, kernel_size, stride, padding, "kernel_size")
        self._cache: tuple[np.ndarray, tuple[int, ...], np.dtype] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x4, out = self.window.prepare(repr(self), _as_float(x), "(N, C, L)" if self.nd == 1 else "(N, C, H, W)")
        kernel, stride, pads = self.window.lifted()
        xp = pad2d(x4, pads, -np.inf)  # padding never wins a maximum
        slices = offset_slices(kernel, stride, (1, 1), out)
        _, rows, cols = slices[0]
        best = np.array(xp[:, :, rows, cols], order="K")
        # `argmax` holds the index k of the winning kernel offset. Offsets come in increasing k and
        # a later one wins only if strictly greater, so on ties the first maximum keeps the
        # gradient (PyTorch's choice), and the update is argmax = max(argmax, k * wins).
        # (Masked writes, `np.copyto(..., where=)`, are 10x slower than this arithmetic.)
        argmax = np.zeros_like(best, dtype=np.uint8 if len(slices) <= 256 else np.int32)
        for k, rows, cols in slices[1:]:
            v = xp[:, :, rows, cols]
            wins = np.greater(v, best)
            np.maximum(best, v, out=best)  # propagates NaN, as PyTorch
            np.maximum(argmax, np.multiply(wins, k, dtype=argmax.dtype), out=argmax)
        self._cache = (argmax, x4.shape, best.dtype)
        return self.window.finish(best)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise self.no_cache_error()
        argmax, shape, dtype = self._cache
        self._cache = None
        if not input_grad:
            return None
        kernel, stride, pads = self.window.lifted()
        g4 = _in_layout(np.asarray(grad_out[:, :, None, :] if self.nd == 1 else grad_out), argmax, dtype)
        dxp = _padded_zeros(shape, pads, dtype, like=g4)
        slices = offset_slices(kernel, stride, (1, 1), argmax.shape[2:])
        overlap = any(s < k for s, k in zip(stride, kernel))
        # dL/dx at a window's argmax gets that window's gradient (summed where windows overlap).
        for k, rows, cols in slices:
            view = dxp[:, :, rows, cols]
            if overlap:
                view += g4 * (argmax == k)
            else:  # each cell belongs to at most one window: write, do not add
                np.multiply(g4, argmax == k, out=view)
        return self.window.finish(_crop(dxp, pads, *shape[2:]))

    def extra_repr(self) -> str:
        return self.window.repr()


class _AvgPoolNd(Layer):
    """Mean over each window; AvgPool1d and AvgPool2d only set `nd`."""

    nd = 2

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self.window = _Window.parse(type(self).__name__, self.nd, kernel_size, stride, padding, "kernel_size")
        self.count_include_pad = bool(count_include_pad)
        # (1 / count, input shape, output shape, the output itself: only its memory order is used)
        self._cache: tuple[np.ndarray, tuple[int, ...], tuple[int, int], np.ndarray] | None = None

    def _inverse_count(self, h: int, w: int, out: tuple[int, int]) -> np.ndarray:
        """1 / (cells per window): k_h k_w, or (count_include_pad=False) the cells inside the input,
        which factor as rows-in-input times columns-in-input."""
        kernel, stride, pads = self.window.lifted()
        if self.count_include_pad or not any(self.window.padding):
            return np.asarray(1.0 / (kernel[0] * kernel[1]))
        counts = []
        for size, k, s, (p, _), o in zip((h, w), kernel, stride, pads, out):
            start = np.arange(o) * s - p
            counts.append(np.minimum(start + k, size) - np.maximum(start, 0))
        return 1.0 / np.outer(counts[0], counts[1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        x4, out = self.window.prepare(repr(self), _as_float(x), "(N, C, L)" if self.nd == 1 else "(N, C, H, W)")
        kernel, stride, pads = self.window.lifted()
        xp = pad2d(x4, pads, 0.0)
        slices = offset_slices(kernel, stride, (1, 1), out)
        _, rows, cols = slices[0]
        total = np.array(xp[:, :, rows, cols], order="K")
        for _, rows, cols in slices[1:]:
            total += xp[:, :, rows, cols]
        inv = self._inverse_count(x4.shape[2], x4.shape[3], out)
        total *= inv.astype(total.dtype)
        self._cache = (inv, x4.shape, out, total)
        return self.window.finish(total)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise self.no_cache_error()
        inv, shape, out, layout = self._cache
        self._cache = None
        if not input_grad:
            return None
        dtype = layout.dtype
        kernel, stride, pads = self.window.lifted()
        g4 = _in_layout(np.asarray(grad_out[:, :, None, :] if self.nd == 1 else grad_out), layout, dtype)
        share = g4 * inv.astype(dtype)  # each cell of a window gets g / count
        dxp = _padded_zeros(shape, pads, dtype, like=share)
        for _, rows, cols in offset_slices(kernel, stride, (1, 1), out):
            dxp[:, :, rows, cols] += share
        return self.window.finish(_crop(dxp, pads, *shape[2:]))

    def extra_repr(self) -> str:
        return self.window.repr() + ("" if self.count_include_pad else ", count_include_pad=False")


class MaxPool1d(_MaxPoolNd):
    """Maximum over windows of a sequence, as `torch.nn.MaxPool1d` (ceil_mode=False, dilation 1).

    y[n, c, l] = max_{j < k} x_pad[n, c, l * stride + j], padded with -inf.

    The gradient goes to the first maximal cell of each window (PyTorch's choice on ties).

    Parameters
    ----------
    kernel_size : int or (int,)
    stride : int or (int,), optional
        Defaults to `kernel_size` (non-overlapping windows).
    padding : int or (int,)
        At most half the kernel size.

    Shapes
    ------
    x : (N, C, L) -> y : (N, C, L_out), L_out = floor((L + 2 padding - kernel_size) / stride) + 1.
    """

    nd = 1


class MaxPool2d(_MaxPoolNd):
    """Maximum over windows of an image, as `torch.nn.MaxPool2d` (ceil_mode=False, dilation 1).

    y[n, c, h, w] = max_{i < k_h, j < k_w} x_pad[n, c, h s_h + i, w s_w + j], padded with -inf.

    Parameters
    ----------
    kernel_size, stride, padding : int or (int, int)
        As in `MaxPool1d`, per axis.

    Shapes
    ------
    x : (N, C, H, W) -> y : (N, C, H_out, W_out), H_out = floor((H + 2 p_h - k_h) / s_h) + 1.
    """

    nd = 2


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of a sequence, as `torch.nn.AvgPool1d` (ceil_mode=False).

    y[n, c, l] = sum_{j < k} x_pad[n, c, l * stride + j] / count, with zero padding.

    Parameters
    ----------
    kernel_size : int or (int,)
    stride : int or (int,), optional
        Defaults to `kernel_size`.
    padding : int or (int,)
        At most half the kernel size.
    count_include_pad : bool
        True: count = kernel_size (padding counts as zeros). False: count = the cells of the
        window that lie inside the input.

    Shapes
    ------
    x : (N, C, L) -> y : (N, C, L_out), L_out = floor((L + 2 padding - kernel_size) / stride) + 1.
    """

    nd = 1


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of an image, as `torch.nn.AvgPool2d` (ceil_mode=False, no divisor_override).

    Parameters
    ----------
    kernel_size, stride, padding : int or (int, int)
    count_include_pad : bool
        As in `AvgPool1d`; count = k_h k_w, or the cells of the window inside the image.

    Shapes
    ------
    x : (N, C, H, W) -> y : (N, C, H_out, W_out), H_out = floor((H + 2 p_h - k_h) / s_h) + 1.
    """

    nd = 2


class GlobalAvgPool(Layer):
    """Mean over all spatial axes: (N, C, *spatial) -> (N, C) (Lin et al., 2014, "Network in network").

    Equal to `torch.nn.AdaptiveAvgPool2d(1)` followed by `Flatten()` for images, and to
    `x.mean(dim=(2, ...))` for any number of spatial axes. Backward: dL/dx = g / S broadcast over
    the S spatial cells.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[tuple[int, ...], np.dtype] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        if x.ndim < 3:
            raise ValueError(f"GlobalAvgPool: input of shape {x.shape} has no spatial axis; expected (N, C, *spatial)")
        self._shape = (x.shape, x.dtype)
        return x.mean(axis=tuple(range(2, x.ndim)))

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._shape is None:
            raise self.no_cache_error()
        (shape, dtype), self._shape = self._shape, None
        if not input_grad:
            return None
        g = np.asarray(grad_out, dtype=dtype)
        dx = np.empty(shape, dtype=dtype)
        dx[...] = (g * dtype.type(1.0 / np.prod(shape[2:]))).reshape(*g.shape, *(1,) * (len(shape) - 2))
        return dx


__all__ = ["AvgPool1d", "AvgPool2d", "GlobalAvgPool", "MaxPool1d", "MaxPool2d"]
