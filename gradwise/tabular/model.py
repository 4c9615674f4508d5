"""The tabular model: one embedding per categorical column, the continuous columns, an MLP.

Built from existing layers as fastai's ``TabularModel`` is (fastai/tabular/model.py and
``LinBnDrop`` in fastai/layers.py, with their default ``lin_first=True``)::

    Sequential(
      Parallel(                                   # input (x_cat (N, k) int64, x_cont (N, c) float32)
        Sequential(SplitColumns(k),               # x_cat -> k index columns (N,)
                   Parallel(Embedding(n_1, d_1), ..., Embedding(n_k, d_k)),
                   Dropout(emb_dropout)),         # only when emb_dropout > 0
        BatchNorm1d(c)),                          # Identity when bn_cont=False
      Sequential(Linear(d + c, h_1, bias=False), ReLU(), BatchNorm1d(h_1), Dropout(p_1)),
      ...                                         # one such block per hidden layer
      Linear(h_last, out_features))               # bias, no batch norm (bn_final=False)

Each hidden block is Linear -> ReLU -> BatchNorm1d -> Dropout, fastai's order (the Linear has
no bias when a batch norm follows it; the Dropout is left out when p = 0). Embedding sizes
default to fastai's rule ``min(600, round(1.6 * n**0.56))`` with n the column's cardinality
including the reserved index 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradwise.core import DEFAULT_DTYPE, Layer, Sequential
from gradwise.layers import BatchNorm1d, Dropout, Embedding, Linear, Parallel, ReLU
from gradwise.random import resolve as _resolve_rng

__all__ = ["Identity", "NoFeatures", "SplitColumns", "emb_sz_rule", "embedding_sizes", "tabular_model"]


def emb_sz_rule(n_cat: int) -> int:
    """fastai's rule of thumb for an embedding's width: ``min(600, round(1.6 * n_cat**0.56))``.

    `n_cat` is the number of rows of the table, the reserved index included (fastai counts its
    ``#na#`` class too). Python's `round` (half to even), as fastai's.
    """
    if isinstance(n_cat, bool) or not isinstance(n_cat, (int, np.integer)) or n_cat < 1:
        raise ValueError(f"emb_sz_rule: {n_cat=} must be a positive integer")
    return int(min(600, round(1.6 * int(n_cat) ** 0.56)))


def embedding_sizes(
    cardinalities: Sequence[int], names: Sequence[str] | None = None, overrides: Mapping[str, int] | None = None
) -> list[int]:
    """The width of each categorical column's embedding: `overrides[name]` where given, else `emb_sz_rule`."""
    overrides = dict(overrides or {})
    names = list(names) if names is not None else [str(i) for i in range(len(cardinalities))]
    if len(names) != len(cardinalities):
        raise ValueError(f"embedding_sizes: {len(names)} names for {len(cardinalities)} cardinalities")
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"emb_sizes: no categorical column {unknown[0]!r}; the columns are {names}")
    sizes = []
    for name, n in zip(names, cardinalities):
        size = overrides.get(name, emb_sz_rule(n))
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"emb_sizes[{name!r}] = {size!r} must be a positive integer")
        sizes.append(int(size))
    return sizes


class SplitColumns(Layer):
    """``(N, k)`` -> a tuple of the k columns, each ``(N,)``: feeds one column to each branch of a `Parallel`.

    The backward stacks the branches' gradients back into ``(N, k)``; when every branch returns
    None (embeddings of integer indices, the usual case) it returns None.
    """

    def __init__(self, n_columns: int) -> None:
        super().__init__()
        if isinstance(n_columns, bool) or not isinstance(n_columns, (int, np.integer)) or n_columns < 1:
            raise ValueError(f"SplitColumns: {n_columns=} must be a positive integer")
        self.n_columns = int(n_columns)
        self._ready = False

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_columns:
            raise ValueError(
                f"SplitColumns({self.n_columns}): input of shape {x.shape}, expected (N, {self.n_columns})"
            )
        self._ready = True
        return tuple(x[:, j] for j in range(self.n_columns))

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> np.ndarray | None:
        if not self._ready:
            raise self.no_cache_error()
        self._ready = False
        if not input_grad or all(g is None for g in grad_out):
            return None
        return np.stack([np.zeros(0) if g is None else g for g in grad_out], axis=1)

    def input_dtype(self, floating: np.dtype) -> np.dtype:
        return np.dtype(np.int64)

    def extra_repr(self) -> str:
        return f"n_columns={self.n_columns}"


class NoFeatures(Layer):
    """(N, ...) -> (N, 0): the branch for an input a model has no columns of (no categorical or no
    continuous column), so the model still reads ``(x_cat, x_cont)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), 0), dtype=DEFAULT_DTYPE)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> None:
        return None


class Identity(Layer):
    """y = x (a branch that passes the continuous columns through when ``bn_cont=False``)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        return grad_out if input_grad else None


def _trunc_normal_(emb: Embedding, rng: np.random.Generator, std: float = 0.01) -> None:
    # fastai's Embedding init, trunc_normal_(std=0.01): N(0, 1) folded into (-2, 2) by fmod, times std.
    w = np.fmod(rng.standard_normal(emb.weight.shape), 2.0) * std
    emb.weight.data[...] = w.astype(emb.weight.dtype)


