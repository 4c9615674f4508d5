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

The schedules live in two modules, by what they do: ``decay.py`` (a base rate falling with the
step: `Constant`, `StepDecay`, `MultiStep`, `Exponential`, `InverseTime`, `Cosine`, `Polynomial`)
and ``composite.py`` (built from phases or from another schedule: `Warmup`, `OneCycle`, `Scaled`).
Import them from here: ``gradwise.optim.schedules.cosine(...)``.
"""

from __future__ import annotations

from gradwise.optim.schedules._base import Schedule
from gradwise.optim.schedules.composite import OneCycle, Scaled, Warmup
from gradwise.optim.schedules.decay import Constant, Cosine, Exponential, InverseTime, MultiStep, Polynomial, StepDecay

__all__ = [
    "Constant", "Cosine", "Exponential", "InverseTime", "MultiStep", "OneCycle", "Polynomial",
    "Scaled", "Schedule", "StepDecay", "Warmup",
    "constant", "cosine", "exponential", "inverse_time", "multistep", "one_cycle", "polynomial",
    "scaled", "step_decay", "warmup",
]

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
