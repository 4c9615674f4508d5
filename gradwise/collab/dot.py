"""`EmbeddingDotBias`: the dot-product model of collaborative filtering, with biases and a sigmoid range."""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.collab._base import CollabModel, check_y_range
from gradwise.collab._scatter import dot_backward_kernel, resolve_fused, scatter_add_rows
from gradwise.collab.ids import IdEncoder
from gradwise.core import DEFAULT_DTYPE, Parameter
from gradwise.random import resolve as _resolve_rng


class EmbeddingDotBias(CollabModel):
    r"""Rating of user u for item i: a dot product of learned factors plus two biases, squashed.

    .. math::

        r_{ui} &= p_u \cdot q_i + b_u + c_i \\
        \hat y_{ui} &= \ell + (h - \ell)\,\sigma(r_{ui})
            \qquad \text{(the sigmoid range } y\_range = (\ell, h)\text{; } \hat y = r \text{ without it)}

    with :math:`p_u` row u of ``u_weight`` (users x factors), :math:`q_i` row i of ``i_weight``,
    :math:`b_u` and :math:`c_i` entries of ``u_bias`` and ``i_bias``. This is fastai's
    ``EmbeddingDotBias`` (and the ``DotProductBias`` of the fastbook's chapter 8): the sigmoid range
    is fastai's ``sigmoid_range(x, lo, hi) = torch.sigmoid(x) * (hi - lo) + lo``; with
    ``y_range = (0, 5.5)`` a 5-star rating is reachable without saturating the sigmoid.

    Backward, with :math:`g = \partial L/\partial \hat y` and :math:`s = \sigma(r)`:

    .. math::

        \delta = \partial L/\partial r = (h - \ell)\, s (1 - s)\, g, \qquad
        \partial L/\partial p_u \mathrel{+}= \delta\, q_i, \quad
        \partial L/\partial q_i \mathrel{+}= \delta\, p_u, \quad
        \partial L/\partial b_u \mathrel{+}= \delta, \quad
        \partial L/\partial c_i \mathrel{+}= \delta,

    summed over the batch rows that share a user (or item): one scatter-add per table.

    Parameters
    ----------
    users, items : int or IdEncoder
        The tables' row counts, or the encoders of the raw ids (``len(encoder)`` rows: the known
        ids plus the unknown row 0). Saved with the model as the ``user_ids`` / ``item_ids``
        buffers; `predict` takes raw ids.
    n_factors : int, default 50
        Length of each factor vector.
    y_range : (float, float) or None, default (0, 5.5)
        The sigmoid range; None returns the raw score :math:`r`.
    init_std : float, default 0.01
        Factors and biases start N(0, init_std^2), as the fastbook's ``create_params``
        (fastai's ``Embedding`` uses a normal truncated at 2 std of the same scale).
    fused : bool or None, default None
        Write the four gradients in one compiled loop over the batch (numba, ``gradwise[fast]``):
        None uses it when numba is installed, True requires it, False uses NumPy's
        ``np.add.at`` (see `gradwise.collab._scatter` for the measurements).
    rng : np.random.Generator, optional
    dtype : numpy dtype, default float32

    Shapes
    ------
    x : int64 ``(N, 2)`` of (user row, item row) -> ``(N,)`` ratings, as fastai's collab models.
    """

    def __init__(
        self,
        users: int | IdEncoder,
        items: int | IdEncoder,
        n_factors: int = 50,
        y_range: tuple[float, float] | None = (0.0, 5.5),
        *,
        init_std: float = 0.01,
        fused: bool | None = None,
        rng: np.random.Generator | None = None,
        dtype: Any = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        if isinstance(n_factors, bool) or not isinstance(n_factors, (int, np.integer)) or n_factors < 1:
            raise ValueError(f"EmbeddingDotBias: {n_factors=} must be a positive integer")
        if not init_std > 0:
            raise ValueError(f"EmbeddingDotBias: {init_std=} must be positive")
        self.y_range = check_y_range(y_range)
        self._setup_ids(users, items)
        self.n_factors = int(n_factors)
        g = _resolve_rng(rng)
        self.u_weight = Parameter((init_std * g.standard_normal((self.n_users, self.n_factors))).astype(dtype))
        self.i_weight = Parameter((init_std * g.standard_normal((self.n_items, self.n_factors))).astype(dtype))
        self.u_bias = Parameter((init_std * g.standard_normal(self.n_users)).astype(dtype))
        self.i_bias = Parameter((init_std * g.standard_normal(self.n_items)).astype(dtype))
        self.fused = resolve_fused(fused, "EmbeddingDotBias")
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._sig: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        u, i = self._check_input(x)
        pu = self.u_weight.data[u]  # (N, k)
        qi = self.i_weight.data[i]
        r = np.einsum("nk,nk->n", pu, qi)
        r += self.u_bias.data[u]
        r += self.i_bias.data[i]
        self._cache = (u, i, pu, qi)
        return self._squash(r)

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = True) -> None:
        # The input holds indices: no gradient for it, whatever `input_grad` says.
        if self._cache is None:
            raise self.no_cache_error()
        u, i, pu, qi = self._cache
        self._cache = None
        if grad_out.shape != (len(u),):
            raise ValueError(f"EmbeddingDotBias: grad_out of shape {grad_out.shape} does not match the output "
                             f"{(len(u),)}")
        delta = self._squash_backward(grad_out).astype(self.u_weight.dtype, copy=False)
        params = (self.u_weight, self.i_weight, self.u_bias, self.i_bias)
        want = [p.requires_grad for p in params]
        if self.fused and len(u):
            # `.grad` fills each gradient marked zero before the kernel adds to it.
            dot_backward_kernel()(delta, u, i, pu, qi, *(p.grad for p in params), *want)
            return
        d = delta[:, None]
        if self.u_weight.requires_grad:
            scatter_add_rows(self.u_weight, u, qi * d)
        if self.i_weight.requires_grad:
            scatter_add_rows(self.i_weight, i, pu * d)
        if self.u_bias.requires_grad:
            scatter_add_rows(self.u_bias, u, delta)
        if self.i_bias.requires_grad:
            scatter_add_rows(self.i_bias, i, delta)

    def flops(self, input_shape: Any, output_shape: Any) -> int:
        """2 N k for the dot products, plus the two bias additions."""
        n = int(np.prod(input_shape[:1]))
        return 2 * n * self.n_factors + 2 * n

    def extra_repr(self) -> str:
        return f"users={self.n_users}, items={self.n_items}, n_factors={self.n_factors}{self._range_repr()}"
