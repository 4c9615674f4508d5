"""Adam, AMSGrad and AdamW (Adam with decoupled weight decay), in PyTorch's form."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gradwise.core import Parameter
from gradwise.optim import _fused
from gradwise.optim.optimizer import LearningRate, Optimizer, blocks, objective_grad


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with the AMSGrad and decoupled-weight-decay (AdamW) variants.

    With gradient :math:`\nabla f(\theta_{t-1})`, learning rate :math:`\alpha`, decay rates
    :math:`\beta_1, \beta_2`, weight decay :math:`\lambda` and :math:`m_0 = v_0 = 0`:

    .. math::

        \theta_{t-1} &\leftarrow (1 - \alpha\lambda)\,\theta_{t-1}
            \quad\text{(decoupled only)}\\
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \quad\text{(the } \lambda \text{ term only when coupled)}\\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t\\
        v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2\\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ with AMSGrad, else } v_t\\
        \theta_t &= \theta_{t-1} - \frac{\alpha}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        Parameters or param groups (see `Optimizer`).
    lr : float or callable, default 1e-3
        :math:`\alpha`, or a schedule ``f(step) -> float``.
    betas : (float, float), default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float, default 1e-8
        :math:`\epsilon > 0`, added *outside* the square root.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`.
    amsgrad : bool, default False
        Normalize by the running maximum of :math:`v_t` (Reddi et al., 2018).
    maximize : bool, default False
        Ascend the objective instead of descending it.
    decoupled_weight_decay : bool, default False
        Shrink the parameters by :math:`1-\alpha\lambda` before the step (AdamW) instead of
        adding :math:`\lambda\theta` to the gradient (L2 regularization, Adam's classic form).
    fused : bool or None, default None
        Update each parameter in one compiled pass over its memory (numba, the ``gradwise[fast]``
        extra), with results identical to the NumPy reference bit for bit. None: when numba is
        installed and the parameters hold at least 65,536 entries (`_fused.AUTO_MIN_SIZE`: below
        it, the one-time ~0.4 s load of the kernels costs more than they save); True: require it (``ModuleNotFoundError`` naming the extra otherwise); False:
        the NumPy reference. ``torch.optim.Adam`` calls its variants ``fused=``/``foreach=``.
    flat : bool, default False
        One contiguous buffer per param group, updated in one call (see `Optimizer`).
    flush_denormals : bool, default True
        Set subnormal parameters and moments to zero after each step (see `Optimizer`).

    Notes
    -----
    Conventions, all PyTorch's (so trajectories match `torch.optim.Adam`/`AdamW` to rounding):

    - Bias correction is applied to the scalars, not the arrays: the step size is
      :math:`\alpha/(1-\beta_1^t)` and :math:`\epsilon` is added to the *corrected*
      :math:`\sqrt{v_t}/\sqrt{1-\beta_2^t}`, as in Algorithm 1 of the paper
      (:math:`\epsilon` after :math:`\sqrt{\hat v_t}`). The "efficient" form in Section 2 of
      the paper adds :math:`\hat\epsilon` to the uncorrected :math:`\sqrt{v_t}`, which amounts
      to a larger epsilon early in training.
    - :math:`t` counts this parameter's own updates (a frozen parameter's clock stops).
    - AMSGrad keeps the maximum of the *uncorrected* :math:`v_t`, then bias-corrects it with the
      current :math:`t`. Reddi et al. (2018) use no bias correction at all.
    - Coupled weight decay (L2) passes through the moments and is rescaled by them; decoupled
      decay (Loshchilov & Hutter, 2019) is not. PyTorch multiplies the decay by the learning rate
      :math:`\alpha` (the schedule multiplier :math:`\eta_t` of the paper is folded into it),
      so :math:`\lambda` here is the paper's :math:`\lambda` divided by :math:`\alpha`.

    References
    ----------
    Kingma, D. P., Ba, J. (2015). Adam: A method for stochastic optimization. ICLR.
    Reddi, S. J., Kale, S., Kumar, S. (2018). On the convergence of Adam and beyond. ICLR.
    Loshchilov, I., Hutter, F. (2019). Decoupled weight decay regularization. ICLR.
    """

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
        lr: LearningRate = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        *,
        fused: bool | None = None,
        flat: bool = False,
        flush_denormals: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults, flat=flat, flush_denormals=flush_denormals)
        self.fused = _fused.resolve(fused, "Adam", type(self)._update is not Adam._update,
                                    size=sum(p.size for g in self.param_groups for p in g["params"]))

    _positive = ("eps",)
    _nonnegative = ("weight_decay",)

    def _init_state(self, p: Parameter, group: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": 0,
            "exp_avg": np.zeros_like(p.data),      # m
            "exp_avg_sq": np.zeros_like(p.data),   # v
        }
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p.data)
        return state

    def _update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> None:
        beta1, beta2, eps, wd, decoupled, maximize, amsgrad = _hyperparameters(group)
        moments = [a for a in _moments(p, state, amsgrad) if a is not None]  # m, v (, v_max)
        step_size, sqrt_bc2 = _advance(state, beta1, beta2, lr)
        arrays = [p.data, p.grad, *moments]

        # Block by block, so that each array crosses the memory bus once per step (see `blocks`).
        scratch = [self._scratch(p, 0), self._scratch(p, 1)]
        for theta, grad, m, v, *amsgrad_max, g_buf, tmp in blocks(arrays, scratch):
            if decoupled and wd != 0:
                # theta <- (1 - alpha * lambda) theta   (AdamW: the decay bypasses the moments)
                np.multiply(theta, 1 - lr * wd, out=theta)
            # g_t = ±grad + lambda * theta   (coupled L2 only)
            g = objective_grad(grad, theta, 0.0 if decoupled else wd, maximize, out=g_buf)

            # m_t = beta1 m_{t-1} + (1 - beta1) g_t
            np.multiply(m, beta1, out=m)
            np.multiply(g, 1 - beta1, out=tmp)
            np.add(m, tmp, out=m)
            # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
            np.multiply(v, beta2, out=v)
            np.multiply(g, g, out=tmp)
            np.multiply(tmp, 1 - beta2, out=tmp)
            np.add(v, tmp, out=v)
            if amsgrad:
                # v_hat_t = max(v_hat_{t-1}, v_t), of the uncorrected v (as torch does)
                (v_max,) = amsgrad_max
                np.maximum(v_max, v, out=v_max)
                v = v_max

            if step_size == 0:
                continue  # lr = 0: the moments move, the parameters do not
            # theta_t = theta_{t-1} - s_t m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)   (eps outside
            # the root), with s_t = step_size moved into the denominator to save one pass:
            # theta_t = theta_{t-1} - m_t / (sqrt(v_t) / (s_t sqrt(1 - beta2^t)) + eps / s_t)
            denom = tmp
            np.sqrt(v, out=denom)
            np.multiply(denom, 1 / (step_size * sqrt_bc2), out=denom)
            np.add(denom, eps / step_size, out=denom)
            update = denom
            np.divide(m, denom, out=update)
            np.subtract(theta, update, out=theta)

    def _fused_update(
        self, p: Parameter, state: dict[str, Any], group: Mapping[str, Any], lr: float
    ) -> bool:
        # The same update as `_update`, in one compiled pass (gradwise/optim/_fused.py).
        beta1, beta2, eps, wd, decoupled, maximize, amsgrad = _hyperparameters(group)
        m, v, v_max = _moments(p, state, amsgrad)
        vmax = v if v_max is None else v_max  # the kernel takes an array either way
        if not all(a.flags.c_contiguous for a in (p.data, p.grad, m, v, vmax)):
            return False
        step_size, sqrt_bc2 = _advance(state, beta1, beta2, lr)
        move = step_size != 0
        dt = p.data.dtype.type
        _fused.run(
            "adam", p.data.size, p.data.reshape(-1), p.grad.reshape(-1), m.reshape(-1),
            v.reshape(-1), vmax.reshape(-1), dt(1 - lr * wd), dt(wd), dt(beta1), dt(1 - beta1),
            dt(beta2), dt(1 - beta2), dt(1 / (step_size * sqrt_bc2) if move else 0),
            dt(eps / step_size if move else 0), dt(np.finfo(dt).tiny), dt(0),
            decoupled and wd != 0, wd != 0 and not decoupled, maximize, amsgrad,
            move, self.flush_denormals,
        )
        return True

