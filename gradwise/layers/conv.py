"""Convolutions: Conv1d and Conv2d, by im2col and one matrix product.

Both layers run the same 2-d code; a 1-d input (N, C, L) is a 2-d input of height 1 with a
(1, k) kernel. The forward pass gathers every receptive field into a column matrix, one copy
out of a strided view of the (padded) input,

    cols[c, i, j, ho, wo, n] = x_pad[n, c, ho s_h + i d_h, wo s_w + j d_w],

so that the convolution (a cross-correlation, as in every deep-learning library) is one GEMM
(Chellapilla, Puri & Simard, 2006, "High performance convolutional neural networks for document
processing"):

    y[o, (ho, wo, n)] = sum_{(c, i, j)} W[o, (c, i, j)] cols[(c, i, j), (ho, wo, n)] + b[o].

The backward pass is two more GEMMs and a scatter-add ("col2im"), one strided add per kernel
offset (i, j), after which the padding is cropped off:

    dW = g cols^T,   db = sum_{ho, wo, n} g,   dcols = W^T g,
    dx_pad[n, c, ho s_h + i d_h, wo s_w + j d_w] += dcols[c, i, j, ho, wo, n].

With groups, the channels split into `groups` blocks and the GEMMs are batched over them.

Memory layout: the batch axis is innermost, (C, H, W, N) in memory (cuda-convnet, Krizhevsky,
2012), returned as (N, C, H, W) views. Image rows are then runs of W * N values, so the im2col copy,
col2im and pooling run NumPy's inner loops over hundreds of values, not a handful (docs/conv.md).
Output sizes (Dumoulin & Visin, 2016, "A guide to convolution arithmetic"):

    H_out = floor((H + pad_top + pad_bottom - d_h (k_h - 1) - 1) / s_h) + 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from gradwise import init as _init
from gradwise.core import DEFAULT_DTYPE, Layer, Parameter
from gradwise.random import resolve as _resolve_rng

IntOrTuple = int | Sequence[int]
Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


# --------------------------------------------------------------------------------- shared machinery


def int_tuple(value: IntOrTuple, nd: int, name: str, owner: str, minimum: int) -> tuple[int, ...]:
    """An int or a sequence of `nd` ints, each >= `minimum`, as an `nd`-tuple."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value),) * nd
    elif isinstance(value, (tuple, list)) and len(value) == nd and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        out = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{owner}: {name}={value!r} must be an int or a sequence of {nd} ints")
    if any(v < minimum for v in out):
        raise ValueError(f"{owner}: {name}={value!r} must be >= {minimum}")
    return out


def lift_2d(values: tuple[int, ...], fill: int) -> tuple[int, int]:
    """A 1-d setting `(v,)` as the 2-d `(fill, v)` (the height axis of length 1)."""
    return (fill, values[0]) if len(values) == 1 else (values[0], values[1])


