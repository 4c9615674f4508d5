"""Decays: a base rate `lr` that falls with the step (or stays put).

`Constant`, `StepDecay`, `MultiStep`, `Exponential`, `InverseTime`, `Cosine` (with optional warm
restarts, SGDR) and `Polynomial`, each the formula of its docstring and matched step by step against
the ``torch.optim.lr_scheduler`` class it names. See ``docs/schedules.md``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from gradwise.optim.schedules._base import _integer, _nonneg, _positive, _set, _step

__all__ = ["Constant", "Cosine", "Exponential", "InverseTime", "MultiStep", "Polynomial", "StepDecay"]


@dataclass(frozen=True)
class Constant:
    r"""A constant rate, :math:`\eta_t = \eta_0`. ``constant(lr)``; torch: no scheduler."""

    lr: float

    def __post_init__(self) -> None:
        _set(self, "lr", _nonneg("lr", self.lr))

    def __call__(self, step: int) -> float:
        _step(step)
        return self.lr


@dataclass(frozen=True)
class StepDecay:
    r"""Multiply the rate by `gamma` every `step_size` steps (torch ``StepLR``).

    .. math:: \eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}

    Parameters
    ----------
    lr : float
        :math:`\eta_0 \ge 0`.
    step_size : int
        :math:`s \ge 1`, in optimizer steps (``k * len(train_loader)`` for every k epochs).
    gamma : float, default 0.1
        :math:`\gamma > 0`.
    """

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _set(self, "lr", _nonneg("lr", self.lr))
        _set(self, "step_size", _integer("step_size", self.step_size, 1))
        _set(self, "gamma", _positive("gamma", self.gamma))

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (_step(step) // self.step_size)


@dataclass(frozen=True)
class MultiStep:
    r"""Multiply the rate by `gamma` at each milestone (torch ``MultiStepLR``).

    .. math:: \eta_t = \eta_0\,\gamma^{\#\{m \in \text{milestones} : m \le t\}}

    A milestone listed twice counts twice, as in torch. `milestones` (steps, any order) is stored
    sorted, as a tuple.
    """

    lr: float
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _set(self, "lr", _nonneg("lr", self.lr))
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Iterable):
            raise TypeError(f"milestones={self.milestones!r} must be a sequence of integers")
        ms = tuple(sorted(_integer("milestones", m, 0) for m in self.milestones))
        _set(self, "milestones", ms)
        _set(self, "gamma", _positive("gamma", self.gamma))

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** bisect_right(self.milestones, _step(step))


@dataclass(frozen=True)
class Exponential:
    r"""Exponential decay (torch ``ExponentialLR``; Keras ``ExponentialDecay``).

    .. math:: \eta_t = \eta_0\,\gamma^{p},\qquad
              p = t / d \ \ (\text{or } \lfloor t / d \rfloor \text{ if staircase})

    With the default ``decay_steps=1`` this is ``ExponentialLR(gamma)`` stepped every batch; with
    ``decay_steps=len(train_loader), staircase=True`` it is ``ExponentialLR`` stepped every epoch.
    ``gamma > 1`` grows the rate (an LR range test).
    """

    lr: float
    gamma: float
    decay_steps: int = 1
    staircase: bool = False

    def __post_init__(self) -> None:
        _set(self, "lr", _nonneg("lr", self.lr))
        _set(self, "gamma", _positive("gamma", self.gamma))
        _set(self, "decay_steps", _integer("decay_steps", self.decay_steps, 1))
        _set(self, "staircase", bool(self.staircase))

    def __call__(self, step: int) -> float:
        t = _step(step)
        p = t // self.decay_steps if self.staircase else t / self.decay_steps
        return self.lr * self.gamma**p


@dataclass(frozen=True)
class InverseTime:
    r"""Inverse-time ("1/t") decay (Keras ``InverseTimeDecay``; torch: ``LambdaLR``).

    .. math:: \eta_t = \frac{\eta_0}{1 + k\,p},\qquad
              p = t / d \ \ (\text{or } \lfloor t / d \rfloor \text{ if staircase})

    With ``decay_steps = len(train_loader)`` (steps per epoch) and ``staircase=True`` this is the
    per-epoch schedule :math:`\eta_0 / (1 + k\cdot\text{epoch})` of the course notes, constant
    within an epoch. With ``staircase=False`` (the default) the same curve is followed smoothly,
    with a fractional epoch :math:`t / d`; the two agree at every epoch boundary.

    Parameters
    ----------
    lr : float
        :math:`\eta_0 \ge 0`.
    decay_rate : float
        :math:`k \ge 0`.
    decay_steps : int, default 1
        :math:`d \ge 1`, the steps per unit of decay (steps per epoch for the per-epoch form).
    staircase : bool, default False
    """

    lr: float
    decay_rate: float
    decay_steps: int = 1
    staircase: bool = False

    def __post_init__(self) -> None:
        _set(self, "lr", _nonneg("lr", self.lr))
        _set(self, "decay_rate", _nonneg("decay_rate", self.decay_rate))
        _set(self, "decay_steps", _integer("decay_steps", self.decay_steps, 1))
        _set(self, "staircase", bool(self.staircase))

    def __call__(self, step: int) -> float:
        t = _step(step)
        p = t // self.decay_steps if self.staircase else t / self.decay_steps
        return self.lr / (1 + self.decay_rate * p)


@dataclass(frozen=True)
class Cosine:
    r"""Cosine annealing, optionally with warm restarts (Loshchilov & Hutter, 2017, SGDR).

    .. math:: \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})
              \left(1 + \cos\left(\pi\,\frac{T_{cur}}{T_i}\right)\right)

    Without restarts, :math:`T_i` = `total_steps` and :math:`T_{cur} = \min(t, T_i)`: the rate
    reaches `min_lr` at ``t = total_steps`` and stays there (torch ``CosineAnnealingLR`` instead
    climbs back up after ``T_max``; the two agree on ``0 <= t <= total_steps``). With
    ``restarts=True``, `total_steps` is the length of the first cycle (SGDR's :math:`T_0`), each
    cycle is `cycle_mult` (:math:`T_{mult}`) times longer than the previous one, and the rate jumps
    back to `lr` at the start of each (torch ``CosineAnnealingWarmRestarts(T_0, T_mult)``).

    Parameters
    ----------
    lr : float
        :math:`\eta_0 \ge 0`, the rate at the start (of every cycle).
    total_steps : int
        :math:`\ge 1`: the annealing length, or the first cycle's length with restarts.
    min_lr : float, default 0
        :math:`\eta_{\min}`, in ``[0, lr]``.
    restarts : bool, default False
    cycle_mult : int, default 1
        :math:`T_{mult} \ge 1`; only meaningful with restarts.

    References
    ----------
    Loshchilov, I., Hutter, F. (2017). SGDR: Stochastic gradient descent with warm restarts. ICLR.
    """

    lr: float
    total_steps: int
    min_lr: float = 0.0
    restarts: bool = False
    cycle_mult: int = 1

    def __post_init__(self) -> None:
        _set(self, "lr", _nonneg("lr", self.lr))
        _set(self, "total_steps", _integer("total_steps", self.total_steps, 1))
        _set(self, "min_lr", _nonneg("min_lr", self.min_lr))
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr!r} must be <= lr={self.lr!r}")
        _set(self, "restarts", bool(self.restarts))
        _set(self, "cycle_mult", _integer("cycle_mult", self.cycle_mult, 1))
        if self.cycle_mult != 1 and not self.restarts:
            raise ValueError(f"cycle_mult={self.cycle_mult!r} needs restarts=True")

    def __call__(self, step: int) -> float:
        t, t_i = _step(step), self.total_steps
        if not self.restarts:
            t_cur = min(t, t_i)
        elif self.cycle_mult == 1:
            t_cur = t % t_i
        else:
            start = 0  # first step of the current cycle; cycles grow geometrically, so few loops
            while t >= start + t_i:
                start += t_i
                t_i *= self.cycle_mult
            t_cur = t - start
        return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


@dataclass(frozen=True)
class Polynomial:
    r"""Polynomial decay to `end_lr` over `total_steps`, then constant (Keras ``PolynomialDecay``).

    .. math:: \eta_t = (\eta_0 - \eta_{end})\left(1 - \frac{\min(t, T)}{T}\right)^{p} + \eta_{end}

    torch ``PolynomialLR(total_iters=T, power=p)`` is the case ``end_lr = 0``. ``power=1`` is a
    linear decay.
    """

    lr: float
    total_steps: int
    power: float = 1.0
    end_lr: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "lr", _nonneg("lr", self.lr))
        _set(self, "total_steps", _integer("total_steps", self.total_steps, 1))
        _set(self, "power", _positive("power", self.power))
        _set(self, "end_lr", _nonneg("end_lr", self.end_lr))

    def __call__(self, step: int) -> float:
        t = min(_step(step), self.total_steps)
        return (self.lr - self.end_lr) * (1.0 - t / self.total_steps) ** self.power + self.end_lr
