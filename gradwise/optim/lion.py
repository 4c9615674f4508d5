"""Lion: the sign of an interpolated momentum, with decoupled weight decay (Chen et al., 2023)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim.optimizer import LearningRate, Optimizer


class Lion(Optimizer):
    r"""Lion, EvoLved Sign Momentum (Chen et al., 2023, Algorithm 2).

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\eta`, interpolation and
    momentum rates :math:`\beta_1, \beta_2`, weight decay :math:`\lambda` and :math:`m_0 = 0`:

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1})\\
        c_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t\\
        \theta_t &= \theta_{t-1}
            - \eta\,\left(\operatorname{sign}(c_t) + \lambda\,\theta_{t-1}\right)\\
        m_t &= \beta_2 m_{t-1} + (1-\beta_2)\, g_t

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 1e-4
        :math:`\eta`, or a schedule ``f(step) -> float``. Every coordinate moves by exactly
        :math:`\eta` (plus the decay), so it must be 3-10x smaller than an AdamW rate.
    betas : (float, float), default (0.9, 0.99)
        :math:`(\beta_1, \beta_2)`, each in [0, 1): the weight of the old momentum in the update
        direction, and in the momentum itself.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, *decoupled* (part of the algorithm): the decay is
        :math:`\eta\lambda\theta`, so it must be 3-10x larger than an AdamW value to keep
        :math:`\eta\lambda` the same.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and state entries to zero after each step (see `Optimizer`).

    Notes
    -----
    - The update direction :math:`\operatorname{sign}(c_t)` has entries in :math:`\{-1, 0, 1\}`
      (0 where :math:`c_t = 0`, as ``np.sign``): the step has the same size in every coordinate,
      which is why Lion needs a smaller learning rate than Adam-type methods (whose steps are
      about :math:`\eta\,|\hat m|/\sqrt{\hat v} < \eta`), and a proportionally larger
      :math:`\lambda` for the same effective decay :math:`\eta\lambda`. Chen et al. recommend a
      learning rate 3-10x smaller and a weight decay 3-10x larger than for AdamW.
    - Two rates: the update interpolates with :math:`\beta_1` (0.9) but the momentum is tracked with
      :math:`\beta_2` (0.99), a longer memory; with :math:`\beta_1 = \beta_2` the update is the sign
      of the new momentum. No second moment, no :math:`\epsilon`, no bias correction: half of
      Adam's state.
    - Weight decay is decoupled by definition and uses :math:`\theta_{t-1}`, applied here as
      :math:`\theta \leftarrow (1-\eta\lambda)\theta` before the signed step (the same in exact
      arithmetic). There is no coupled (L2) form. PyTorch has no Lion; the tests compare with a
      direct transcription of Algorithm 2.

    References
    ----------
    Chen, X., Liang, C., Huang, D., Real, E., Wang, K., Pham, H., Dong, X., Luong, T., Hsieh, C.-J.,
    Lu, Y., Le, Q. V. (2023). Symbolic discovery of optimization algorithms. NeurIPS.
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        maximize: bool = False,
        *,
        flat: bool = False,
        flush_denormals: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)

    _nonnegative = ("weight_decay",)

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        return {"step": 0, "exp_avg": np.zeros_like(p.data)}   # m

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        beta1, beta2 = (float(b) for b in group["betas"])
        wd = float(group["weight_decay"])
        state["step"] += 1

        # g_t = ±grad   (p.grad itself, or scratch slot 0; no L2 term: the decay is decoupled)
        g = self._grad_with_decay(p, 0.0, bool(group["maximize"]))
        m = state["exp_avg"]
        c, tmp = self._scratch(p, 1), self._scratch(p, 2)

        # c_t = beta1 m_{t-1} + (1 - beta1) g_t
        np.multiply(m, beta1, out=c)
        np.multiply(g, 1 - beta1, out=tmp)
        np.add(c, tmp, out=c)
        # theta_t = theta_{t-1} - eta (sign(c_t) + lambda theta_{t-1}), as a shrink then a sign step
        if wd != 0:
            np.multiply(p.data, 1 - lr * wd, out=p.data)
        np.sign(c, out=c)
        np.multiply(c, lr, out=c)
        np.subtract(p.data, c, out=p.data)
        # m_t = beta2 m_{t-1} + (1 - beta2) g_t
        np.multiply(m, beta2, out=m)
        np.multiply(g, 1 - beta2, out=tmp)
        np.add(m, tmp, out=m)
