"""Fully connected layer."""

from __future__ import annotations

import numpy as np

from gradwise import init as _init
from gradwise.core import DEFAULT_DTYPE, Layer, Parameter
from gradwise.random import resolve as _resolve_rng


class Linear(Layer):
    """y = x W^T + b.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    init : str or callable
        Weight initializer (`gradwise.init`). ``"default"`` is PyTorch's: U(-1/sqrt(in), 1/sqrt(in))
        for weight and bias. With any other choice the bias starts at zero (Keras' convention).
    rng : np.random.Generator, optional
        Source of the initial weights; the library default when None.
    dtype : numpy dtype
        float32 unless asked otherwise.

    Shapes
    ------
    x : (N, *, in_features) -> y : (N, *, out_features); weight : (out_features, in_features) as in
    PyTorch; bias : (out_features,).

    Notes
    -----
    For a 2-D input, `forward` returns a column-major (Fortran-ordered) array and `backward` the
    input gradient likewise: the products run faster in that orientation (see `forward`). Values
    and shapes are what ``x @ W.T + b`` gives; call ``np.ascontiguousarray(y)`` where C order
    matters (a C extension, a file format).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: _init.InitChoice = "default",
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: {in_features=} and {out_features=} must be positive")
        rng = _resolve_rng(rng)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(_init.init_weight(init, (out_features, in_features), rng, dtype))
        if bias:
            b = (
                _init.default_bias(in_features, out_features, rng, dtype)
                if init == "default"
                else np.zeros(out_features, dtype=dtype)
            )
            self.bias: Parameter | None = Parameter(b)
        else:
            self.bias = None
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.weight.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): input of shape {x.shape} does not end "
                f"in {self.in_features} features (expected (N, {self.in_features}))"
            )
        self._x = x
        w = self.weight.data
        # For a batch (N, in), y = x W^T is computed as (W x^T)^T: the same products, but OpenBLAS
        # runs it 10-35% faster with the batch as the short last side (N = 32..128; the MLP
        # benchmark). y is then a column-major (N, out) array.
        y = (w @ x.T).T if x.ndim == 2 else x @ w.T
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._x is None:
            raise self.no_cache_error()
        x2 = self._x.reshape(-1, self.in_features)
        g2 = grad_out.reshape(-1, self.out_features)
        self._x = None
        # dL/dW = g^T x, dL/db = sum_n g, dL/dx = g W
        # A frozen parameter (requires_grad False) gets no gradient work at all. A fresh gradient
        # is written straight into its buffer; a pending one (accumulation) is added to.
        w, b = self.weight, self.bias
        if w.requires_grad:
            buf = w.fresh_grad()
            if buf is None:
                w.grad += g2.T @ x2
            else:
                np.matmul(g2.T, x2, out=buf)
        if b is not None and b.requires_grad:
            buf = b.fresh_grad()
            if buf is None:
                b.grad += g2.sum(axis=0)
            else:
                np.sum(g2, axis=0, out=buf)
        if not input_grad:  # the first layer of a model: no one needs dL/dx
            return None
        # dL/dx = g W, as (W^T g^T)^T for a batch: the orientation forward uses, for the same reason.
        return (w.data.T @ grad_out.T).T if grad_out.ndim == 2 else grad_out @ w.data

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def flops(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        """``2 * in * out`` per output row: ``2 * in * out * prod(y.shape[:-1])`` (see docs/summary.md)."""
        rows = int(np.prod(output_shape[:-1], dtype=np.int64))  # every row, every position of a sequence
        return 2 * self.in_features * self.out_features * rows
