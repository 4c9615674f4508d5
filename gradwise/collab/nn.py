"""`EmbeddingNN`: the neural collaborative-filtering model (user and item embeddings into an MLP)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradwise.collab._base import CollabModel, check_y_range
from gradwise.collab.ids import IdEncoder
from gradwise.core import DEFAULT_DTYPE, Layer, Sequential
from gradwise.layers import BatchNorm1d, Dropout, Linear, ReLU
from gradwise.layers.embedding import Embedding
from gradwise.random import resolve as _resolve_rng


def emb_size(n: int) -> int:
    """fastai's rule of thumb for an embedding of `n` rows: ``min(600, round(1.6 * n ** 0.56))``."""
    return int(min(600, round(1.6 * n**0.56)))


class EmbeddingNN(CollabModel):
    r"""Rating of user u for item i from an MLP over the concatenated embeddings.

    .. math::

        h_0 = [e_u ; f_i], \qquad
        h_{l} = \mathrm{Dropout}_{p_l}(\mathrm{BN}(\mathrm{ReLU}(W_l h_{l-1}))), \qquad
        \hat y = \ell + (h - \ell)\,\sigma(w^\top h_L + b)

    fastai's ``EmbeddingNN`` (a ``TabularModel`` with no continuous columns): each hidden layer
    is fastai's ``LinBnDrop(lin_first=True)`` (Linear without bias when batch norm follows, ReLU,
    BatchNorm1d, Dropout), then a Linear to one output and the sigmoid range of `EmbeddingDotBias`.
    `forward` concatenates the two lookups and `backward` splits the MLP's input gradient
    between the two tables (their scatter is `gradwise.layers.Embedding`'s).

    Parameters
    ----------
    users, items : int or IdEncoder
        As in `EmbeddingDotBias`.
    layers : sequence of int, default (50,)
        Hidden widths (fastai's ``collab_learner`` default is ``[n_factors]``).
    emb_sizes : (int, int), optional
        Widths of the user and item embeddings; fastai's `emb_size` rule when None.
    ps : float or sequence of float, default 0
        Dropout after each hidden layer.
    embed_p : float, default 0
        Dropout on the concatenated embeddings.
    use_bn : bool, default True
    y_range : (float, float) or None, default (0, 5.5)
    init_std : float, default 0.01
        The embeddings start N(0, init_std^2), as fastai's ``Embedding``; the Linear layers keep
        PyTorch's default initialization.
    rng, dtype
        As usual.

    Shapes
    ------
    x : int64 ``(N, 2)`` -> ``(N,)``.
    """

    def __init__(
        self,
        users: int | IdEncoder,
        items: int | IdEncoder,
        layers: Sequence[int] = (50,),
        emb_sizes: tuple[int, int] | None = None,
        ps: float | Sequence[float] = 0.0,
        embed_p: float = 0.0,
        use_bn: bool = True,
        y_range: tuple[float, float] | None = (0.0, 5.5),
        *,
        init_std: float = 0.01,
        rng: np.random.Generator | None = None,
        dtype: Any = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        self.y_range = check_y_range(y_range)
        self._setup_ids(users, items)
        widths = [int(w) for w in layers]
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"EmbeddingNN: layers={list(layers)!r} must be a non-empty list of positive widths")
        drops = [float(ps)] * len(widths) if isinstance(ps, (int, float)) else [float(p) for p in ps]
        if len(drops) != len(widths):
            raise ValueError(f"EmbeddingNN: ps has {len(drops)} entries for {len(widths)} layers")
        du, di = emb_sizes if emb_sizes is not None else (emb_size(self.n_users), emb_size(self.n_items))
        if not init_std > 0:
            raise ValueError(f"EmbeddingNN: {init_std=} must be positive")
        g = _resolve_rng(rng)
        self.u_emb = Embedding(self.n_users, int(du), rng=g, dtype=dtype)
        self.i_emb = Embedding(self.n_items, int(di), rng=g, dtype=dtype)
        for table in (self.u_emb, self.i_emb):
            table.weight.data *= np.asarray(init_std, dtype=table.weight.dtype)
        mlp: list[Layer] = [Dropout(embed_p, rng=g)] if embed_p else []
        n_in = int(du) + int(di)
        for width, p in zip(widths, drops):
            mlp += [Linear(n_in, width, bias=not use_bn, rng=g, dtype=dtype), ReLU()]
            if use_bn:
                mlp.append(BatchNorm1d(width, dtype=dtype))
            if p:
                mlp.append(Dropout(p, rng=g))
            n_in = width
        mlp.append(Linear(n_in, 1, rng=g, dtype=dtype))
        self.mlp = Sequential(*mlp)
        self.layer_sizes = tuple(widths)
        self._sig: np.ndarray | None = None
        self._n: int | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        u, i = self._check_input(x)
        h = np.concatenate([self.u_emb.forward(u), self.i_emb.forward(i)], axis=1)
        r = self.mlp.forward(h)[:, 0]
        self._n = len(u)
        return self._squash(np.ascontiguousarray(r))

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> None:
        if self._n is None:
            raise self.no_cache_error()
        n, self._n = self._n, None
        if grad_out.shape != (n,):
            raise ValueError(f"EmbeddingNN: grad_out of shape {grad_out.shape} does not match the output {(n,)}")
        dr = self._squash_backward(grad_out).astype(self.mlp[-1].weight.dtype, copy=False)
        gh = self.mlp.backward(dr[:, None], input_grad=True)
        du = self.u_emb.embedding_dim
        self.u_emb.backward(np.ascontiguousarray(gh[:, :du]))
        self.i_emb.backward(np.ascontiguousarray(gh[:, du:]))

    def extra_repr(self) -> str:
        return (f"users={self.n_users}, items={self.n_items}, emb_sizes=({self.u_emb.embedding_dim}, "
                f"{self.i_emb.embedding_dim}), layers={list(self.layer_sizes)}{self._range_repr()}")
