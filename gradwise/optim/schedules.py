"""Learning-rate schedules: pure functions of the optimizer step.

A schedule is a callable ``f(step) -> float`` that gives the learning rate of step number `step`
(0-based: ``f(0)`` is the rate of the first update). Pass it as an optimizer's ``lr``; the optimizer
owns the counter (`Optimizer.step_count`) and evaluates the schedule before each step. The Trainer
steps once per batch, so lengths are counted in batches: ``total_steps = epochs * len(train_loader)``.

Every schedule here is a small frozen dataclass: it carries its parameters (``repr``,
``dataclasses.asdict`` and pickling give them back, so a run can record them), has no hidden state,
and gives the same value for the same step whatever was called before. The lowercase names
(`cosine`, `one_cycle`, ...) are the constructors users type; arguments are checked at
construction and errors name them. See ``docs/schedules.md`` for the formulas next to this code
and the equivalent ``torch.optim.lr_scheduler`` classes, which the tests match step by step.
"""

from __future__ import annotations

import math
import numbers
import operator
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Constant", "Cosine", "Exponential", "InverseTime", "MultiStep", "OneCycle", "Polynomial",
    "Scaled", "Schedule", "StepDecay", "Warmup",
    "constant", "cosine", "exponential", "inverse_time", "multistep", "one_cycle", "polynomial",
    "scaled", "step_decay", "warmup",
]

#: What every schedule is: the learning rate of optimizer step `step` (0-based).
Schedule = Callable[[int], float]


# --------------------------------------------------------------------------------- validation
def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a real number")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name}={value!r} must not be NaN")
    return value


def _nonneg(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0 <= value < math.inf:
        raise ValueError(f"{name}={value!r} must be finite and >= 0")
    return value


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0 < value < math.inf:
        raise ValueError(f"{name}={value!r} must be finite and > 0")
    return value


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer")
    if value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def _step(step: Any) -> int:
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"{step=} must be an integer (the number of optimizer steps taken)") from None
    if step < 0:
        raise ValueError(f"{step=} must be >= 0")
    return step


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalizing a field of a frozen dataclass


# ---------------------------------------------------------------------------------- schedules
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


@dataclass(frozen=True)
class Warmup:
    r"""Linear warm-up in front of any schedule (Goyal et al., 2017).

    .. math:: \eta_t = \begin{cases}
              f(0)\left(s + (1 - s)\,\dfrac{t}{W}\right) & t < W \\
              f(t - W) & t \ge W \end{cases}

    The wrapped schedule :math:`f` starts *after* the warm-up (it is shifted by :math:`W`), as
    with torch ``SequentialLR([LinearLR(start_factor=s, total_iters=W), f], milestones=[W])``,
    Keras' ``warmup_steps`` and Hugging Face's ``get_*_schedule_with_warmup``. To end a cosine at
    step ``T``, give it ``T - W`` steps: ``warmup(cosine(lr, T - W), W)``.

    Parameters
    ----------
    schedule : schedule or float
        :math:`f`; a float means ``constant(lr)``.
    warmup_steps : int
        :math:`W \ge 0` (0: no warm-up).
    start_factor : float, default 0
        :math:`s \in [0, 1]`: the first step's rate is :math:`s\,f(0)`. The default 0 is Keras' and
        Hugging Face's choice (torch ``LinearLR`` defaults to 1/3 and refuses 0).

    References
    ----------
    Goyal, P. et al. (2017). Accurate, large minibatch SGD: training ImageNet in 1 hour.
    arXiv:1706.02677.
    """

    schedule: Schedule | float
    warmup_steps: int
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.schedule):
            _set(self, "schedule", Constant(_nonneg("schedule", self.schedule)))
        _set(self, "warmup_steps", _integer("warmup_steps", self.warmup_steps, 0))
        factor = _real("start_factor", self.start_factor)
        if not 0 <= factor <= 1:
            raise ValueError(f"start_factor={factor!r} must be in [0, 1]")
        _set(self, "start_factor", factor)

    def __call__(self, step: int) -> float:
        t, w, f = _step(step), self.warmup_steps, self.schedule
        assert callable(f)  # a float became Constant(lr) at construction
        if t >= w:
            return float(f(t - w))
        return float(f(0)) * (self.start_factor + (1.0 - self.start_factor) * t / w)


def _anneal_cos(start: float, end: float, pct: float) -> float:
    # The exact expression of torch's OneCycleLR, so that the values agree to the last bit.
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


