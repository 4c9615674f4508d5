"""Layers that only rearrange data."""

from __future__ import annotations

import math

import numpy as np

from gradwise.core import Layer, backward_of


class Flatten(Layer):
    """Flatten dimensions `start_dim..end` into one, as `torch.nn.Flatten(start_dim)`.

    Shapes: (N, d1, d2, ...) -> (N, d1 * d2 * ...) for the default `start_dim=1`.
    """

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        if start_dim < 0:
            raise ValueError(f"Flatten: {start_dim=} must be >= 0")
        self.start_dim = start_dim
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim <= self.start_dim:
            raise ValueError(f"Flatten(start_dim={self.start_dim}): input of shape {x.shape} has too few dimensions")
        self._shape = x.shape
        return x.reshape(*x.shape[: self.start_dim], math.prod(x.shape[self.start_dim :]))

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._shape is None:
            raise self.no_cache_error()
        shape, self._shape = self._shape, None
        return grad_out.reshape(shape) if input_grad else None

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"


class Residual(Layer):
    """A skip connection around a block: y = x + block(x) (He et al., 2016, "Deep residual learning").

    The backward is the sum of the two paths: dL/dx = g + block.backward(g), with g = dL/dy.
    With ``input_grad=False`` the block is told so too (its parameters still get their gradients).

    Parameters
    ----------
    block : Layer
        Any layer or `Sequential` whose output has the shape of its input. Registered as
        ``block``, so its parameters are named ``block.0.weight``, ... as in a PyTorch module with
        ``self.block = nn.Sequential(...)``.

    Shapes
    ------
    x : (N, *) -> y : (N, *), the same shape.
    """

    def __init__(self, block: Layer) -> None:
        super().__init__()
        if not isinstance(block, Layer):
            raise TypeError(f"Residual: block is {type(block).__name__}, not a Layer (wrap a list in Sequential)")
        self.block = block
        self._ready = False  # a forward has run and its backward has not

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        fx = self.block.forward(x)
        if fx.shape != x.shape:
            raise ValueError(
                f"Residual: the block {type(self.block).__name__} maps an input of shape {x.shape} to an output of "
                f"shape {fx.shape}; x + block(x) needs the same shape"
            )
        self._ready = True
        # Not `fx += x`: a block may return its input itself (an identity, Dropout in eval mode).
        return fx + x.astype(fx.dtype, copy=False)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if not self._ready:
            raise self.no_cache_error()
        self._ready = False
        grad_block = backward_of(self.block, grad_out, input_grad)
        return grad_out + grad_block if input_grad else None


def _register_branches(layer: Layer, branches: tuple[Layer, ...]) -> None:
    """Register `branches` as children "0", "1", ... (PyTorch's names for a list of modules)."""
    kind = type(layer).__name__
    if not branches:
        raise ValueError(f"{kind}: needs at least one branch")
    for i, branch in enumerate(branches):
        if not isinstance(branch, Layer):
            hint = " (wrap a list of layers in Sequential)" if isinstance(branch, (list, tuple)) else ""
            raise TypeError(f"{kind}: branch {i} is {type(branch).__name__}, not a Layer{hint}")
        setattr(layer, str(i), branch)


def _concat(layer: Layer, outputs: list[np.ndarray], axis: int) -> tuple[np.ndarray, list[int]]:
    """The branch outputs joined along `axis`, and the size each contributed (for `_split`)."""
    ndim = outputs[0].ndim
    if not -ndim <= axis < ndim or any(o.ndim != ndim for o in outputs):
        raise ValueError(
            f"{type(layer).__name__}: cannot join the branch outputs along {axis=} ({_shapes(layer, outputs)})"
        )
    ax = axis % ndim
    rest = [o.shape[:ax] + o.shape[ax + 1 :] for o in outputs]
    if any(r != rest[0] for r in rest):
        raise ValueError(
            f"{type(layer).__name__}: the branch outputs must agree on every axis but {axis=} to be concatenated; "
            f"got {_shapes(layer, outputs)}"
        )
    return np.concatenate(outputs, axis=ax), [o.shape[ax] for o in outputs]


def _shapes(layer: Layer, outputs: list[np.ndarray]) -> str:
    return ", ".join(
        f"branch {i} ({type(b).__name__}): {o.shape}" for i, (b, o) in enumerate(zip(layer.children(), outputs))
    )


def _split(grad_out: np.ndarray, sizes: list[int], axis: int) -> list[np.ndarray]:
    """`grad_out` cut back into the branches' pieces along `axis` (the adjoint of `_concat`)."""
    bounds = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(g) for g in np.split(grad_out, bounds, axis=axis)]