def _ps(dropout: float | Sequence[float], n: int) -> list[float]:
    ps = [float(dropout)] * n if isinstance(dropout, (int, float)) else [float(p) for p in dropout]
    if len(ps) != n:
        raise ValueError(f"dropout: {len(ps)} probabilities for {n} hidden layers (give one, or one per layer)")
    for p in ps:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout: {p} must be in [0, 1)")
    return ps


def tabular_model(
    cardinalities: Sequence[int],
    n_cont: int,
    out_features: int,
    layers: Sequence[int] = (200, 100),
    *,
    emb_sizes: Sequence[int] | None = None,
    dropout: float | Sequence[float] = 0.0,
    emb_dropout: float = 0.0,
    bn_cont: bool = True,
    use_bn: bool = True,
    bn_final: bool = False,
    rng: np.random.Generator | None = None,
    dtype: type | np.dtype = DEFAULT_DTYPE,
) -> Sequential:
    """fastai's ``TabularModel`` from gradwise layers (the module docstring shows the layout).

    Parameters
    ----------
    cardinalities : sequence of int
        Rows of each categorical column's embedding (its categories plus the reserved index 0;
        `TabularProcessor.cardinalities`). May be empty.
    n_cont : int
        Number of continuous columns (may be 0).
    out_features : int
        Outputs: the number of classes (scores for `SoftmaxCrossEntropy`), 1 for regression.
    layers : sequence of int
        Hidden layer widths (fastai's default [200, 100]).
    emb_sizes : sequence of int, optional
        Embedding widths, one per categorical column; `emb_sz_rule` of each cardinality by default.
    dropout : float or sequence of float
        Dropout after each hidden block (fastai's ``ps``), one value for all or one per layer.
    emb_dropout : float
        Dropout on the concatenated embeddings (fastai's ``embed_p``).
    bn_cont : bool
        Batch-normalize the continuous columns before the MLP.
    use_bn, bn_final : bool
        BatchNorm1d in the hidden blocks; and after the output layer.
    rng : np.random.Generator, optional
        Initial weights (embeddings N(0, 0.01^2) truncated at 2 std as fastai's; linear layers
        PyTorch's default); the library default when None.

    Returns
    -------
    Sequential
        Input ``(x_cat (N, k) int64, x_cont (N, n_cont) float)``, output ``(N, out_features)`` scores.
    """
    rng = _resolve_rng(rng)
    cards = [int(n) for n in cardinalities]
    for n in cards:
        if n < 1:
            raise ValueError(f"tabular_model: cardinalities must be positive, got {cards}")
    if n_cont < 0 or not isinstance(n_cont, (int, np.integer)):
        raise ValueError(f"tabular_model: {n_cont=} must be a non-negative integer")
    if not cards and not n_cont:
        raise ValueError("tabular_model: needs at least one categorical or continuous column")
    if out_features < 1:
        raise ValueError(f"tabular_model: {out_features=} must be positive")
    widths = [int(h) for h in layers]
    if any(h < 1 for h in widths):
        raise ValueError(f"tabular_model: {layers=} must be positive widths")
    sizes = list(emb_sizes) if emb_sizes is not None else [emb_sz_rule(n) for n in cards]
    if len(sizes) != len(cards):
        raise ValueError(f"tabular_model: {len(sizes)} emb_sizes for {len(cards)} categorical columns")
    if not 0.0 <= emb_dropout < 1.0:
        raise ValueError(f"tabular_model: {emb_dropout=} must be in [0, 1)")
    ps = _ps(dropout, len(widths))

    branches: list[Layer] = []
    if cards:
        embeds = []
        for n, d in zip(cards, sizes):
            emb = Embedding(n, int(d), rng=rng, dtype=dtype)
            _trunc_normal_(emb, rng)
            embeds.append(emb)
        front: list[Layer] = [SplitColumns(len(cards)), Parallel(*embeds)]
        if emb_dropout > 0:
            front.append(Dropout(emb_dropout, rng=rng))
        branches.append(Sequential(*front))
    else:
        branches.append(NoFeatures())
    if n_cont:
        branches.append(BatchNorm1d(n_cont, dtype=dtype) if bn_cont else Identity())
    else:
        branches.append(NoFeatures())
    blocks: list[Layer] = [Parallel(*branches)]
    n_in = sum(sizes) + n_cont
    for h, p in zip(widths, ps):
        block: list[Layer] = [Linear(n_in, h, bias=not use_bn, rng=rng, dtype=dtype), ReLU()]
        if use_bn:
            block.append(_batch_norm(h, dtype))
        if p > 0:
            block.append(Dropout(p, rng=rng))
        blocks.append(Sequential(*block))
        n_in = h
    head: list[Layer] = [Linear(n_in, int(out_features), bias=not bn_final, rng=rng, dtype=dtype)]
    if bn_final:
        head.append(_batch_norm(int(out_features), dtype))
    blocks.append(head[0] if len(head) == 1 else Sequential(*head))
    return Sequential(*blocks)


def _batch_norm(n: int, dtype: Any) -> BatchNorm1d:
    bn = BatchNorm1d(n, dtype=dtype)
    assert bn.bias is not None
    bn.bias.data[...] = 1e-3  # fastai's BatchNorm(): weight 1, bias 1e-3
    return bn