@dataclass(frozen=True)
class OneCycle:
    r"""The 1cycle policy (Smith & Topin, 2019), with its inverse momentum cycle.

    Two phases (fastai's and torch's default): the rate rises from
    :math:`\eta_{init} = \eta_{\max} / \text{div\_factor}` to :math:`\eta_{\max}` over the first
    ``pct_start * total_steps`` steps, then anneals to
    :math:`\eta_{\min} = \eta_{init} / \text{final\_div\_factor}` at step ``total_steps - 1``.
    Momentum (or Adam's :math:`\beta_1`) moves the opposite way, from `max_momentum` down to
    `base_momentum` and back. Within a phase from :math:`a` to :math:`b` at fraction
    :math:`p \in [0, 1]` of it:

    .. math:: \text{cos: } b + \tfrac12(a - b)(1 + \cos \pi p)
              \qquad \text{linear: } a + (b - a)\,p

    With ``three_phase=True`` (Smith's paper): up to :math:`\eta_{\max}`, back down to
    :math:`\eta_{init}` symmetrically, then down to :math:`\eta_{\min}` with momentum held at
    `max_momentum`. Phase boundaries are torch ``OneCycleLR``'s, to the bit. After
    ``total_steps - 1`` the final values are held (torch raises past ``total_steps``).

    Use the same object as the optimizer's ``lr`` and in
    ``gradwise.training.schedule_callbacks.CycleMomentum``, which applies `momentum` per batch.

    Parameters
    ----------
    max_lr : float
        Peak rate, > 0.
    total_steps : int
        ``epochs * len(train_loader)``.
    pct_start : float, default 0.3
        In (0, 1); the rising phase must hold more than one step.
    div_factor, final_div_factor : float, default 25 and 1e4
    anneal : {"cos", "linear"}, default "cos"
        torch's ``anneal_strategy``.
    three_phase : bool, default False
    base_momentum, max_momentum : float, default 0.85 and 0.95
        In [0, 1).

    References
    ----------
    Smith, L. N., Topin, N. (2019). Super-convergence: very fast training of neural networks using
    large learning rates. arXiv:1708.07120. Smith, L. N. (2018). A disciplined approach to neural
    network hyper-parameters: part 1. arXiv:1803.09820.
    """

    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "cos"
    three_phase: bool = False
    base_momentum: float = 0.85
    max_momentum: float = 0.95

    def __post_init__(self) -> None:
        _set(self, "max_lr", _positive("max_lr", self.max_lr))
        total = _integer("total_steps", self.total_steps, 1)
        _set(self, "total_steps", total)
        pct = _real("pct_start", self.pct_start)
        if not 0 < pct < 1:
            raise ValueError(f"pct_start={pct!r} must be in (0, 1)")
        _set(self, "pct_start", pct)
        _set(self, "div_factor", _positive("div_factor", self.div_factor))
        _set(self, "final_div_factor", _positive("final_div_factor", self.final_div_factor))
        if self.anneal not in ("cos", "linear"):
            raise ValueError(f"anneal={self.anneal!r} must be 'cos' or 'linear'")
        _set(self, "three_phase", bool(self.three_phase))
        for name in ("base_momentum", "max_momentum"):
            value = _real(name, getattr(self, name))
            if not 0 <= value < 1:
                raise ValueError(f"{name}={value!r} must be in [0, 1)")
            _set(self, name, value)
        ends = self._ends()
        if not all(b > a for a, b in zip((0.0, *ends), ends)):
            raise ValueError(
                f"pct_start={pct!r} with total_steps={total} leaves a phase of one_cycle without "
                f"steps; need pct_start * total_steps > 1"
                + (" and (1 - 2 * pct_start) * total_steps > -1" if self.three_phase else "")
            )

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    def _ends(self) -> tuple[float, ...]:
        # The last step of each phase, computed exactly as torch does (floats, not rounded).
        first = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:
            return (first, float(2 * self.pct_start * self.total_steps) - 2, self.total_steps - 1)
        return (first, self.total_steps - 1)

    def _locate(self, step: int) -> tuple[int, float]:
        """(phase index, fraction of it done) at `step`; past the end, the end."""
        t = min(_step(step), self.total_steps - 1)
        ends = self._ends()
        start = 0.0
        for i, end in enumerate(ends):
            if t <= end or i == len(ends) - 1:
                return i, (t - start) / (end - start)
            start = end
        raise AssertionError("unreachable")

    def _anneal(self, start: float, end: float, pct: float) -> float:
        return (_anneal_cos if self.anneal == "cos" else _anneal_linear)(start, end, pct)

    def __call__(self, step: int) -> float:
        phase, pct = self._locate(step)
        lo, hi, last = self.initial_lr, self.max_lr, self.min_lr
        ends = ((lo, hi), (hi, lo), (lo, last)) if self.three_phase else ((lo, hi), (hi, last))
        return self._anneal(*ends[phase], pct)

    def momentum(self, step: int) -> float:
        """The momentum (or Adam's beta1) of step `step`, cycling inversely to the rate."""
        phase, pct = self._locate(step)
        lo, hi = self.base_momentum, self.max_momentum
        ends = ((hi, lo), (lo, hi), (hi, hi)) if self.three_phase else ((hi, lo), (lo, hi))
        return self._anneal(*ends[phase], pct)


@dataclass(frozen=True)
class Scaled:
    r"""A schedule times a constant, :math:`\eta_t = c\,f(t)`.

    What `ReduceLROnPlateau` puts in a param group whose rate is a schedule: the schedule keeps
    its shape and every later step is scaled by the reductions so far.
    """

    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        if not callable(self.schedule):
            raise TypeError(f"schedule={self.schedule!r} must be a schedule f(step) -> float")
        _set(self, "factor", _nonneg("factor", self.factor))

    def __call__(self, step: int) -> float:
        return self.factor * float(self.schedule(step))


# The constructors users type (the classes above carry the math and the checks).
constant = Constant
step_decay = StepDecay
multistep = MultiStep
exponential = Exponential
inverse_time = InverseTime
cosine = Cosine
polynomial = Polynomial
warmup = Warmup
one_cycle = OneCycle
scaled = Scaled
