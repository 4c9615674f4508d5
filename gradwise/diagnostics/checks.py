"""Verdicts: what the measured numbers of a training run say, each with one sentence of advice.

A `Check` is one step's verdict: ``"ok"``, ``"warning"`` or ``"problem"``, the numbers it read, the
layer or parameter it names (if any) and the advice. The judges here read the quantities that
`gradwise.diagnostics.health` measures during training (update/weight ratios, dead and saturated
units, gradient norms, activation statistics, the loss curve); the live
`gradwise.training.babysitter.Babysitter` and `gradwise.diagnostics.diagnose` both call them, so
that a run is judged the same way whichever of the two watches it.

The thresholds are the fields of `Thresholds` (pass your own to either). Where they come from:

- update/weight ratio: CS231n gives ~1e-3 as healthy for SGD. Adaptive optimizers step every
  weight by about lr, so their ratio is about lr / rms(w): the built-in default config (Adam at
  1e-2, a CNN that reaches 94% on MNIST-1D) sits at ~1e-2 throughout training. The ok band is
  therefore [1e-4, 5e-2], with a warning a decade beyond either end and a problem past it;
- dead ReLUs: a few dead units are normal (the default CNN ends 10 epochs with ~30% of one conv
  layer's channels silent on a batch and trains fine; CS231n: "as much as 40% of your network can be
  dead"; a spiral MLP trained well with Adam keeps ~40% of its second layer silent); half of a
  layer is a warning and 80% a problem;
- saturated sigmoid/tanh outputs: 30% of a layer's outputs in the flat tails is a warning, 60% a
  problem;
- gradient norms: the root-mean-square gradient of the weight tensors spread over more than 3
  decades is a warning (vanishing or exploding towards the input), a weight with no gradient at all
  is a problem;
- the loss: falling by less than 2% between the first and last tenth of a run is a problem (flat),
  rising by more than 2% or becoming NaN/inf is a problem (divergence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "OK",
    "PROBLEM",
    "VERDICTS",
    "WARNING",
    "Check",
    "Thresholds",
    "judge_activations",
    "judge_dead",
    "judge_grad_norms",
    "judge_loss_curve",
    "judge_non_finite",
    "judge_saturated",
    "judge_update_ratios",
    "worst",
]

OK = "ok"
WARNING = "warning"
PROBLEM = "problem"
VERDICTS = (OK, WARNING, PROBLEM)  # in increasing order of gravity


def worst(verdicts: Sequence[str]) -> str:
    """The gravest of `verdicts` (``"ok"`` for none)."""
    return max(verdicts, key=VERDICTS.index, default=OK)


@dataclass
class Check:
    """One step's verdict.

    Attributes
    ----------
    step : str
        What was checked, e.g. ``"initial loss"``.
    verdict : {"ok", "warning", "problem"}
    summary : str
        The measured numbers in a sentence, e.g. ``"2.41 vs ln(10) = 2.30 expected"``.
    advice : str
        One sentence: what to do (or that nothing needs doing).
    where : str or None
        The layer or parameter the verdict is about, if one is to blame.
    numbers : dict
        The measurements, for ``report.json``.
    """

    step: str
    verdict: str
    summary: str
    advice: str
    where: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Check: verdict={self.verdict!r} must be one of {VERDICTS}")

    @property
    def key(self) -> tuple[str, str | None]:
        """``(step, where)``: the Babysitter warns once per key."""
        return (self.step, self.where)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        return f"{self.verdict.upper()}: {self.step}{where}: {self.summary}. {self.advice}"


@dataclass(frozen=True)
class Thresholds:
    """Where a measured quantity turns from ok to warning to problem (see the module docstring)."""

    ratio_low_problem: float = 1e-5
    ratio_low: float = 1e-4
    ratio_high: float = 5e-2
    ratio_high_problem: float = 0.5
    dead_warning: float = 0.5
    dead_problem: float = 0.8
    saturated_warning: float = 0.3
    saturated_problem: float = 0.6
    grad_spread: float = 1e3
    act_std_high: float = 1e3
    act_std_low: float = 1e-5
    loss_min_fall: float = 0.02
    loss_rise: float = 0.1

    def __post_init__(self) -> None:
        pairs = (
            ("ratio_low_problem", "ratio_low"), ("ratio_low", "ratio_high"),
            ("ratio_high", "ratio_high_problem"), ("dead_warning", "dead_problem"),
            ("saturated_warning", "saturated_problem"), ("act_std_low", "act_std_high"),
        )
        for a, b in pairs:
            if not 0 < getattr(self, a) < getattr(self, b):
                raise ValueError(f"Thresholds: need 0 < {a} < {b}, got {getattr(self, a)} and {getattr(self, b)}")
        for name in ("grad_spread", "loss_min_fall", "loss_rise"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Thresholds: {name}={getattr(self, name)} must be > 0")


DEFAULT = Thresholds()


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan


def judge_update_ratios(ratios: Mapping[str, Sequence[float]], t: Thresholds = DEFAULT) -> Check:
    """The update/weight ratio of each weight tensor, over the measurements given.

    Parameters
    ----------
    ratios : mapping of parameter name -> sequence of ratios
        One series per weight (ndim >= 2; biases start at 0, where the ratio means nothing), e.g.
        the later measurements of a run (the first steps of Adam are large by design).
    """
    medians = {name: _median(series) for name, series in ratios.items() if len(series)}
    # A weight that does not move at all gets no gradient: the gradient-norm check names it, and
    # its ratio says nothing about the learning rate.
    medians = {k: v for k, v in medians.items() if math.isfinite(v) and v > 0}
    step = "update/weight ratio"
    if not medians:
        return Check(step, OK, "no weight matrix moved (see the gradient norms)", "Nothing to judge.")
    low_name = min(medians, key=medians.__getitem__)
    high_name = max(medians, key=medians.__getitem__)
    low, high = medians[low_name], medians[high_name]
    numbers = {"median_by_parameter": medians, "healthy": 1e-3}
    span = f"medians {low:.1e} ({low_name}) to {high:.1e} ({high_name}); healthy is ~1e-3 (SGD) to ~1e-2 (Adam)"
    if high > t.ratio_high_problem:
        return Check(step, PROBLEM, span, "Each step changes the weights by a large fraction of their size: lower the learning rate (by 10x or more).", high_name, numbers)
    if low < t.ratio_low_problem:
        return Check(step, PROBLEM, span, "The updates are tiny next to the weights: raise the learning rate (by 10x-1000x) or check that the gradient reaches this layer.", low_name, numbers)
    if high > t.ratio_high:
        return Check(step, WARNING, span, "The updates are large next to the weights: the learning rate is probably too high; try 3x-10x lower.", high_name, numbers)
    if low < t.ratio_low:
        return Check(step, WARNING, span, "The updates are small next to the weights: the learning rate is probably too low; try 3x-10x higher.", low_name, numbers)
    return Check(step, OK, span, "The step size suits the weights.", None, numbers)


def _judge_worst_layer(
    step: str, fractions: Mapping[str, float], key: str, none: str, what: str,
    limits: tuple[float, float], advice: tuple[str, str, str],
) -> Check:
    """The layer with the largest fraction of bad units: problem at `limits[0]`, warning at
    `limits[1]`; `advice` is (problem, warning, ok)."""
    if not fractions:
        return Check(step, OK, none, "Nothing to judge.")
    name = max(fractions, key=fractions.__getitem__)
    frac = fractions[name]
    summary = f"at most {frac:.0%} of a layer's {what} ({name})"
    numbers = {key: dict(fractions)}
    if frac >= limits[0]:
        return Check(step, PROBLEM, summary, advice[0], name, numbers)
    if frac >= limits[1]:
        return Check(step, WARNING, summary, advice[1], name, numbers)
    return Check(step, OK, summary, advice[2], None, numbers)


def judge_dead(dead: Mapping[str, float], t: Thresholds = DEFAULT) -> Check:
    """The fraction of dead units of each ReLU layer (`gradwise.diagnostics.health.dead_fraction`)."""
    return _judge_worst_layer(
        "dead ReLUs", dead, "dead_by_layer", "the model has no ReLU", "units never fire on a batch",
        (t.dead_problem, t.dead_warning),
        ("Most of this layer's units output zero for every input and get no gradient: lower the "
         "learning rate, start the biases at 0 (or slightly positive), or use LeakyReLU.",
         "Many units of this layer never fire: watch them; a lower learning rate or LeakyReLU helps if they keep dying.",
         "Few units are dead."),
    )


def judge_saturated(saturated: Mapping[str, float], t: Thresholds = DEFAULT) -> Check:
    """The fraction of saturated outputs of each sigmoid/tanh layer (`health.saturated_fraction`)."""
    flat = (
        "Saturated units pass almost no gradient: scale the initial weights down (Xavier/Glorot "
        "init), standardize the inputs, or use ReLU."
    )
    return _judge_worst_layer(
        "saturated units", saturated, "saturated_by_layer", "the model has no sigmoid or tanh",
        "outputs sit in the flat tails", (t.saturated_problem, t.saturated_warning),
        (flat, flat, "The units work in their responsive range."),
    )


def judge_grad_norms(norms: Mapping[str, float], sizes: Mapping[str, int], t: Thresholds = DEFAULT) -> Check:
    """Gradient norms of the weight tensors, in model order (first layer first).

    Parameters
    ----------
    norms : mapping of name -> 2-norm of the gradient
    sizes : mapping of name -> number of entries (the comparison uses rms = norm / sqrt(size))
    """
    step = "gradient norms"
    if not norms:
        return Check(step, OK, "no trainable weight", "Nothing to judge.")
    numbers: dict[str, Any] = {"norm_by_parameter": dict(norms)}
    bad = [n for n, v in norms.items() if not math.isfinite(v)]
    if bad:
        return Check(step, PROBLEM, f"the gradient of {bad[0]} is NaN or inf", "Lower the learning rate, or clip gradients (clip_grad_norm).", bad[0], numbers)
    zero = [n for n, v in norms.items() if v == 0]
    if zero:
        return Check(step, PROBLEM, f"no gradient reaches {zero[0]} (norm 0)", "Nothing upstream passes gradient (dead ReLUs, a detached layer, a frozen path): fix the blocked path.", zero[0], numbers)
    rms = {n: v / math.sqrt(max(1, sizes.get(n, 1))) for n, v in norms.items()}
    names = list(rms)
    first, last = names[0], names[-1]
    spread = max(rms.values()) / min(rms.values())
    numbers["spread"] = spread
    summary = f"rms gradient from {min(rms.values()):.1e} to {max(rms.values()):.1e} across layers (spread {spread:.1e}); {first} {rms[first]:.1e}, {last} {rms[last]:.1e}"
    if spread > t.grad_spread:
        vanish = rms[first] < rms[last]
        where = first if vanish else last
        advice = (
            "Gradients vanish towards the input: use ReLU-family activations, He/Xavier init, normalization or residual connections."
            if vanish else
            "Gradients grow towards the input (exploding): lower the learning rate, clip gradients, or normalize."
        )
        return Check(step, WARNING, summary, advice, where, numbers)
    return Check(step, OK, summary, "Gradients reach every layer at comparable scales.", None, numbers)


def judge_activations(stats: Mapping[str, tuple[float, float]], t: Thresholds = DEFAULT) -> Check:
    """Mean and std of each observed layer's output (`health.ActivationSummary`)."""
    step = "activations"
    if not stats:
        return Check(step, OK, "no layer observed", "Nothing to judge.")
    numbers = {"mean_std_by_layer": {k: list(v) for k, v in stats.items()}}
    bad = [n for n, (m, s) in stats.items() if not (math.isfinite(m) and math.isfinite(s))]
    text = ", ".join(f"{n} {m:.2g}/{s:.2g}" for n, (m, s) in list(stats.items())[:6])
    summary = f"mean/std {text}{', ...' if len(stats) > 6 else ''}"
    if bad:
        return Check(step, PROBLEM, f"the output of {bad[0]} holds NaN or inf", "Lower the learning rate and check the inputs for NaN and huge values.", bad[0], numbers)
    high = max(stats, key=lambda n: stats[n][1])
    if stats[high][1] > t.act_std_high:
        return Check(step, WARNING, summary, "Activations grow very large: scale the initial weights down or add normalization.", high, numbers)
    low = min(stats, key=lambda n: stats[n][1])
    if stats[low][1] < t.act_std_low:
        return Check(step, WARNING, summary, "This layer's output is (almost) constant: the signal does not get through; check its init and the units before it.", low, numbers)
    return Check(step, OK, summary, "Activations keep a usable scale through the network.", None, numbers)


