"""Gradient clipping, in place, between ``backward`` and ``optimizer.step()``.

Semantics follow ``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``. Parameters with
``requires_grad=False`` are left out, both from the norm and from the scaling: the optimizer does
not use their gradients (torch leaves them out the same way, since their ``grad`` is None).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

from gradwise.core import Parameter

__all__ = ["clip_grad_norm", "clip_grad_value", "grad_norm"]


def _params(params: Parameter | Iterable[Parameter]) -> list[Parameter]:
    items = [params] if isinstance(params, Parameter) else list(params)
    for i, p in enumerate(items):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] is a {type(p).__name__}, not a Parameter")
    return [p for p in items if p.requires_grad]


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name}={value!r} must be a number > 0")
    return float(value)


# Elements per float64 chunk when squaring lower-precision gradients: accurate sums without a
# float64 copy of a whole (possibly huge) gradient.
_CHUNK = 1 << 16


def _sum_of_squares(g: np.ndarray) -> float:
    """sum(g**2) accumulated in float64, for a 1-D array; no array as large as `g` is allocated."""
    if g.dtype == np.float64:
        return float(np.dot(g, g))
    buf = np.empty(min(g.size, _CHUNK), dtype=np.float64)
    total = 0.0
    for start in range(0, g.size, _CHUNK):
        chunk = buf[: min(_CHUNK, g.size - start)]
        np.copyto(chunk, g[start : start + _CHUNK], casting="unsafe")
        total += float(np.dot(chunk, chunk))
    return total


def grad_norm(params: Parameter | Iterable[Parameter], norm_type: float = 2.0) -> float:
    r"""The p-norm of all gradients together, as if concatenated into one vector.

    .. math:: \|g\|_p = \Big(\sum_i \|g_i\|_p^{\,p}\Big)^{1/p}, \qquad
              \|g\|_\infty = \max_i \max |g_i|

    Parameters
    ----------
    params : Parameter or iterable of Parameter
        Frozen ones (``requires_grad=False``) are skipped.
    norm_type : float, default 2
        :math:`p > 0`, or ``inf`` (also ``"inf"``).

    Returns
    -------
    float
        The norm, computed in float64 (0.0 when there is no gradient); NaN or inf if a gradient
        entry is.
    """
    p = float(norm_type)
    if not p > 0:
        raise ValueError(f"{norm_type=} must be > 0 or inf")
    norms = []
    for param in _params(params):
        g = param.grad.ravel()
        if g.size == 0:
            continue
        if p == math.inf:
            # max(max, -min) rather than max(abs(g)): no temporary array; NaN propagates.
            norms.append(max(float(g.max()), -float(g.min())))
        elif p == 2:
            norms.append(math.sqrt(_sum_of_squares(g)))
        else:
            norms.append(float(np.sum(np.abs(g, dtype=np.float64) ** p)) ** (1 / p))
    if not norms:
        return 0.0
    if p == math.inf:
        return max(norms) if not any(map(math.isnan, norms)) else math.nan
    return float(np.linalg.norm(np.asarray(norms), ord=p))


def clip_grad_norm(
    params: Parameter | Iterable[Parameter],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    r"""Rescale all gradients together so that their global norm is at most `max_norm`, in place.

    .. math:: g_i \leftarrow g_i \cdot \min\!\Big(1, \frac{c}{\|g\|_p + 10^{-6}}\Big)

    The direction of the whole update is kept (Pascanu et al., 2013); only its length shrinks. The
    ``1e-6`` keeps the division finite and makes the clipped norm slightly below `max_norm`, as in
    torch. Gradients are left untouched when the norm is already below `max_norm`.

    Parameters
    ----------
    params : Parameter or iterable of Parameter
        Typically ``model.parameters()``; frozen ones are skipped.
    max_norm : float
        :math:`c > 0`.
    norm_type : float, default 2
        :math:`p > 0`, or ``inf`` for the largest absolute entry.
    error_if_nonfinite : bool, default False
        Raise ``RuntimeError`` when the total norm is NaN or inf. Otherwise the gradients are
        scaled anyway, as in torch: a NaN norm turns every gradient into NaN, an infinite one
        zeroes the finite entries.

    Returns
    -------
    float
        The total norm *before* clipping (useful to log: spikes announce divergence).

    References
    ----------
    Pascanu, R., Mikolov, T., Bengio, Y. (2013). On the difficulty of training recurrent neural
    networks. ICML.
    """
    max_norm = _positive("max_norm", max_norm)
    params = _params(params)
    total = grad_norm(params, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total gradient norm of order {float(norm_type)} is {total}, so it cannot be "
            f"clipped; to scale the gradients by it anyway, set error_if_nonfinite=False"
        )
    coef = max_norm / (total + 1e-6)
    if not coef >= 1:  # also NaN: propagate it, as torch.clamp does
        with np.errstate(invalid="ignore"):  # inf * 0 = NaN when the norm is infinite, as in torch
            for p in params:
                np.multiply(p.grad, coef, out=p.grad)
    return total


def clip_grad_value(params: Parameter | Iterable[Parameter], clip_value: float) -> None:
    r"""Clip every gradient entry to ``[-clip_value, clip_value]``, in place.

    .. math:: g \leftarrow \min(\max(g, -c), c)

    Unlike `clip_grad_norm`, this changes the direction of the update; it bounds each coordinate,
    which is what Keras' ``clipvalue`` does. NaN entries stay NaN.

    Parameters
    ----------
    params : Parameter or iterable of Parameter
        Frozen ones are skipped.
    clip_value : float
        :math:`c > 0`.
    """
    c = _positive("clip_value", clip_value)
    for p in _params(params):
        np.clip(p.grad, -c, c, out=p.grad)