def _hyperparameters(group: Mapping[str, Any]) -> tuple[float, float, float, float, bool, bool, bool]:
    """(beta1, beta2, eps, weight_decay, decoupled, maximize, amsgrad) of `group`, as Python
    floats and bools: NumPy float64 hyperparameters would promote float32 arrays."""
    beta1, beta2 = (float(b) for b in group["betas"])
    return (beta1, beta2, float(group["eps"]), float(group["weight_decay"]),
            bool(group["decoupled_weight_decay"]), bool(group["maximize"]), bool(group["amsgrad"]))


def _moments(p: Parameter, state: dict[str, Any], amsgrad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """m, v and (with AMSGrad) the running maximum of v, allocated here when AMSGrad was
    switched on after this parameter's first step."""
    if amsgrad and "max_exp_avg_sq" not in state:
        state["max_exp_avg_sq"] = np.zeros_like(p.data)
    return state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"] if amsgrad else None


def _advance(state: dict[str, Any], beta1: float, beta2: float, lr: float) -> tuple[float, float]:
    """Count the step t and return the bias corrections: alpha / (1 - beta1^t), sqrt(1 - beta2^t)."""
    state["step"] += 1
    t = state["step"]
    return lr / (1 - beta1**t), math.sqrt(1 - beta2**t)


def AdamW(  # noqa: N802 -- named like the published algorithm and torch.optim.AdamW
    params: Iterable[Parameter] | Iterable[Mapping[str, Any]],
    lr: LearningRate = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
    *,
    fused: bool | None = None,
    flat: bool = False,
    flush_denormals: bool = True,
) -> Adam:
    r"""AdamW (Loshchilov & Hutter, 2019): `Adam` with decoupled weight decay, default 1e-2.

    Each step first shrinks the parameters, :math:`\theta \leftarrow (1-\alpha\lambda)\theta`,
    then takes the Adam step on the raw gradient, so the decay is not rescaled by
    :math:`1/\sqrt{\hat v}` as L2 regularization would be. Equivalent to
    ``Adam(..., decoupled_weight_decay=True)``; a function rather than a subclass because the
    variant only changes the defaults (one level of classes), so the result is an `Adam`.

    Parameters are those of `Adam` (``fused``, ``flat`` and ``flush_denormals`` included);
    `weight_decay` defaults to 1e-2 as in `torch.optim.AdamW`.

    References
    ----------
    Loshchilov, I., Hutter, F. (2019). Decoupled weight decay regularization. ICLR.
    """
    return Adam(
        params,
        lr=lr,
        betas=betas,
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        decoupled_weight_decay=True,
        fused=fused,
        flat=flat,
        flush_denormals=flush_denormals,
    )
