"""Batch normalization (BatchNorm1d, BatchNorm2d) and layer normalization (LayerNorm).

Both normalize, x_hat = (x - mu) / sqrt(sigma^2 + eps), then scale and shift, y = gamma x_hat + beta;
they differ in the axes the statistics are taken over (every axis but the channel axis 1 for batch
norm, the trailing `normalized_shape` axes of each sample for layer norm). Both backward passes use
the simplified closed form of the gradient through the statistics (docs/normalization.md):

    dx = (1/m) * inv_std * (m * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat)),   dx_hat = gamma * g

with the sums over the m entries that share one mean, computed from the cached x_hat and inv_std.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gradwise.core import DEFAULT_DTYPE, Layer, Parameter


def _float_input(x: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    """`x` in `dtype`; without one, its own floating dtype (float32 for integers)."""
    x = np.asarray(x)
    if dtype is not None:
        return x.astype(dtype, copy=False)
    return x if x.dtype.kind == "f" else x.astype(DEFAULT_DTYPE)  # kind "f": any floating dtype (issubdtype costs 0.6 us)


# ------------------------------------------------------------------------------------ batch norm


class _BatchNorm(Layer):
    """The batch normalization of BatchNorm1d and BatchNorm2d over every axis except axis 1.

    Subclasses only say which input ranks they accept (`_ranks`) and how to describe them.
    """

    _ranks: tuple[int, ...] = ()
    _expected: str = ""
    # buffers (None without running statistics), registered in __init__
    running_mean: np.ndarray | None
    running_var: np.ndarray | None
    num_batches_tracked: np.ndarray | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"{name}: {num_features=} must be a positive integer")
        if not eps > 0:
            raise ValueError(f"{name}: {eps=} must be > 0")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: {momentum=} must be in [0, 1] or None (cumulative average)")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"{name}: {dtype=} must be a floating dtype")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight: Parameter | None = Parameter(np.ones(num_features, dtype=dtype))
            self.bias: Parameter | None = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight = None
            self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._batch_stats = False  # whether the cached forward normalized with batch statistics

    def _check(self, x: np.ndarray) -> None:
        c = self.num_features
        if x.ndim not in self._ranks or x.shape[1] != c:
            expected = self._expected.format(c=c)
            raise ValueError(
                f"{type(self).__name__}({c}): input of shape {x.shape} does not match the expected "
                f"shape {expected} (channels on axis 1)"
            )

    def _dtype(self) -> np.dtype | None:
        # The parameters' (or buffers') dtype, so astype() converts the layer; None: the input's.
        if self.weight is not None:
            return self.weight.dtype
        if self.running_mean is not None:
            return self.running_mean.dtype
        return None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float_input(x, self._dtype())
        self._check(x)
        c = self.num_features
        axes = (0, *range(2, x.ndim))
        bshape = (1, c) + (1,) * (x.ndim - 2)  # per-channel values broadcast over the other axes
        m = x.size // c  # entries per channel
        use_batch = self.training or not self.track_running_stats
        if use_batch and m <= 1:
            raise ValueError(
                f"{type(self).__name__}({c}): Expected more than 1 value per channel when training, "
                f"got input of shape {x.shape}"
            )
        if use_batch:
            # Statistics accumulate in float64 (as PyTorch on CPU): a float32 running sum over a
            # large batch drifts by ~eps * sqrt(m) relative to the mean.
            mean = x.sum(axis=axes, dtype=np.float64) / m
            xhat = x - mean.astype(x.dtype).reshape(bshape)
            y = np.square(xhat)
            var = y.sum(axis=axes, dtype=np.float64) / m  # biased: the variance of this batch
            inv_std = 1.0 / np.sqrt(var + self.eps)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var * (m / (m - 1)))  # unbiased, as PyTorch
        else:
            assert self.running_mean is not None and self.running_var is not None
            inv_std = 1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)
            xhat = x - self.running_mean.reshape(bshape)
            y = np.empty_like(xhat)
        inv_std = inv_std.astype(x.dtype)
        xhat *= inv_std.reshape(bshape)
        self._xhat, self._inv_std, self._batch_stats = xhat, inv_std, use_batch
        if self.weight is None or self.bias is None:
            return xhat.copy()  # the cached x_hat must not be handed out
        np.multiply(xhat, self.weight.data.reshape(bshape), out=y)
        y += self.bias.data.reshape(bshape)
        return y

    def _update_running_stats(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        """running = (1 - momentum) * running + momentum * batch (PyTorch's direction).

        With ``momentum=None`` the factor is 1 / (number of batches seen): the cumulative average.
        """
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked += 1
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean[...] = (1.0 - f) * self.running_mean + f * mean
        self.running_var[...] = (1.0 - f) * self.running_var + f * unbiased_var

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._xhat is None or self._inv_std is None:
            raise self.no_cache_error()
        xhat, inv_std = self._xhat, self._inv_std
        self._xhat = self._inv_std = None
        g = np.asarray(grad_out, dtype=xhat.dtype)
        if g.shape != xhat.shape:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}).backward: gradient of shape {g.shape} "
                f"does not match the output shape {xhat.shape}"
            )
        c = self.num_features
        axes = (0, *range(2, g.ndim))
        bshape = (1, c) + (1,) * (g.ndim - 2)
        m = g.size // c
        # dL/dbeta = sum g, dL/dgamma = sum g * x_hat (over every axis but the channel axis)
        buf = np.multiply(g, xhat)
        sum_gx = buf.sum(axis=axes, dtype=np.float64)
        sum_g = g.sum(axis=axes, dtype=np.float64)
        if self.weight is not None and self.bias is not None:
            if self.weight.requires_grad:  # frozen: no gradient work (the sums still give dx)
                self.weight.add_grad(sum_gx.astype(xhat.dtype))
            if self.bias.requires_grad:
                self.bias.add_grad(sum_g.astype(xhat.dtype))
            scale = self.weight.data * inv_std
        else:
            scale = inv_std
        if not input_grad:
            return None
        scale = scale.reshape(bshape)
        if not self._batch_stats:
            # running statistics are constants: y is a per-channel affine map of x
            np.multiply(g, scale, out=buf)
            return buf
        # dx = gamma * inv_std * (g - sum(g) / m - x_hat * sum(g * x_hat) / m): the closed form,
        # with dx_hat = gamma * g so sum(dx_hat) = gamma * sum(g), sum(dx_hat * x_hat) = gamma * sum(g x_hat)
        np.multiply(xhat, (sum_gx / m).astype(xhat.dtype).reshape(bshape), out=buf)
        np.subtract(g, buf, out=buf)
        buf -= (sum_g / m).astype(xhat.dtype).reshape(bshape)
        buf *= scale
        return buf

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


_BN_DOC = r"""Batch normalization (Ioffe & Szegedy, 2015) over {over}.

    For each channel c, with the mean and biased variance over the m = {m} entries of the batch
    that belong to it,

    .. math::

        \hat x = \frac{{x - \mu_B}}{{\sqrt{{\sigma_B^2 + \epsilon}}}}, \qquad y = \gamma \hat x + \beta,

    and the gradient in the simplified closed form (no chain of small operations)

    .. math::

        \frac{{\partial L}}{{\partial x}} = \frac{{\gamma}}{{m \sqrt{{\sigma_B^2 + \epsilon}}}}
        \Big(m\, g - \textstyle\sum g - \hat x \sum g\, \hat x\Big), \qquad
        \frac{{\partial L}}{{\partial \gamma}} = \textstyle\sum g\, \hat x, \qquad
        \frac{{\partial L}}{{\partial \beta}} = \textstyle\sum g.

    Parameters
    ----------
    num_features : int
        C, the number of channels (axis 1).
    eps : float, default 1e-5
        Added to the variance inside the square root.
    momentum : float or None, default 0.1
        The weight of the **new batch** in the running averages (PyTorch's direction):
        ``running = (1 - momentum) * running + momentum * batch``. Keras' ``momentum=0.99`` is the
        weight of the **old** value, i.e. ``momentum=0.01`` here. None: the cumulative moving
        average, factor 1 / (number of batches seen), as PyTorch.
    affine : bool, default True
        Learn the per-channel scale `weight` (gamma, ones) and shift `bias` (beta, zeros).
    track_running_stats : bool, default True
        Keep `running_mean` (zeros), `running_var` (ones) and `num_batches_tracked` (int64 0-d)
        as buffers, updated in training mode and used in evaluation. The running variance uses
        the unbiased estimate (times m / (m - 1)) while training normalizes with the biased one,
        as PyTorch. When False there are no buffers and batch statistics are used in both modes.
    dtype : numpy dtype, default float32
        Of the parameters and running statistics; inputs are cast to it. A layer with neither
        (``affine=False, track_running_stats=False``) computes in the input's floating dtype.

    Shapes
    ------
    {shapes}
    weight, bias, running_mean, running_var : (C,); num_batches_tracked : (). The names, shapes
    and dtypes are PyTorch's, so a state dict loads into ``torch.nn.{name}`` and back.

    Raises
    ------
    ValueError
        For an input of the wrong rank or channel count (naming the layer and both shapes), and for a
        batch with a single value per channel when batch statistics are needed.

    Notes
    -----
    In evaluation mode with running statistics the layer is a per-channel affine map,
    ``y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta``, and its backward is
    ``dx = gamma / sqrt(running_var + eps) * g``. Batch statistics are accumulated in float64.

    References
    ----------
    S. Ioffe, C. Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift", ICML 2015. The closed-form backward: F. Kratzert, "Understanding the
    backward pass through Batch Normalization Layer" (2016); CS231n assignment 2.
    """


class BatchNorm1d(_BatchNorm):
    _ranks = (2, 3)
    _expected = "(N, {c}) or (N, {c}, L)"


class BatchNorm2d(_BatchNorm):
    _ranks = (4,)
    _expected = "(N, {c}, H, W)"


BatchNorm1d.__doc__ = _BN_DOC.format(
    over="the batch (and length) axes: inputs (N, C) or (N, C, L)",
    m="N (or N * L)",
    shapes="x : (N, C) or (N, C, L) -> y : same shape.",
    name="BatchNorm1d",
)
BatchNorm2d.__doc__ = _BN_DOC.format(
    over="the batch and spatial axes: inputs (N, C, H, W)",
    m="N * H * W",
    shapes="x : (N, C, H, W) -> y : same shape.",
    name="BatchNorm2d",
)


# ------------------------------------------------------------------------------------ layer norm


class LayerNorm(Layer):
    r"""Layer normalization (Ba et al., 2016) over the trailing `normalized_shape` axes of each sample.

    With the mean and biased variance over the D = prod(normalized_shape) trailing entries of each
    sample,

    .. math::

        \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \odot \hat x + \beta,

    and, per sample, with :math:`\widehat{g} = \gamma \odot g`,

    .. math::

        \frac{\partial L}{\partial x} = \frac{1}{D \sqrt{\sigma^2 + \epsilon}}
        \Big(D\, \widehat{g} - \textstyle\sum \widehat{g} - \hat x \sum \widehat{g}\, \hat x\Big),
        \quad \frac{\partial L}{\partial \gamma} = \textstyle\sum_{\text{samples}} g\, \hat x,
        \quad \frac{\partial L}{\partial \beta} = \textstyle\sum_{\text{samples}} g.

    The statistics are those of each sample, so training and evaluation compute the same thing
    and there are no running statistics.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        The trailing shape to normalize over, e.g. ``C`` for (N, T, C) inputs.
    eps : float, default 1e-5
    elementwise_affine : bool, default True
        Learn `weight` (gamma, ones) and `bias` (beta, zeros), each of shape `normalized_shape`.
    bias : bool, default True
        Learn `bias` too (only with `elementwise_affine`), as ``torch.nn.LayerNorm``.
    dtype : numpy dtype, default float32
        Of the parameters; inputs are cast to it. Without parameters the input's floating dtype is kept.

    Shapes
    ------
    x : (*, *normalized_shape) -> y : same shape.

    References
    ----------
    J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization", arXiv:1607.06450 (2016).
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
            raise ValueError(f"LayerNorm: {normalized_shape=} must be a positive int or a non-empty tuple of them")
        if not eps > 0:
            raise ValueError(f"LayerNorm: {eps=} must be > 0")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"LayerNorm: {dtype=} must be a floating dtype")
        self.normalized_shape = tuple(int(d) for d in shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight: Parameter | None = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            self.bias: Parameter | None = (
                Parameter(np.zeros(self.normalized_shape, dtype=dtype)) if bias else None
            )
        else:
            self.weight = None
            self.bias = None
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float_input(x, None if self.weight is None else self.weight.dtype)
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm({self.normalized_shape}): input of shape {x.shape} does not end in the "
                f"normalized shape (expected (*, {', '.join(map(str, self.normalized_shape))}))"
            )
        d = math.prod(self.normalized_shape)
        x2 = x.reshape(-1, d)  # (M, D): one row per normalized group; a view when x is contiguous
        # Row reductions along the contiguous axis use NumPy's pairwise summation: accurate in float32.
        xhat = x2 - x2.mean(axis=1, keepdims=True)
        y = np.square(xhat)
        var = y.mean(axis=1, keepdims=True)
        inv_std = var
        inv_std += x.dtype.type(self.eps)
        np.sqrt(inv_std, out=inv_std)
        np.divide(1, inv_std, out=inv_std)
        xhat *= inv_std
        self._xhat, self._inv_std = xhat, inv_std
        if self.weight is None:
            return xhat.reshape(x.shape).copy()  # the cached x_hat must not be handed out
        np.multiply(xhat, self.weight.data.reshape(d), out=y)
        if self.bias is not None:
            y += self.bias.data.reshape(d)
        return y.reshape(x.shape)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._xhat is None or self._inv_std is None:
            raise self.no_cache_error()
        xhat, inv_std = self._xhat, self._inv_std
        self._xhat = self._inv_std = None
        g = np.asarray(grad_out, dtype=xhat.dtype)
        if g.size != xhat.size or g.shape[g.ndim - len(self.normalized_shape) :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm({self.normalized_shape}).backward: gradient of shape {g.shape} does not "
                f"match the output ({xhat.shape[0]} groups of {self.normalized_shape})"
            )
        d = xhat.shape[1]
        g2 = g.reshape(-1, d)
        buf = np.multiply(g2, xhat)  # g * x_hat
        if self.weight is not None:
            if self.weight.requires_grad:  # frozen: no gradient work
                self.weight.add_grad(buf.sum(axis=0).reshape(self.normalized_shape))
            if self.bias is not None and self.bias.requires_grad:
                self.bias.add_grad(g2.sum(axis=0).reshape(self.normalized_shape))
        if not input_grad:
            return None
        if self.weight is None:
            # gamma = 1: the sums over each row of dx_hat = g
            mean_gx = buf.mean(axis=1, keepdims=True)
            mean_g = g2.mean(axis=1, keepdims=True)
            np.multiply(xhat, mean_gx, out=buf)
            np.subtract(g2, buf, out=buf)
        else:
            w = self.weight.data.reshape(d)
            # Row sums of dx_hat = g * gamma and of dx_hat * x_hat as matrix-vector products.
            mean_gx = (buf @ w)[:, None] / xhat.dtype.type(d)
            mean_g = (g2 @ w)[:, None] / xhat.dtype.type(d)
            np.multiply(xhat, mean_gx, out=xhat)  # the cache is dropped: reuse its memory
            np.multiply(g2, w, out=buf)
            buf -= xhat
        buf -= mean_g
        buf *= inv_std
        return buf.reshape(g.shape)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
