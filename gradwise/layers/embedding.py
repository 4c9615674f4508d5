"""Lookup tables: `Embedding`."""

from __future__ import annotations

import numpy as np

from gradwise.core import DEFAULT_DTYPE, Layer, Parameter
from gradwise.random import resolve as _resolve_rng


class Embedding(Layer):
    """A table of `num_embeddings` vectors of size `embedding_dim`, indexed by integers.

    ``y[..., :] = weight[x[...], :]``, as `torch.nn.Embedding`. The backward sums the upstream
    gradient rows of each index into ``weight.grad`` (an index seen k times in the batch receives
    the sum of its k rows); rows that were not looked up receive nothing.

    Parameters
    ----------
    num_embeddings : int
        Number of rows; valid indices are ``0 .. num_embeddings - 1``.
    embedding_dim : int
        Size of each vector.
    padding_idx : int, optional
        A row that stands for "no item" (padding in a sequence). It starts at zero and never
        receives a gradient, so it stays zero unless you write to it (an optimizer with weight
        decay leaves it at zero too, since it is zero). Negative values count from the end,
        as in PyTorch.
    max_norm : float, optional
        At every forward, each row that is looked up and whose `norm_type`-norm exceeds `max_norm`
        is rescaled to norm ``max_norm`` **in place, in the weight itself** (PyTorch's
        ``embedding_renorm_``: scale ``max_norm / (norm + 1e-7)``). The rescaling is not
        differentiated: the gradient is the plain scatter of the rescaled rows' lookups.
    norm_type : float
        The p of the p-norm used for `max_norm` (2 by default; ``inf`` allowed).
    rng : np.random.Generator, optional
        Source of the initial weights; the library default when None.
    dtype : numpy dtype
        float32 unless asked otherwise.

    Shapes
    ------
    x : integer array of any shape ``(*)`` -> y : ``(*, embedding_dim)``;
    weight : ``(num_embeddings, embedding_dim)``, initialized N(0, 1) as in PyTorch (the padding
    row zeroed).

    Notes
    -----
    The input is a set of indices, not a differentiable quantity, so `backward` returns None. An
    Embedding must therefore be the first layer of its branch: the first layer of a `Sequential`,
    or the first layer of a branch of `gradwise.layers.Parallel`.

    The scatter sorts the batch's indices and sums the rows of equal indices with one
    ``np.add.reduceat`` (cost O(B log B + B * dim), independent of `num_embeddings`). Measured on
    256 to 5120 indices, 1k to 100k rows, dim 8 to 64: as fast as ``np.add.at`` at dim 8 and 2.5-7x
    faster at dim >= 32; a ``np.bincount`` per column or over flattened ``idx * dim + column``
    costs O(num_embeddings * dim) per step and is 10-100x slower for large tables
    (``docs/structure.md`` has the table).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        *,
        rng: np.random.Generator | None = None,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        self._configure(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type)
        weight = _resolve_rng(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.weight = Parameter(weight)

    def _configure(
        self, num_embeddings: int, embedding_dim: int, padding_idx: int | None, max_norm: float | None, norm_type: float
    ) -> None:
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Embedding: {name}={value!r} must be a positive integer")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise ValueError(f"Embedding: {padding_idx=} must be an integer or None")
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: {padding_idx=} must be in [-{num_embeddings}, {num_embeddings}) for {num_embeddings=}"
                )
            padding_idx = int(padding_idx) % num_embeddings
        if max_norm is not None and not max_norm > 0:
            raise ValueError(f"Embedding: {max_norm=} must be positive or None")
        if not norm_type > 0:
            raise ValueError(f"Embedding: {norm_type=} must be positive")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx: int | None = padding_idx
        self.max_norm = None if max_norm is None else float(max_norm)
        self.norm_type = float(norm_type)
        self._idx: np.ndarray | None = None  # flattened indices of the last forward
        self._shape: tuple[int, ...] | None = None  # their shape

    @classmethod
    def from_pretrained(
        cls,
        embeddings: np.ndarray,
        freeze: bool = True,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        *,
        dtype: type | np.dtype = DEFAULT_DTYPE,
    ) -> Embedding:
        """An Embedding whose weight is a copy of `embeddings`, as `torch.nn.Embedding.from_pretrained`.

        Parameters
        ----------
        embeddings : array_like, shape (num_embeddings, embedding_dim)
            Pretrained vectors (word2vec, GloVe, a previous model's table). Copied, in `dtype`.
        freeze : bool
            When True the weight has ``requires_grad = False``: optimizers skip it and `backward`
            does not compute its gradient. Set ``layer.weight.requires_grad = True`` later to
            fine-tune.
        padding_idx, max_norm, norm_type
            As in the constructor. As in PyTorch, the padding row is kept as given (not zeroed);
            it still never receives a gradient.
        """
        matrix = np.asarray(embeddings)
        if matrix.ndim != 2:
            raise ValueError(
                f"Embedding.from_pretrained: embeddings must be 2-D (num_embeddings, embedding_dim), "
                f"got shape {matrix.shape}"
            )
        if not np.issubdtype(matrix.dtype, np.number) or np.issubdtype(matrix.dtype, np.complexfloating):
            raise TypeError(f"Embedding.from_pretrained: embeddings must be real numbers, got dtype {matrix.dtype}")
        layer = cls.__new__(cls)
        Layer.__init__(layer)
        layer._configure(matrix.shape[0], matrix.shape[1], padding_idx, max_norm, norm_type)
        layer.weight = Parameter(np.array(matrix, dtype=dtype, copy=True))
        layer.weight.requires_grad = not freeze
        return layer

    # ------------------------------------------------------------------ computation
    def forward(self, x: np.ndarray) -> np.ndarray:
        idx = self._check_indices(x)
        if self.max_norm is not None:
            self._renorm(idx)
        self._shape = idx.shape
        self._idx = idx.reshape(-1)
        return self.weight.data[idx]

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> None:
        # Indices have no gradient: None whatever `input_grad` says. The scatter below reads
        # `weight.grad`, which fills it with zeros first if it is marked zero.
        if self._idx is None or self._shape is None:
            raise self.no_cache_error()
        idx, shape = self._idx, self._shape
        self._idx = self._shape = None
        expected = (*shape, self.embedding_dim)
        if grad_out.shape != expected:
            raise ValueError(f"{self._name()}: grad_out of shape {grad_out.shape} does not match the output {expected}")
        if not self.weight.requires_grad or idx.size == 0:
            return
        g = grad_out.reshape(-1, self.embedding_dim)
        # dL/dW[r] = sum over positions p with idx[p] == r of g[p]: sort the indices, then one
        # reduceat sums each run of equal indices (see the class notes for the benchmark).
        order = np.argsort(idx)
        sorted_idx = idx[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_idx[1:] != sorted_idx[:-1])))
        rows = sorted_idx[starts]
        sums = np.add.reduceat(g[order], starts, axis=0)
        if self.padding_idx is not None:
            keep = rows != self.padding_idx
            rows, sums = rows[keep], sums[keep]
        self.weight.grad[rows] += sums  # `rows` are unique, so fancy += is a plain scatter

    def _renorm(self, idx: np.ndarray) -> None:
        """PyTorch's ``embedding_renorm_``: rows of `idx` with norm > max_norm scaled to max_norm."""
        rows = np.unique(idx)
        w = self.weight.data
        norms = np.linalg.norm(w[rows].astype(np.float64), ord=self.norm_type, axis=1)
        over = norms > self.max_norm
        if over.any():
            scale = self.max_norm / (norms[over] + 1e-7)
            w[rows[over]] *= scale[:, None].astype(w.dtype)

    def _check_indices(self, x: np.ndarray) -> np.ndarray:
        idx = np.asarray(x)
        if idx.dtype.kind not in "iu":  # not an integer dtype (as np.issubdtype, 10x faster per batch)
            flat = idx.reshape(-1)
            example = ""
            if flat.size and np.issubdtype(idx.dtype, np.number):
                is_float = np.issubdtype(idx.dtype, np.floating)
                bad = np.flatnonzero(flat != np.round(flat)) if is_float else np.zeros(0, dtype=np.intp)
                k = int(bad[0]) if bad.size else 0
                example = f" (index {flat[k].item()!r} at position {_position(k, idx.shape)})"
            raise TypeError(
                f"{self._name()}: indices must be an integer array, got dtype {idx.dtype}{example}; valid indices "
                f"are integers 0..{self.num_embeddings - 1} (cast whole-number floats with .astype(np.int64))"
            )
        if idx.size:
            lo, hi = idx.min(), idx.max()
            if lo < 0 or hi >= self.num_embeddings:
                flat = idx.reshape(-1)
                k = int(np.flatnonzero((flat < 0) | (flat >= self.num_embeddings))[0])
                raise IndexError(
                    f"{self._name()}: index {int(flat[k])} at position {_position(k, idx.shape)} of the "
                    f"input (shape {idx.shape}) is out of range; valid indices are 0..{self.num_embeddings - 1}"
                )
        return idx

    def _name(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
            if self.norm_type != 2.0:
                s += f", norm_type={self.norm_type}"
        return s

    def input_dtype(self, floating: np.dtype) -> np.dtype:
        """int64: an embedding reads indices (see `Layer.input_dtype`). A lookup counts 0 FLOPs."""
        return np.dtype(np.int64)


def _position(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The multi-index of a flat position, as plain ints (for messages)."""
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))
