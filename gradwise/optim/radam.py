"""RAdam: Adam with the variance of its adaptive step rectified, in PyTorch's form."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim.optimizer import LearningRate, Optimizer

# Rectify only when the approximated simple-moving-average length exceeds this (Liu et al., 2020).
RHO_THRESHOLD = 5.0


class RAdam(Optimizer):
    r"""RAdam (Liu et al., 2020): Adam that takes momentum-SGD steps until its variance estimate is
    trustworthy, then rectifies the adaptive step.

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\gamma`, decay rates
    :math:`\beta_1, \beta_2`, weight decay :math:`\lambda` and :math:`m_0 = v_0 = 0`:

    .. math::

        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1}
            \quad\text{(decoupled only)}\\
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \quad\text{(the } \lambda \text{ term only when coupled)}\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t,\qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2\\
        \hat m_t &= m_t / (1-\beta_1^t)\\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1,\qquad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}\\
        \theta_t &= \begin{cases}
            \theta_{t-1} - \gamma\, r_t\, \hat m_t\, \dfrac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon}
                & \rho_t > 5,\quad
                r_t = \sqrt{\dfrac{(\rho_t-4)(\rho_t-2)\,\rho_\infty}
                                  {(\rho_\infty-4)(\rho_\infty-2)\,\rho_t}}\\[2ex]
            \theta_{t-1} - \gamma\, \hat m_t & \text{otherwise}
        \end{cases}

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 1e-3
        :math:`\gamma`, or a schedule ``f(step) -> float``.
    betas : (float, float), default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float, default 1e-8
        :math:`\epsilon > 0`, added to the *uncorrected* :math:`\sqrt{v_t}`.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`.
    decoupled_weight_decay : bool, default False
        Shrink the parameters by :math:`1-\gamma\lambda` before the step (as AdamW) instead of
        adding :math:`\lambda\theta` to the gradient.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and state entries to zero after each step (see `Optimizer`).

    Notes
    -----
    Conventions, PyTorch's (sources differ):

    - **Threshold.** The adaptive step is used when :math:`\rho_t > 5`, PyTorch's test. The paper's
      Algorithm 2 tests :math:`\rho_t > 4` (where :math:`r_t` is defined) and the authors' code
      :math:`\rho_t \ge 5`; the choice changes at most the first step or two. Before the switch,
      the step is SGD with the bias-corrected momentum :math:`\hat m_t` at the full rate
      :math:`\gamma`. With :math:`\beta_2 = 0.999` the switch happens at :math:`t = 6`; with
      :math:`\beta_2 \le 2/3`, :math:`\rho_\infty \le 5` and the step is never adaptive.
    - :math:`\epsilon` is added to :math:`\sqrt{v_t}` *before* the bias correction
      :math:`\sqrt{1-\beta_2^t}` multiplies it, unlike `Adam` and `NAdam`, which add it to the
      corrected root. The paper's :math:`l_t = \sqrt{(1-\beta_2^t)/v_t}` has no :math:`\epsilon`.
    - Decoupled weight decay (``decoupled_weight_decay=True``) is applied as in AdamW, scaled by
      the learning rate, also during the un-rectified steps.

    References
    ----------
    Liu, L., Jiang, H., He, P., Chen, W., Liu, X., Gao, J., Han, J. (2020). On the variance of
    the adaptive learning rate and beyond. ICLR.
    PyTorch `torch.optim.RAdam` documentation, the algorithm box (the form implemented here).
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        *,
        flat: bool = False,
        flush_denormals: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)

    _positive = ("eps",)
    _nonnegative = ("weight_decay",)

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "step": 0,
            "exp_avg": np.zeros_like(p.data),      # m
            "exp_avg_sq": np.zeros_like(p.data),   # v
        }

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        wd = float(group["weight_decay"])
        decoupled = bool(group["decoupled_weight_decay"])

        state["step"] += 1
        t = state["step"]
        if decoupled and wd != 0:
            # theta <- (1 - gamma * lambda) theta   (the decay bypasses the moments)
            np.multiply(p.data, 1 - lr * wd, out=p.data)
        # g_t = ±grad + lambda * theta   (coupled L2 only)
        g = self._grad_with_decay(p, 0.0 if decoupled else wd, bool(group["maximize"]))

        m, v = state["exp_avg"], state["exp_avg_sq"]
        tmp = self._scratch(p, 1)
        # m_t = beta1 m_{t-1} + (1 - beta1) g_t
        np.multiply(m, beta1, out=m)
        np.multiply(g, 1 - beta1, out=tmp)
        np.add(m, tmp, out=m)
        # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        np.multiply(v, beta2, out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1 - beta2, out=tmp)
        np.add(v, tmp, out=v)

        bc1, bc2 = 1 - beta1**t, 1 - beta2**t
        # rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2**t / bc2
        update = tmp
        if rho_t > RHO_THRESHOLD:
            # r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            r = math.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            # theta_t = theta_{t-1}
            #           - gamma r_t sqrt(1 - beta2^t) / (1 - beta1^t) m_t / (sqrt(v_t) + eps)
            np.sqrt(v, out=update)
            np.add(update, eps, out=update)
            np.divide(m, update, out=update)
            np.multiply(update, lr * r * math.sqrt(bc2) / bc1, out=update)
        else:
            # theta_t = theta_{t-1} - gamma m_t / (1 - beta1^t)
            np.multiply(m, lr / bc1, out=update)
        np.subtract(p.data, update, out=p.data)