class Concat(Layer):
    """The same input through every branch, outputs concatenated (Szegedy et al., 2015, Inception).

    ``y = concatenate([branch_0(x), branch_1(x), ...], axis)``. The backward cuts dL/dy into the
    branches' pieces and sums the input gradients they return: dL/dx = sum_i branch_i.backward(g_i).
    For several inputs, one per branch, use `Parallel`.

    Parameters
    ----------
    *branches : Layer
        One layer (or `Sequential`) per branch, registered as ``"0"``, ``"1"``, ... so parameter
        names are ``0.weight``, ``1.0.weight``, ... as in a `torch.nn.ModuleList`.
    axis : int
        The axis the outputs are joined along: -1 (features) by default, 1 for the channels of
        convolutional feature maps (N, C, ...). The outputs must agree on every other axis.

    Shapes
    ------
    x : any shape the branches accept -> y : the branch outputs' common shape, with the sizes
    along `axis` added up; e.g. x (N, F) -> y (N, sum_i out_i).

    Notes
    -----
    When every branch returns None as its input gradient (embedding branches fed integer indices),
    `backward` returns None; otherwise it sums the gradients that are not None. With
    ``input_grad=False`` every branch is told so and `backward` returns None.
    """

    def __init__(self, *branches: Layer, axis: int = -1) -> None:
        super().__init__()
        _register_branches(self, branches)
        self.axis = int(axis)
        self._sizes: list[int] | None = None

    @property
    def branches(self) -> list[Layer]:
        return self.children()

    def __len__(self) -> int:
        return len(self.children())

    def __getitem__(self, i: int) -> Layer:
        return self.branches[i]

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self._sizes = _concat(self, [branch.forward(x) for branch in self.children()], self.axis)
        return y

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        if self._sizes is None:
            raise self.no_cache_error()
        pieces = _split(grad_out, self._sizes, self.axis)
        self._sizes = None
        grad_in = None
        for branch, g in zip(self.children(), pieces):
            gx = backward_of(branch, g, input_grad)
            if gx is not None and input_grad:
                grad_in = gx if grad_in is None else grad_in + gx
        return grad_in


class Parallel(Layer):
    """Several inputs, one branch each, outputs concatenated: the front of a multi-input model.

    ``y = concatenate([branch_0(x_0), branch_1(x_1), ...], axis)`` for an input tuple
    ``(x_0, x_1, ...)``: a user embedding, an item embedding and a small MLP on dense features side
    by side (collaborative filtering, tabular data with categorical columns), followed by ordinary
    layers. A `DataLoader` given a tuple of arrays yields such tuples. The backward cuts dL/dy into
    the branches' pieces and returns the tuple of the branches' input gradients (None for an
    embedding branch, whose input is integer indices); with ``input_grad=False`` it tells every
    branch so and returns None.

    Parameters
    ----------
    *branches : Layer
        One layer (or `Sequential`) per input, registered as ``"0"``, ``"1"``, ... so parameter
        names are ``0.weight``, ``1.0.weight``, ... as in a `torch.nn.ModuleList`.
    axis : int
        The axis the outputs are joined along (-1, features, by default). The outputs must agree
        on every other axis, in particular on the batch size.

    Shapes
    ------
    x : tuple of len(branches) arrays, each (N, ...) as its branch expects -> y : e.g.
    (N, sum_i out_i) for branches producing (N, out_i).

    Examples
    --------
    >>> model = Sequential(
    ...     Parallel(Embedding(944, 32), Embedding(1683, 32), Sequential(Linear(5, 8), ReLU())),
    ...     Linear(72, 1),
    ... )
    >>> model((user_ids, item_ids, dense))        # (N,), (N,), (N, 5) -> (N, 1)
    """

    def __init__(self, *branches: Layer, axis: int = -1) -> None:
        super().__init__()
        _register_branches(self, branches)
        self.axis = int(axis)
        self._sizes: list[int] | None = None

    @property
    def branches(self) -> list[Layer]:
        return self.children()

    def __len__(self) -> int:
        return len(self.children())

    def __getitem__(self, i: int) -> Layer:
        return self.branches[i]

    def forward(self, x: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:  # type: ignore[override]
        n = len(self.children())
        if not isinstance(x, (tuple, list)) or len(x) != n:
            got = (
                f"a {type(x).__name__} of {len(x)} items"
                if isinstance(x, (tuple, list))
                else f"{type(x).__name__} of shape {np.shape(x)}"
            )
            raise ValueError(f"Parallel with {n} branches expects a tuple of {n} arrays, one per branch; got {got}")
        outputs = [branch.forward(xi) for branch, xi in zip(self.children(), x)]
        y, self._sizes = _concat(self, outputs, self.axis)
        return y

    def backward(  # type: ignore[override]
        self, grad_out: np.ndarray, *, input_grad: bool = True
    ) -> tuple[np.ndarray | None, ...] | None:
        if self._sizes is None:
            raise self.no_cache_error()
        pieces = _split(grad_out, self._sizes, self.axis)
        self._sizes = None
        grads = tuple(backward_of(branch, g, input_grad) for branch, g in zip(self.children(), pieces))
        return grads if input_grad else None

    def input_dtype(self, floating: np.dtype) -> tuple[np.dtype, ...]:  # type: ignore[override]
        """One dtype per branch, each what the branch reads (`floating` for a nested multi-input branch)."""
        dtypes = (branch.input_dtype(floating) for branch in self.children())
        return tuple(np.dtype(floating) if isinstance(d, tuple) else d for d in dtypes)
