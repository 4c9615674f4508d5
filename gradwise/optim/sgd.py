"""Stochastic gradient descent with momentum and Nesterov momentum, in PyTorch's form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim import _fused
from gradwise.optim.optimizer import LearningRate, Optimizer, blocks, objective_grad


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay.

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\eta`, momentum
    :math:`\mu`, dampening :math:`\tau` and weight decay :math:`\lambda`:

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
              \quad(- \text{ when maximizing})\\
        b_t &= \begin{cases} g_1 & t = 1\\ \mu\, b_{t-1} + (1-\tau)\, g_t & t > 1\end{cases}\\
        d_t &= \begin{cases} g_t + \mu\, b_t & \text{Nesterov}\\ b_t & \text{otherwise}
               \end{cases}
               \qquad(d_t = g_t \text{ when } \mu = 0)\\
        \theta_t &= \theta_{t-1} - \eta\, d_t

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 1e-3
        :math:`\eta`, or a schedule ``f(step) -> float``. Default as in torch 2.x.
    momentum : float, default 0
        :math:`\mu \ge 0`; 0 disables the momentum buffer.
    dampening : float, default 0
        :math:`\tau`: the gradient enters the buffer with weight :math:`1-\tau` (except on the
        first step).
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, L2 penalty added to the gradient ("coupled" decay).
    nesterov : bool, default False
        Nesterov momentum; requires ``momentum > 0`` and ``dampening == 0``.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    fused : bool or None, default None
        Update each parameter in one compiled pass over its memory (numba, the ``gradwise[fast]``
        extra), with results identical to the NumPy reference bit for bit. None: when numba is
        installed and the parameters hold at least 65,536 entries (`_fused.AUTO_MIN_SIZE`: below
        it, the one-time ~0.4 s load of the kernels costs more than they save); True: require it (``ModuleNotFoundError`` naming the extra otherwise); False:
        the NumPy reference. ``torch.optim.SGD`` calls its variants ``fused=``/``foreach=``.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and momentum entries to zero after each step (see `Optimizer`).

    Notes
    -----
    This is PyTorch's form of momentum: the learning rate multiplies the buffer when the step is
    taken, :math:`\theta \leftarrow \theta - \eta\,b`, while Sutskever et al. (2013) fold it into
    the velocity, :math:`v \leftarrow \mu v - \eta g,\ \theta \leftarrow \theta + v`. The two agree
    for a constant learning rate (:math:`v = -\eta b`) and differ when the rate changes: here a new
    rate applies at once to the whole accumulated momentum. The first step sets
    :math:`b_1 = g_1`, not :math:`(1-\tau) g_1`. Nesterov momentum is Sutskever et al.'s (2013)
    look-ahead rewritten, as in Bengio et al. (2013), in terms of the look-ahead point, so the
    gradient is taken at the stored parameters and the step is :math:`g_t + \mu b_t`.

    References
    ----------
    Polyak, B. T. (1964). Some methods of speeding up the convergence of iteration methods.
    USSR Computational Mathematics and Mathematical Physics 4(5).
    Sutskever, I., Martens, J., Dahl, G., Hinton, G. (2013). On the importance of initialization
    and momentum in deep learning. ICML.
    Bengio, Y., Boulanger-Lewandowski, N., Pascanu, R. (2013). Advances in optimizing recurrent
    networks. ICASSP.
    PyTorch `torch.optim.SGD` documentation, the algorithm box (the form implemented here).
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
        *,
        fused: bool | None = None,
        flat: bool = False,
        flush_denormals: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)
        self.fused = _fused.resolve(fused, "SGD", type(self)._update is not SGD._update,
                                    size=sum(p.size for g in self.param_groups for p in g["params"]))

    _nonnegative = ("momentum", "weight_decay")

    def _check_group(self, group: Mapping[str, Any]) -> None:
        super()._check_group(group)
        momentum, dampening, nesterov = group["momentum"], group["dampening"], group["nesterov"]
        if nesterov and not (momentum > 0 and dampening == 0):
            raise ValueError(f"{nesterov=} requires momentum > 0 and dampening == 0, "
                             f"got {momentum=}, {dampening=}")

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        # float(): NumPy float64 hyperparameters would promote float32 arrays.
        mu = float(group["momentum"])
        tau = float(group["dampening"])
        wd = float(group["weight_decay"])
        maximize, nesterov = bool(group["maximize"]), bool(group["nesterov"])

        b = state.get("momentum_buffer") if mu != 0 else None
        first = mu != 0 and b is None
        if first:
            # Allocated once, here rather than in _init_state so that a momentum switched on
            # later behaves as in torch (b_1 = g_1 below).
            b = state["momentum_buffer"] = np.empty_like(p.data)
        arrays = [p.data, p.grad] if b is None else [p.data, p.grad, b]
        # Block by block, so that each array crosses the memory bus once per step (see `blocks`).
        scratch = [self._scratch(p, 0), self._scratch(p, 1)]
        for theta, grad, *buf, g_buf, tmp in blocks(arrays, scratch):
            # g_t = ±grad + lambda * theta   (the gradient block itself, or g_buf)
            g = objective_grad(grad, theta, wd, maximize, out=g_buf)
            d = g
            if buf:
                (b,) = buf
                if first:
                    # b_1 = g_1
                    np.copyto(b, g)
                else:
                    # b_t = mu * b_{t-1} + (1 - tau) * g_t
                    np.multiply(b, mu, out=b)
                    if tau == 0:
                        np.add(b, g, out=b)
                    else:
                        np.multiply(g, 1 - tau, out=tmp)
                        np.add(b, tmp, out=b)
                if nesterov:
                    # d_t = g_t + mu * b_t   (Nesterov excludes dampening: tmp is free)
                    d = tmp
                    np.multiply(b, mu, out=d)
                    np.add(d, g, out=d)
                else:
                    # d_t = b_t
                    d = b
            # theta_t = theta_{t-1} - lr * d_t
            np.multiply(d, lr, out=tmp)
            np.subtract(theta, tmp, out=theta)

    def _fused_update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> bool:
        # The same update as `_update`, in one compiled pass (gradwise/optim/_fused.py).
        mu = float(group["momentum"])
        tau = float(group["dampening"])
        wd = float(group["weight_decay"])
        b = state.get("momentum_buffer") if mu != 0 else None
        first = mu != 0 and b is None
        arrays = [p.data, p.grad] + ([] if b is None else [b])
        if not all(a.flags.c_contiguous for a in arrays):
            return False
        if first:
            b = state["momentum_buffer"] = np.empty_like(p.data)
        dt = p.data.dtype.type
        _fused.run(
            "sgd", p.data.size, p.data.reshape(-1), p.grad.reshape(-1),
            p.data.reshape(-1) if b is None else b.reshape(-1),
            dt(wd), dt(mu), dt(1 - tau), dt(lr), dt(np.finfo(dt).tiny), dt(0),
            wd != 0, bool(group["maximize"]), mu != 0, first, tau != 0,
            bool(group["nesterov"]), self.flush_denormals,
        )
        return True
