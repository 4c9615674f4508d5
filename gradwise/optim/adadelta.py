"""Adadelta: RMSprop-like step sizes in the units of the parameters, in PyTorch's form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim.optimizer import LearningRate, Optimizer


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), with PyTorch's learning-rate multiplier.

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\eta`, decay rate
    :math:`\rho`, weight decay :math:`\lambda` and :math:`E[g^2]_0 = E[\Delta\theta^2]_0 = 0`:

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}\\
        E[g^2]_t &= \rho\, E[g^2]_{t-1} + (1-\rho)\, g_t^2\\
        \Delta\theta_t &= \frac{\sqrt{E[\Delta\theta^2]_{t-1} + \epsilon}}
                               {\sqrt{E[g^2]_t + \epsilon}}\; g_t\\
        E[\Delta\theta^2]_t &= \rho\, E[\Delta\theta^2]_{t-1} + (1-\rho)\, \Delta\theta_t^2\\
        \theta_t &= \theta_{t-1} - \eta\, \Delta\theta_t

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 1.0
        :math:`\eta`, a multiplier of the step (Zeiler's algorithm is :math:`\eta = 1`), or a
        schedule ``f(step) -> float``.
    rho : float, default 0.9
        :math:`\rho \in [0, 1)`, decay rate of both running averages.
    eps : float, default 1e-6
        :math:`\epsilon > 0`, added *inside* both square roots (Zeiler's :math:`\mathrm{RMS}`).
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, L2 penalty added to the gradient.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and state entries to zero after each step (see `Optimizer`).

    Notes
    -----
    Conventions, PyTorch's (sources differ):

    - Zeiler's Algorithm 1 has no learning rate: the ratio of the two RMS values gives the step the
      units of :math:`\theta`. PyTorch multiplies the step by ``lr`` anyway (default 1.0, which is
      Zeiler's method), so that schedules and param groups work as for every other optimizer.
      Keras long defaulted ``learning_rate`` to 0.001, which makes Adadelta a thousand times slower
      than the paper's method; copy ``lr`` values between libraries with care.
    - :math:`\epsilon` sits inside the roots, :math:`\mathrm{RMS}[x] = \sqrt{E[x^2] + \epsilon}`, as
      in the paper. In the numerator it is what starts the method (:math:`E[\Delta\theta^2]_0 = 0`),
      so its value sets the size of the first steps: :math:`\sqrt{\epsilon}/\sqrt{(1-\rho)g^2}`.
    - The accumulated update :math:`E[\Delta\theta^2]` records :math:`\Delta\theta_t` *before* the
      multiplication by ``lr``.

    References
    ----------
    Zeiler, M. D. (2012). ADADELTA: An adaptive learning rate method. arXiv:1212.5701.
    PyTorch `torch.optim.Adadelta` documentation, the algorithm box (the form implemented here).
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        maximize: bool = False,
        *,
        flat: bool = False,
        flush_denormals: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)

    _positive = ("eps",)
    _nonnegative = ("weight_decay",)
    _unit_interval = ("rho",)

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "step": 0,
            "square_avg": np.zeros_like(p.data),   # E[g^2]
            "acc_delta": np.zeros_like(p.data),    # E[delta theta^2]
        }

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        rho, eps = float(group["rho"]), float(group["eps"])
        state["step"] += 1

        # g_t = ±grad + lambda * theta   (p.grad itself, or scratch slot 0)
        g = self._grad_with_decay(p, float(group["weight_decay"]), bool(group["maximize"]))
        sq_avg, acc_delta = state["square_avg"], state["acc_delta"]
        tmp, delta = self._scratch(p, 1), self._scratch(p, 2)

        # E[g^2]_t = rho E[g^2]_{t-1} + (1 - rho) g_t^2
        np.multiply(sq_avg, rho, out=sq_avg)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1 - rho, out=tmp)
        np.add(sq_avg, tmp, out=sq_avg)
        # RMS[g]_t = sqrt(E[g^2]_t + eps)
        np.add(sq_avg, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        # delta_t = RMS[delta]_{t-1} / RMS[g]_t * g_t,
        # RMS[delta]_{t-1} = sqrt(E[delta^2]_{t-1} + eps)
        np.add(acc_delta, eps, out=delta)
        np.sqrt(delta, out=delta)
        np.divide(delta, tmp, out=delta)
        np.multiply(delta, g, out=delta)
        # E[delta^2]_t = rho E[delta^2]_{t-1} + (1 - rho) delta_t^2
        np.multiply(acc_delta, rho, out=acc_delta)
        np.multiply(delta, delta, out=tmp)
        np.multiply(tmp, 1 - rho, out=tmp)
        np.add(acc_delta, tmp, out=acc_delta)
        # theta_t = theta_{t-1} - eta * delta_t
        np.multiply(delta, lr, out=delta)
        np.subtract(p.data, delta, out=p.data)