def out_size(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int) -> int:
    """floor((size + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1."""
    return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def spatial_check(
    owner: str, x_shape: tuple[int, ...], spatial: tuple[int, ...], kernel: tuple[int, ...],
    dilation: tuple[int, ...], pads: tuple[tuple[int, int], ...],
) -> None:
    """Raise a `ValueError` naming the layer and the shapes when a kernel does not fit."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(s + p[0] + p[1] for s, p in zip(spatial, pads))
    if any(sp > pd for sp, pd in zip(span, padded)):
        raise ValueError(
            f"{owner}: kernel {kernel} with dilation {dilation} spans {span}, larger than the padded input "
            f"{padded} (input of shape {x_shape}, padding {tuple(p if p[0] != p[1] else p[0] for p in pads)})"
        )


def batch_innermost(x: np.ndarray) -> bool:
    """True when `x` (N, C, H, W) is stored as (C, H, W, N), the layout the convolutions produce."""
    return x.transpose(1, 2, 3, 0).flags.c_contiguous


def pad2d(x: np.ndarray, pads: Pads, value: float = 0.0, *, batch_last: bool = False) -> np.ndarray:
    """`x` (N, C, H, W) with `pads` added around H and W, filled with `value`.

    `x` itself when there is nothing to pad (and, with `batch_last`, it is already stored batch
    innermost); otherwise a new array, stored batch innermost with `batch_last`, else in the
    memory order of `x`.
    """
    (t, b), (left, r) = pads
    padded = any((t, b, left, r))
    if not padded and (not batch_last or batch_innermost(x)):
        return x
    n, c, h, w = x.shape
    hp, wp = h + t + b, w + left + r
    if batch_last:
        xp = np.empty((c, hp, wp, n), dtype=x.dtype).transpose(3, 0, 1, 2)
    else:
        xp = np.empty_like(x, shape=(n, c, hp, wp))
    if padded:  # the border only: the interior is written next
        xp[:, :, :t] = value
        xp[:, :, t + h :] = value
        xp[:, :, t : t + h, :left] = value
        xp[:, :, t : t + h, left + w :] = value
    xp[:, :, t : t + h, left : left + w] = x
    return xp


def offset_slices(
    kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], out: tuple[int, int]
) -> list[tuple[int, slice, slice]]:
    """For each kernel offset (i, j), in row-major order, its index `i * k_w + j` and the slices of
    the padded input it meets: rows `i*d_h + s_h*ho` and columns `j*d_w + s_w*wo` for every output
    position (ho, wo). The loops over kernel offsets in pooling and col2im use these."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    return [
        (
            i * kw + j,
            slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (wo - 1) + 1, sw),
        )
        for i in range(kh)
        for j in range(kw)
    ]


def column_blocks(rows: int, size: int) -> list[slice]:
    """Slices of the column axis (length `size`) for the GEMMs of a layer with `rows` output
    channels: blocks of 4,096 columns when `rows` <= 8, else one block. Measured (OpenBLAS 0.3.31,
    2 threads): for 6 channels and 25 weights per channel, one (6, 36,864) product takes 2.2x (forward)
    and 2.5x (weight gradient) as long as nine blocked ones; from 12 channels up blocks lose a little.
    """
    step = 4096 if rows <= 8 else max(size, 1)
    return [slice(s, s + step) for s in range(0, max(size, 1), step)]  # one, empty, for no columns


class Workspace:
    """Scratch memory a layer reuses from call to call (grow-only).

    The column matrix of a convolution is k_h k_w times the size of its input: a few MB per
    batch. A fresh allocation of that size is a fresh `mmap` whose every page faults on first
    touch, which measured here costs more than the im2col copy and the GEMM together. Reusing one
    buffer per layer keeps the pages mapped. The buffer is private: nothing outside the layer
    ever sees it.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialized C-contiguous array of `shape`, a view into the buffer."""
        size = math.prod(shape)
        if self._buf is None or self._buf.dtype != dtype or self._buf.size < size:
            self._buf = np.empty(size, dtype=dtype)
        return self._buf[:size].reshape(shape)

    def __deepcopy__(self, memo: dict) -> Workspace:
        return Workspace()  # a copy of a layer starts with its own, empty scratch memory


def im2col(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
    out: tuple[int, int], workspace: Workspace | None = None,
) -> np.ndarray:
    """Columns `(C, k_h, k_w, H_out, W_out, N)` (C-contiguous) of the padded input `xp` (N, C, H, W):

        cols[c, i, j, ho, wo, n] = xp[n, c, ho * s_h + i * d_h, wo * s_w + j * d_w].

    A strided view puts every receptive field in place without copying; one copy then lays the
    columns out for the GEMM (into `workspace` when given). Works for any memory order of `xp`;
    fastest when it is stored batch innermost.
    """
    n, c = xp.shape[:2]
    sn, sc, s_h, s_w = xp.strides
    view = as_strided(
        xp,
        shape=(c, kernel[0], kernel[1], out[0], out[1], n),
        strides=(sc, s_h * dilation[0], s_w * dilation[1], s_h * stride[0], s_w * stride[1], sn),
        writeable=False,
    )
    cols = np.empty(view.shape, dtype=xp.dtype) if workspace is None else workspace.get(view.shape, xp.dtype)
    np.copyto(cols, view)
    return cols


