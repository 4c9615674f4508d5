"""NAdam: Adam with Nesterov momentum and a momentum warm-up schedule, in PyTorch's form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim.optimizer import LearningRate, Optimizer


def _round32(x: float) -> float:
    """`x` rounded to the nearest float32, returned as a Python float."""
    return float(np.float32(x))


class NAdam(Optimizer):
    r"""NAdam (Dozat, 2016): Adam whose first-moment step looks ahead like Nesterov momentum.

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\gamma`, decay rates
    :math:`\beta_1, \beta_2`, momentum decay :math:`\psi`, weight decay :math:`\lambda`,
    :math:`m_0 = v_0 = 0` and the empty product :math:`\prod_{i=1}^{0}\mu_i = 1`:

    .. math::

        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1}
            \quad\text{(decoupled only)}\\
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \quad\text{(the } \lambda \text{ term only when coupled)}\\
        \mu_t &= \beta_1\left(1 - \tfrac12\, 0.96^{t\psi}\right)\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t\\
        v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2\\
        \delta_t &= \sqrt{v_t / (1-\beta_2^t)} + \epsilon\\
        \theta_t &= \theta_{t-1}
            - \gamma\,\frac{1-\mu_t}{1-\prod_{i=1}^{t}\mu_i}\,\frac{g_t}{\delta_t}
            - \gamma\,\frac{\mu_{t+1}}{1-\prod_{i=1}^{t+1}\mu_i}\,\frac{m_t}{\delta_t}

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 2e-3
        :math:`\gamma`, or a schedule ``f(step) -> float``.
    betas : (float, float), default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float, default 1e-8
        :math:`\epsilon > 0`, added *outside* the square root, after bias correction.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`.
    momentum_decay : float, default 4e-3
        :math:`\psi \ge 0`, the speed of the momentum warm-up (Dozat's 1/250).
    decoupled_weight_decay : bool, default False
        Shrink the parameters by :math:`1-\gamma\lambda` before the step (NAdamW) instead of
        adding :math:`\lambda\theta` to the gradient.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and state entries to zero after each step (see `Optimizer`).

    Notes
    -----
    Conventions, PyTorch's (and Keras's); sources differ:

    - **Momentum schedule.** :math:`\mu_t` warms up from :math:`\beta_1/2` towards :math:`\beta_1`
      (Dozat's schedule, with :math:`\psi = 0.004`: :math:`0.96^{t/250}`). The moment :math:`m_t`
      is still accumulated with the constant :math:`\beta_1`; the schedule only weighs the
      Nesterov combination of the current gradient and the momentum, and its running product
      :math:`\prod\mu_i` replaces Adam's :math:`1-\beta_1^t` in the bias correction. With
      :math:`\psi = 0`, :math:`\mu_t = \beta_1/2` for every step.
    - **The product** :math:`\prod_{i=1}^t \mu_i` is kept per parameter, in the state as
      ``"mu_product"`` (a Python float), and rounded to float32 at every step, whatever the
      parameters' dtype: ``mu_product = f32(f32(mu_product) * f32(mu_t))``. That is what
      `torch.optim.NAdam` computes with torch's default dtype (its scalar state is a 0-d tensor
      of the default dtype, float32 unless changed, and ``tensor *= float`` rounds both operands
      to float32). An exact float64 product would move a 200-step float64 trajectory by ~5e-10
      (relative) away from torch's as users run it; with the rounding the two agree to ~3e-16.
      (Under ``torch.set_default_dtype(torch.float64)`` torch keeps the product in float64 and
      differs from this one by that same ~5e-10.) :math:`\mu_{t+1}` and the step sizes are
      computed in float64 from the rounded product, as torch does.
    - :math:`\epsilon` is added to the bias-corrected :math:`\sqrt{\hat v_t}`, as in `Adam`.
    - Decoupled weight decay (``decoupled_weight_decay=True``) is applied as in AdamW, scaled by
      the learning rate.

    References
    ----------
    Dozat, T. (2016). Incorporating Nesterov momentum into Adam. ICLR workshop.
    Loshchilov, I., Hutter, F. (2019). Decoupled weight decay regularization. ICLR.
    PyTorch `torch.optim.NAdam` documentation, the algorithm box (the form implemented here).
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
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
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)

    _positive = ("eps",)
    _nonnegative = ("weight_decay", "momentum_decay")

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "step": 0,
            "mu_product": 1.0,                     # prod_{i <= t} mu_i
            "exp_avg": np.zeros_like(p.data),      # m
            "exp_avg_sq": np.zeros_like(p.data),   # v
        }

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        beta1, beta2 = (float(b) for b in group["betas"])
        eps, psi = float(group["eps"]), float(group["momentum_decay"])
        wd = float(group["weight_decay"])
        decoupled = bool(group["decoupled_weight_decay"])

        state["step"] += 1
        t = state["step"]
        if decoupled and wd != 0:
            # theta <- (1 - gamma * lambda) theta   (the decay bypasses the moments)
            np.multiply(p.data, 1 - lr * wd, out=p.data)
        # g_t = ±grad + lambda * theta   (coupled L2 only)
        g = self._grad_with_decay(p, 0.0 if decoupled else wd, bool(group["maximize"]))

        # mu_t = beta1 (1 - 0.5 * 0.96^(t psi)), and mu_{t+1}
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        # prod_{i <= t} mu_i and prod_{i <= t+1} mu_i
        # Rounded to float32 after every product, as torch.optim.NAdam's float32 state does.
        mu_product = state["mu_product"] = _round32(_round32(state["mu_product"]) * _round32(mu))
        mu_product_next = mu_product * mu_next

        m, v = state["exp_avg"], state["exp_avg_sq"]
        tmp, update = self._scratch(p, 1), self._scratch(p, 2)
        # m_t = beta1 m_{t-1} + (1 - beta1) g_t
        np.multiply(m, beta1, out=m)
        np.multiply(g, 1 - beta1, out=tmp)
        np.add(m, tmp, out=m)
        # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        np.multiply(v, beta2, out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1 - beta2, out=tmp)
        np.add(v, tmp, out=v)
        # delta_t = sqrt(v_t / (1 - beta2^t)) + eps
        denom = tmp
        np.divide(v, 1 - beta2**t, out=denom)
        np.sqrt(denom, out=denom)
        np.add(denom, eps, out=denom)
        # theta -= gamma (1 - mu_t) / (1 - prod_{i<=t} mu_i) * g_t / delta_t
        np.divide(g, denom, out=update)
        np.multiply(update, lr * (1 - mu) / (1 - mu_product), out=update)
        np.subtract(p.data, update, out=p.data)
        # theta -= gamma mu_{t+1} / (1 - prod_{i<=t+1} mu_i) * m_t / delta_t
        np.divide(m, denom, out=update)
        np.multiply(update, lr * mu_next / (1 - mu_product_next), out=update)
        np.subtract(p.data, update, out=p.data)

