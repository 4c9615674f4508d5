"""Schedules built from phases or from another schedule: warm-up, the 1cycle policy, scaling.

`Warmup` puts a linear warm-up in front of any schedule, `OneCycle` rises to a peak and anneals
(with its inverse momentum cycle) and `Scaled` multiplies a schedule by a constant (what
`ReduceLROnPlateau` does to a scheduled rate). See ``docs/schedules.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradwise.optim.schedules._base import Schedule, _integer, _nonneg, _positive, _real, _set, _step
from gradwise.optim.schedules.decay import Constant

__all__ = ["OneCycle", "Scaled", "Warmup"]


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