# ------------------------------------------------------------------------------------------- layers


class _ConvNd(Layer):
    """Convolution over the last `nd` axes; Conv1d and Conv2d only set `nd`."""

    nd = 2

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
        padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True, *,
        init: _init.InitChoice = "default", rng: np.random.Generator | None = None,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        nd = self.nd
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"{name}: {in_channels=} and {out_channels=} must be positive")
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: {groups=} must be positive and divide {in_channels=} and {out_channels=}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.kernel_size = int_tuple(kernel_size, nd, "kernel_size", name, 1)
        self.stride = int_tuple(stride, nd, "stride", name, 1)
        self.dilation = int_tuple(dilation, nd, "dilation", name, 1)
        if isinstance(padding, str):
            if padding == "valid":
                self.padding: tuple[int, ...] | str = (0,) * nd
                pads = [(0, 0)] * nd
            elif padding == "same":
                if any(s != 1 for s in self.stride):
                    raise ValueError(f"{name}: padding='same' needs stride 1 (as in PyTorch), got stride={self.stride}")
                self.padding = "same"
                # PyTorch's split: the extra cell of an odd total goes after (right/bottom).
                totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
                pads = [(t // 2, t - t // 2) for t in totals]
            else:
                raise ValueError(f"{name}: {padding=} must be 'same', 'valid', an int or a sequence of {nd} ints")
        else:
            self.padding = int_tuple(padding, nd, "padding", name, 0)
            pads = [(p, p) for p in self.padding]
        self._pads: tuple[tuple[int, int], ...] = tuple(pads)

        rng = _resolve_rng(rng)
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(_init.init_weight(init, shape, rng, dtype))
        if bias:
            fan_in = _init.fans(shape)[0]
            if init == "default":
                b = _init.default_bias(fan_in, out_channels, rng, dtype)
            else:
                b = np.zeros(out_channels, dtype=dtype)
            self.bias: Parameter | None = Parameter(b)
        else:
            self.bias = None
        self._cache: tuple[np.ndarray, tuple[int, ...], tuple[int, int]] | None = None
        self._workspace = Workspace()  # holds the columns from forward to backward

    def _geometry(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], Pads]:
        """Kernel, stride, dilation and padding of the 2-d computation (height 1 for Conv1d)."""
        pads = ((0, 0), self._pads[0]) if self.nd == 1 else (self._pads[0], self._pads[1])
        return lift_2d(self.kernel_size, 1), lift_2d(self.stride, 1), lift_2d(self.dilation, 1), pads

    def _signature(self) -> str:
        k = self.kernel_size[0] if self.nd == 1 else self.kernel_size
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size={k})"

    def _expected(self) -> str:
        return f"(N, {self.in_channels}, L)" if self.nd == 1 else f"(N, {self.in_channels}, H, W)"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.weight.dtype)
        if x.ndim != self.nd + 2:
            raise ValueError(
                f"{self._signature()}: input of shape {x.shape} has {x.ndim} dimensions; expected {self._expected()}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._signature()}: input of shape {x.shape} has {x.shape[1]} channels, expected "
                f"{self.in_channels} ({self._expected()})"
            )
        spatial_check(self._signature(), x.shape, x.shape[2:], self.kernel_size, self.dilation, self._pads)
        (kernel, stride, dilation, pads), g = self._geometry(), self.groups
        x4 = x[:, :, None, :] if self.nd == 1 else x
        n, c, h, w = x4.shape
        out = tuple(out_size(*axis) for axis in zip((h, w), kernel, stride, pads, dilation))  # (H_out, W_out)
        xp = pad2d(x4, pads, batch_last=True)
        cols = im2col(xp, kernel, stride, dilation, out, self._workspace)
        cols = cols.reshape(g, c // g * kernel[0] * kernel[1], out[0] * out[1] * n)
        # y[o, (ho, wo, n)] = W[o, (c, i, j)] cols[(c, i, j), (ho, wo, n)], block-diagonal over groups
        wmat = self.weight.data.reshape(g, self.out_channels // g, -1)
        if g == 1:
            y = np.empty((self.out_channels, cols.shape[2]), dtype=cols.dtype)
            for s in column_blocks(self.out_channels, cols.shape[2]):
                np.matmul(wmat[0], cols[0][:, s], out=y[:, s])
        else:
            y = np.matmul(wmat, cols)
        y = y.reshape(self.out_channels, *out, n)
        if self.bias is not None:
            y += self.bias.data[:, None, None, None]
        self._cache = (cols, x4.shape, out)
        y = y.transpose(3, 0, 1, 2)  # (N, C_out, H_out, W_out), stored batch innermost
        return y[:, :, 0, :] if self.nd == 1 else y

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise self.no_cache_error()
        cols, (n, c, h, w), out = self._cache
        self._cache = None
        (kernel, stride, dilation, pads), g = self._geometry(), self.groups
        g4 = grad_out[:, :, None, :] if self.nd == 1 else grad_out
        # g as (groups, C_out / groups, H_out * W_out * N): no copy when stored batch innermost
        gmat = np.asarray(g4, dtype=cols.dtype).transpose(1, 2, 3, 0).reshape(g, self.out_channels // g, -1)
        wmat = self.weight.data.reshape(g, self.out_channels // g, -1)
        # dW = g cols^T, computed as (cols g^T)^T: BLAS is faster with the long side first.
        if self.weight.requires_grad:  # frozen: no gradient work
            if g == 1:  # summed over column blocks (column_blocks)
                grad_w = sum(cols[0][:, s] @ gmat[0][:, s].T for s in column_blocks(self.out_channels, cols.shape[2])).T
            else:
                grad_w = np.matmul(cols, gmat.transpose(0, 2, 1)).transpose(0, 2, 1)
            self.weight.add_grad(grad_w.reshape(self.weight.shape))
        if self.bias is not None and self.bias.requires_grad:
            self.bias.add_grad(gmat.sum(axis=2).reshape(-1))
        if not input_grad:  # the first layer of a model: no dcols product, no col2im
            return None
        (t, b), (left, r) = pads
        wp, kk, co = w + left + r, kernel[0] * kernel[1], self.out_channels
        dxp = np.zeros((c, h + t + b, wp, n), dtype=cols.dtype)
        if wide := stride == (1, 1) and wp <= 2 * out[1]:
            # Rows of g widened to the padded width wp with zeros (whose dcols are zero): each kernel offset's
            # dcols block then lands on one contiguous run of dxp per channel, from (i d_h wp + j d_w) N: col2im
            # 2x faster, for a wp / W_out times wider GEMM (LeNet's second conv: 1.5x, net -15% of its backward).
            g_wide = np.zeros((co, out[0], wp, n), dtype=cols.dtype)
            g_wide[:, :, : out[1]] = gmat.reshape(co, out[0], out[1], n)
            gmat, run = g_wide.reshape(g, co // g, -1), ((out[0] - 1) * wp + out[1]) * n
        # dcols = W^T g, into the column buffer (the columns are no longer needed)
        dcols = self._workspace.get((g, c // g * kk, gmat.shape[2]), cols.dtype)
        np.matmul(wmat.transpose(0, 2, 1), gmat, out=dcols)
        # col2im: scatter-add each kernel offset's block into the padded input gradient.
        if wide:
            flat, dcols = dxp.reshape(c, -1), dcols.reshape(c, kk, -1)
            for i, j in np.ndindex(*kernel):
                start = (i * dilation[0] * wp + j * dilation[1]) * n
                flat[:, start : start + run] += dcols[:, i * kernel[1] + j, :run]
        else:
            dcols = dcols.reshape(c, kk, *out, n)
            for k, rows, columns in offset_slices(kernel, stride, dilation, out):
                dxp[:, rows, columns] += dcols[:, k]
        dx = dxp[:, t : t + h, left : left + w].transpose(3, 0, 1, 2)
        return dx[:, :, 0, :] if self.nd == 1 else dx

    def extra_repr(self) -> str:
        def show(v: tuple[int, ...]) -> object:
            return v[0] if self.nd == 1 else v

        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={show(self.kernel_size)}"]
        if any(s != 1 for s in self.stride):
            parts.append(f"stride={show(self.stride)}")
        if isinstance(self.padding, str):
            parts.append(f"padding={self.padding}")
        elif any(self.padding):
            parts.append(f"padding={show(self.padding)}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation={show(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        return ", ".join(parts)

    def flops(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        """``2 * (C_in / groups) * prod(k) * C_out`` per output position, for all N samples.

        Output shape (N, C_out, *spatial_out): ``2 * (C_in / g) * prod(k) * C_out * prod(spatial_out) * N``
        (see docs/summary.md).
        """
        per_position = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        return 2 * per_position * self.out_channels * math.prod(output_shape[2:]) * output_shape[0]


class Conv1d(_ConvNd):
    """1-d convolution (cross-correlation) over sequences, as `torch.nn.Conv1d`.

    y[n, o, l] = b[o] + sum_{c, j} W[o, c, j] x_pad[n, c0(o) + c, l * stride + j * dilation],

    c over the in_channels / groups channels of o's group, which starts at channel c0(o).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int,)
    stride, dilation : int or (int,)
    padding : int, (int,), "same" or "valid"
        Zeros added at both ends. "same" (stride 1 only) keeps the length, with an odd total
        padding's extra zero at the end, as PyTorch.
    groups : int
        Channels split into `groups` blocks, each convolved with its own filters; must divide
        both channel counts.
    bias : bool
    init : str or callable
        Weight initializer (`gradwise.init`). ``"default"`` is PyTorch's: U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) for weight and bias, fan_in = in_channels / groups * kernel_size. With
        any other choice the bias starts at zero.
    rng : np.random.Generator, optional
    dtype : numpy dtype

    Shapes
    ------
    x : (N, in_channels, L) -> y : (N, out_channels, L_out),
    L_out = floor((L + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1;
    weight : (out_channels, in_channels / groups, kernel_size); bias : (out_channels,).
    """

    nd = 1


class Conv2d(_ConvNd):
    """2-d convolution (cross-correlation) over images, as `torch.nn.Conv2d`.

    y[n, o, h, w] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c0(o) + c, h s_h + i d_h, w s_w + j d_w]

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), "same" or "valid"
        Zeros added on both sides of each spatial axis; "same" as in `Conv1d`.
    groups, bias, init, rng, dtype
        As in `Conv1d`; fan_in = in_channels / groups * k_h * k_w.

    Shapes
    ------
    x : (N, in_channels, H, W) -> y : (N, out_channels, H_out, W_out),
    H_out = floor((H + 2 p_h - d_h (k_h - 1) - 1) / s_h) + 1 (W_out likewise);
    weight : (out_channels, in_channels / groups, k_h, k_w); bias : (out_channels,).
    """

    nd = 2


def conv_output_shape(layer: _ConvNd, input_shape: Sequence[int]) -> tuple[int, ...]:
    """The output shape of `layer` for an input of `input_shape` (N, C, *spatial), without running it."""
    sizes = tuple(
        out_size(s, k, st, p, d)
        for s, k, st, p, d in zip(input_shape[2:], layer.kernel_size, layer.stride, layer._pads, layer.dilation)
    )
    return (input_shape[0], layer.out_channels, *sizes)


__all__ = ["Conv1d", "Conv2d", "conv_output_shape"]