def judge_loss_curve(losses: Sequence[float], t: Thresholds = DEFAULT) -> Check:
    """The per-batch training loss of a run: falling, flat, rising or non-finite."""
    step = "loss during training"
    values = [float(v) for v in losses]
    if len(values) < 2:
        return Check(step, OK, f"{len(values)} batch recorded", "Too short to judge.")
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        return Check(step, PROBLEM, f"the loss became {values[bad]} at batch {bad + 1}", "The learning rate is too high (lower it by 10x), or the data holds huge values.", None, {"nonfinite_at": bad + 1})
    w = max(1, len(values) // 10)
    first = math.fsum(values[:w]) / w
    last = math.fsum(values[-w:]) / w
    fall = (first - last) / abs(first) if first else 0.0
    numbers = {"first": first, "last": last, "relative_fall": fall, "batches": len(values)}
    summary = f"mean loss {first:.4g} over the first {w} batches, {last:.4g} over the last {w} ({fall:+.1%} fall)"
    if last > first * (1 + t.loss_rise) or (fall < 0 and fall < -t.loss_min_fall):
        return Check(step, PROBLEM, summary, "The loss rises: the learning rate is too high; lower it by 10x.", None, numbers)
    if fall < t.loss_min_fall:
        return Check(step, PROBLEM, summary, "The loss barely changes: the learning rate is probably too low (raise it by 10x-1000x), or no gradient reaches the weights.", None, numbers)
    return Check(step, OK, summary, "The loss falls.", None, numbers)


def judge_non_finite(names: Sequence[str]) -> Check:
    """Parameters (or their ``.grad``) holding NaN or inf (`gradwise.diagnostics.health.non_finite`)."""
    step = "NaN/inf"
    if not names:
        return Check(step, OK, "weights and gradients are finite", "Nothing to do.")
    return Check(step, PROBLEM, f"{names[0]} holds NaN or inf", "Training diverged: lower the learning rate, clip gradients, and check the inputs.", names[0], {"non_finite": list(names)})
