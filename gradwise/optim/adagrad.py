"""Adagrad: per-coordinate step sizes from the sum of all past squared gradients (torch's form)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim.optimizer import LearningRate, Optimizer


class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), with PyTorch's lr decay and accumulator start.

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\eta`, learning-rate decay
    :math:`\kappa`, weight decay :math:`\lambda` and :math:`G_0 = G_{\text{init}}`:

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}\\
        \eta_t &= \frac{\eta}{1 + (t-1)\,\kappa}\\
        G_t &= G_{t-1} + g_t^2\\
        \theta_t &= \theta_{t-1} - \eta_t\,\frac{g_t}{\sqrt{G_t} + \epsilon}

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 1e-2
        :math:`\eta`, or a schedule ``f(step) -> float``.
    lr_decay : float, default 0
        :math:`\kappa \ge 0`: inverse-time decay of the rate with this parameter's step count.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, L2 penalty added to the gradient.
    initial_accumulator_value : float, default 0
        :math:`G_{\text{init}} \ge 0`, the starting value of every entry of the sum of squares.
    eps : float, default 1e-10
        :math:`\epsilon > 0`, added *outside* the square root.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and state entries to zero after each step (see `Optimizer`).

    Notes
    -----
    Conventions, PyTorch's (sources differ):

    - Duchi et al. (2011) write the diagonal update :math:`\eta\,g_t / (\delta + \sqrt{G_t})`: the
      constant is outside the root, as here. TensorFlow's Adagrad has no :math:`\epsilon` in the
      original form but starts the accumulator at 0.1 (``initial_accumulator_value``), which plays
      the same role; Keras adds its ``epsilon`` outside the root as well.
    - ``lr_decay`` is PyTorch's: the rate is divided by :math:`1 + (t-1)\kappa`, with :math:`t` this
      parameter's own step count (first step: the full rate). It multiplies any schedule given as
      ``lr``. Adagrad's own :math:`1/\sqrt{G_t}` already decays the step; most users leave it at 0.
    - A param group's ``initial_accumulator_value`` is honoured, like any hyperparameter;
      ``torch.optim.Adagrad`` fills every accumulator with the constructor's value when it is
      built and ignores the groups' (and a group added later has no state there).
    - The accumulator only grows, so the effective step size shrinks monotonically: the reason
      RMSprop and Adadelta replace the sum by an exponential moving average.

    References
    ----------
    Duchi, J., Hazan, E., Singer, Y. (2011). Adaptive subgradient methods for online learning and
    stochastic optimization. JMLR 12.
    PyTorch `torch.optim.Adagrad` documentation, the algorithm box (the form implemented here).
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
        *,
        flat: bool = False,
        flush_denormals: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)

    _positive = ("eps",)
    _nonnegative = ("lr_decay", "weight_decay", "initial_accumulator_value")

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        # G_0 = initial_accumulator_value everywhere
        init = float(group["initial_accumulator_value"])
        return {"step": 0, "sum": np.full_like(p.data, init)}

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        eps = float(group["eps"])
        state["step"] += 1
        t = state["step"]

        # g_t = ±grad + lambda * theta   (p.grad itself, or scratch slot 0)
        g = self._grad_with_decay(p, float(group["weight_decay"]), bool(group["maximize"]))
        # eta_t = eta / (1 + (t - 1) * kappa)
        clr = lr / (1 + (t - 1) * float(group["lr_decay"]))
        G = state["sum"]
        tmp = self._scratch(p, 1)

        # G_t = G_{t-1} + g_t^2
        np.multiply(g, g, out=tmp)
        np.add(G, tmp, out=G)
        # sqrt(G_t) + eps
        denom = tmp
        np.sqrt(G, out=denom)
        np.add(denom, eps, out=denom)
        # theta_t = theta_{t-1} - eta_t * g_t / (sqrt(G_t) + eps)
        update = denom
        np.divide(g, denom, out=update)
        np.multiply(update, clr, out=update)
        np.subtract(p.data, update, out=p.data)
