"""RMSprop, optionally centered and with momentum, in PyTorch's form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim.optimizer import LearningRate, Optimizer


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012), with Graves's (2013) centered variant and heavy-ball momentum.

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\eta`, smoothing constant
    :math:`\alpha`, momentum :math:`\mu`, weight decay :math:`\lambda` and
    :math:`v_0 = \bar g_0 = b_0 = 0`:

    .. math::

        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}\\
        v_t &= \alpha\, v_{t-1} + (1-\alpha)\, g_t^2\\
        \bar g_t &= \alpha\, \bar g_{t-1} + (1-\alpha)\, g_t \quad\text{(centered only)}\\
        \delta_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \text{ (centered), else }
                    \sqrt{v_t} + \epsilon\\
        b_t &= \mu\, b_{t-1} + g_t / \delta_t \quad\text{(}\mu > 0\text{ only)}\\
        \theta_t &= \theta_{t-1} - \eta\, b_t \text{ (}\mu > 0\text{), else }
                    \theta_{t-1} - \eta\, g_t / \delta_t

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 1e-2
        :math:`\eta`, or a schedule ``f(step) -> float``.
    alpha : float, default 0.99
        :math:`\alpha \in [0, 1)`, decay rate of the running averages (Hinton's 0.9; torch 0.99).
    eps : float, default 1e-8
        :math:`\epsilon > 0`, added *outside* the square root.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, L2 penalty added to the gradient.
    momentum : float, default 0
        :math:`\mu \ge 0`; 0 disables the momentum buffer.
    centered : bool, default False
        Normalize by an estimate of the gradient's variance, :math:`v_t - \bar g_t^2`, instead of
        its uncentered second moment.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and state entries to zero after each step (see `Optimizer`).

    Notes
    -----
    Conventions, PyTorch's (sources differ):

    - :math:`\epsilon` is added *outside* the root, :math:`\sqrt{v_t} + \epsilon`, as in Keras.
      TensorFlow 1's ``RMSPropOptimizer`` (and Graves, 2013) put it inside,
      :math:`\sqrt{v_t + \epsilon}`, with a default of 1e-10: the two agree wherever
      :math:`v_t \gg \epsilon^2` resp. :math:`\epsilon`, and differ for coordinates whose gradients
      are (near) zero.
    - Momentum is applied to the normalized gradient, and the learning rate multiplies the buffer
      when the step is taken (as in `SGD`). TensorFlow 1 folds the rate into the buffer,
      :math:`b_t = \mu b_{t-1} + \eta g_t/\delta_t`, which agrees for a constant rate only.
      The buffer starts at 0 (unlike `SGD`'s :math:`b_1 = g_1`).
    - Centered RMSprop (Graves, 2013) subtracts the squared running mean of the gradient;
      :math:`v_t - \bar g_t^2 \ge 0` up to rounding, since it is a variance estimate.
    - No bias correction: :math:`v_t` starts at 0, so the first steps are larger than the later ones
      by up to :math:`1/\sqrt{1-\alpha}` (10x for :math:`\alpha=0.99`). Adam adds the correction.

    References
    ----------
    Hinton, G., Srivastava, N., Swersky, K. (2012). Neural networks for machine learning,
    lecture 6e: rmsprop. Coursera.
    Graves, A. (2013). Generating sequences with recurrent neural networks. arXiv:1308.0850.
    PyTorch `torch.optim.RMSprop` documentation, the algorithm box (the form implemented here).
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
        *,
        flat: bool = False,
        flush_denormals: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)

    _positive = ("eps",)
    _nonnegative = ("weight_decay", "momentum")
    _unit_interval = ("alpha",)

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0, "square_avg": np.zeros_like(p.data)}   # v
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(p.data)                         # b
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p.data)                                # g bar
        return state

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        alpha, eps, mu = float(group["alpha"]), float(group["eps"]), float(group["momentum"])
        state["step"] += 1

        # g_t = ±grad + lambda * theta   (p.grad itself, or scratch slot 0)
        g = self._grad_with_decay(p, float(group["weight_decay"]), bool(group["maximize"]))
        v = state["square_avg"]
        tmp, denom = self._scratch(p, 1), self._scratch(p, 2)

        # v_t = alpha v_{t-1} + (1 - alpha) g_t^2
        np.multiply(v, alpha, out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1 - alpha, out=tmp)
        np.add(v, tmp, out=v)
        if group["centered"]:
            g_bar = state.get("grad_avg")
            if g_bar is None:  # centered switched on after this parameter's first step
                g_bar = state["grad_avg"] = np.zeros_like(p.data)
            # g_bar_t = alpha g_bar_{t-1} + (1 - alpha) g_t
            np.multiply(g_bar, alpha, out=g_bar)
            np.multiply(g, 1 - alpha, out=tmp)
            np.add(g_bar, tmp, out=g_bar)
            # delta_t = sqrt(v_t - g_bar_t^2) + eps
            np.multiply(g_bar, g_bar, out=denom)
            np.subtract(v, denom, out=denom)
            np.sqrt(denom, out=denom)
        else:
            # delta_t = sqrt(v_t) + eps
            np.sqrt(v, out=denom)
        np.add(denom, eps, out=denom)

        if mu > 0:
            b = state.get("momentum_buffer")
            if b is None:  # momentum switched on after this parameter's first step
                b = state["momentum_buffer"] = np.zeros_like(p.data)
            # b_t = mu b_{t-1} + g_t / delta_t
            np.multiply(b, mu, out=b)
            np.divide(g, denom, out=tmp)
            np.add(b, tmp, out=b)
            # theta_t = theta_{t-1} - eta b_t
            np.multiply(b, lr, out=tmp)
        else:
            # theta_t = theta_{t-1} - eta g_t / delta_t
            np.divide(g, denom, out=tmp)
            np.multiply(tmp, lr, out=tmp)
        np.subtract(p.data, tmp, out=p.data)
