"""The verdicts of the protocol's own steps: initial loss, penalty, gradient check, overfitting a tiny
subset, the learning-rate sweep, and the bias/variance report (Ng's reading of train/dev errors).

Pure functions of measured numbers (no training): `gradwise.diagnostics.diagnose` measures, these
judge. Each returns a `gradwise.diagnostics.checks.Check`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradwise.diagnostics.checks import OK, PROBLEM, WARNING, Check
from gradwise.diagnostics.gradcheck import BUG, GREAT, KINKS, GradCheckReport
from gradwise.losses import MSE, BCEWithLogits, Loss, MulticlassHinge, Penalty, SoftmaxCrossEntropy
from gradwise.optim.lr_curve import LRFinderResult

__all__ = [
    "bias_variance",
    "expected_initial_loss",
    "judge_gradcheck",
    "judge_initial_loss",
    "judge_lr",
    "judge_overfit",
    "judge_penalty",
    "working_lr_range",
]

#: Initial loss within this relative distance of its expected value is ok; within a factor 2, a warning.
INITIAL_LOSS_TOL = 0.25


def expected_initial_loss(loss: Loss, y: np.ndarray, n_outputs: int) -> tuple[float, str] | None:
    """The loss a network with small weights (scores ~ 0) should start at, and how it is computed.

    - softmax cross-entropy: every class equally likely, ``ln C``;
    - multiclass hinge: every wrong class violates the margin by the margin itself, ``(C - 1)
      margin^p`` (divided by C with ``divide_by_classes``);
    - MSE: predicting 0 costs the mean square of the targets (their variance when centred);
    - binary cross-entropy on logits: ``ln 2``.

    Returns None for a loss not among these.
    """
    c = int(n_outputs)
    if isinstance(loss, SoftmaxCrossEntropy):
        return math.log(c), f"ln({c}) = {math.log(c):.4g}"
    if isinstance(loss, MulticlassHinge):
        value = (c - 1) * loss.margin**loss.p / (c if loss.divide_by_classes else 1)
        return value, f"(C-1) x margin{'^2' if loss.p == 2 else ''}{' / C' if loss.divide_by_classes else ''} = {value:.4g}"
    if isinstance(loss, MSE):
        value = float(np.mean(np.asarray(y, dtype=np.float64) ** 2))
        if loss.reduction == "sum":
            return None
        return value, f"the targets' mean square (their variance when centred) = {value:.4g}"
    if isinstance(loss, BCEWithLogits):
        return math.log(2), f"ln(2) = {math.log(2):.4g}"
    return None


def judge_initial_loss(measured: float, expected: tuple[float, str] | None, loss: Loss) -> Check:
    """Compare the loss before training with `expected_initial_loss`."""
    step = "initial loss"
    numbers: dict[str, Any] = {"measured": measured}
    if not math.isfinite(measured):
        return Check(step, PROBLEM, f"the loss before training is {measured}", "Check the inputs for NaN/inf and huge values, and the init scale.", None, numbers)
    if expected is None or reduction_sum(loss):
        return Check(step, OK, f"{measured:.4g} (no expected value known for {type(loss).__name__} with this reduction)", "Nothing to compare with.", None, numbers)
    value, how = expected
    numbers.update(expected=value, formula=how)
    summary = f"{measured:.4g} vs {how} expected"
    rel = (measured - value) / value if value > 0 else 0.0
    numbers["relative"] = rel
    if abs(rel) <= INITIAL_LOSS_TOL:
        return Check(step, OK, summary, "The network starts near chance, as it should.", None, numbers)
    verdict = WARNING if 0.5 * value <= measured <= 2 * value else PROBLEM
    if measured > value:
        advice = "The initial scores are too large (confident at random): scale down the init, the last layer's weights above all, and standardize the inputs."
    else:
        advice = "The loss is below chance before training: look for labels leaking into the inputs or a loss that does not average over the batch."
    return Check(step, verdict, summary, advice, None, numbers)


def reduction_sum(loss: Loss) -> bool:
    return getattr(loss, "reduction", "mean") == "sum"


def judge_penalty(data_loss: float, penalty_value: float | None, penalty: Penalty | None) -> Check:
    """The penalty must raise the loss (CS231n: crank it up and the loss should go up)."""
    step = "penalty raises the loss"
    if penalty is None:
        return Check(step, OK, "no penalty configured", "Nothing to check.")
    assert penalty_value is not None
    numbers = {"data_loss": data_loss, "penalty": penalty_value, "total": data_loss + penalty_value}
    summary = f"{data_loss:.4g} without, {data_loss + penalty_value:.4g} with {penalty!r} (+{penalty_value:.3g})"
    if not math.isfinite(penalty_value) or penalty_value <= 0:
        return Check(step, PROBLEM, summary, "The penalty adds nothing: it applies to no parameter (weights_only and no weight matrices?) or its strength is 0.", None, numbers)
    if math.isfinite(data_loss) and penalty_value > data_loss:
        return Check(step, WARNING, summary, "The penalty outweighs the data loss at the start: its strength is probably too high (try 10x lower).", None, numbers)
    return Check(step, OK, summary, "The penalty raises the loss, as it should.", None, numbers)


def judge_gradcheck(
    report: GradCheckReport, modules: Mapping[str, str], layers: Mapping[str, GradCheckReport] | None = None
) -> Check:
    """The whole-model gradient check, and when it fails the layer-by-layer checks that locate the bug.

    Parameters
    ----------
    report : GradCheckReport
        `check_model` of the whole model, in float64.
    modules : mapping of module name -> class name
        From ``named_modules``, to name the layer of a failing parameter.
    layers : mapping of module name -> GradCheckReport, optional
        `check_layer` of each leaf layer on its own input (run when the whole check fails): a layer
        whose own input or parameter gradient is wrong fails here, even when the whole-model
        check only sees the effect on the parameters of the layers before it.
    """
    step = "gradient check"
    worst_tensor = max(report.checks, key=lambda c: c.rel_error, default=None)
    if worst_tensor is None:
        return Check(step, OK, "the model has no trainable parameter", "Nothing to check.")
    err = worst_tensor.rel_error
    numbers: dict[str, Any] = {"max_rel_error": err, "by_tensor": {c.name: c.rel_error for c in report.checks}}
    failing_layers = {name: r for name, r in (layers or {}).items() if r.max_rel_error >= KINKS}
    if failing_layers:
        numbers["by_layer"] = {n: r.max_rel_error for n, r in (layers or {}).items()}
    if err < GREAT:
        return Check(step, OK, f"largest relative error {err:.1e} ({worst_tensor.name})", "The backward matches finite differences.", None, numbers)
    if err < KINKS:
        return Check(step, OK, f"largest relative error {err:.1e} ({worst_tensor.name}): acceptable near kinks", "The backward matches finite differences (up to ReLU/max kinks).", None, numbers)
    if failing_layers:
        name, layer_report = max(failing_layers.items(), key=lambda kv: kv[1].max_rel_error)
        tensor = max(layer_report.checks, key=lambda c: c.rel_error)
        part = "its input gradient" if tensor.name.startswith("input") else f"parameter {name}.{tensor.name}"
        where = f"layer {name} ({modules.get(name, '?')}), {part}"
        summary = f"{worst_tensor.name}: relative error {err:.2g} in the whole model; {where} fails its own check ({tensor.rel_error:.2g})"
    else:
        owner = worst_tensor.name.rpartition(".")[0]
        where = f"layer {owner} ({modules.get(owner, '?')}), parameter {worst_tensor.name}"
        summary = f"{worst_tensor.name}: relative error {err:.2g} ({worst_tensor.reading})"
    verdict = PROBLEM if err >= BUG else WARNING
    advice = (
        f"The backward of {where} does not match finite differences: fix its gradient formula."
        if verdict == PROBLEM else
        f"The gradient of {where} is suspicious: check it, unless the layer has kinks on this batch."
    )
    return Check(step, verdict, summary, advice, where, numbers)


def judge_overfit(
    initial_loss: float, final_loss: float, accuracy: float | None, steps: int, samples: int
) -> Check:
    """Can the model memorize a tiny subset (regularization and dropout off)? If not, it is a bug."""
    step = f"overfit {samples} samples"
    numbers: dict[str, Any] = {"initial_loss": initial_loss, "final_loss": final_loss, "accuracy": accuracy, "steps": steps}
    if accuracy is not None:
        summary = f"training accuracy {accuracy:.0%}, loss {initial_loss:.3g} -> {final_loss:.3g} after {steps} steps"
        done = accuracy >= 0.999
        close = accuracy >= 0.9
    else:
        summary = f"loss {initial_loss:.3g} -> {final_loss:.3g} after {steps} steps"
        done = math.isfinite(final_loss) and final_loss <= 0.01 * initial_loss
        close = math.isfinite(final_loss) and final_loss <= 0.1 * initial_loss
    if done:
        return Check(step, OK, summary, "The model can memorize a tiny subset, as any working model can.", None, numbers)
    if close:
        return Check(step, WARNING, summary, "Almost memorized: probably fine, but a working model gets all of them; check the learning rate.", None, numbers)
    return Check(step, PROBLEM, summary, "A model that cannot memorize a handful of samples has a bug or is far too small: check that the labels match the inputs, the gradient check above, and the learning rate.", None, numbers)


def working_lr_range(result: LRFinderResult) -> tuple[float, float] | None:
    """The learning rates over which the sweep's loss falls: ``(low, high)``, or None if it never fell.

    `high` is where the smoothed loss is lowest (beyond it the loss rises: too high); `low` is
    the first learning rate after the warm-up where the smoothed loss has covered a tenth of its
    total fall (below it the loss barely changes: too low). Both are read from the curve up to the
    divergence.
    """
    lrs = np.asarray(result.lrs, dtype=np.float64)
    s = np.asarray(result.smoothed, dtype=np.float64)
    end = len(s) if result.divergence_step is None else min(len(s), result.divergence_step + 1)
    start = min(result.warmup, max(0, end - 1))
    lrs, s = lrs[start:end], s[start:end]
    if s.size == 0 or not math.isfinite(result.start_loss):
        return None
    best = int(np.nanargmin(s))
    fall = result.start_loss - s[best]
    if not fall >= result.min_fall * abs(result.start_loss):
        return None
    low = int(np.argmax(s <= result.start_loss - 0.1 * fall))
    return float(lrs[low]), float(lrs[best])


def judge_lr(result: LRFinderResult, configured: float) -> Check:
    """The configured learning rate against the range where the sweep's loss falls."""
    step = "learning rate"
    span = working_lr_range(result)
    numbers: dict[str, Any] = {
        "configured": configured, "suggestion": result.suggestion, "divergence_lr": result.divergence_lr,
        "sweep": [result.start_lr, result.end_lr], "steps": len(result.lrs),
    }
    if span is None:
        return Check(step, PROBLEM, f"the loss never fell over the sweep from {result.start_lr:.0e} to {result.lrs[-1]:.2g}", "No learning rate makes the loss fall: look for a bug (gradient check, overfit step, labels) before tuning.", None, numbers)
    low, high = span
    numbers.update(low=low, high=high)
    where = f"the loss falls for lr in [{low:.1e}, {high:.1e}] (steepest at {result.suggestion:.1e}); configured {configured:.2g}"
    if configured > high:
        return Check(step, PROBLEM, f"{where}: above it the loss explodes or NaN: lr too high", f"Lower the learning rate to about {result.suggestion:.1e} (at most {high:.1e}).", None, numbers)
    if configured < low / 10:
        return Check(step, PROBLEM, f"{where}: at it the loss barely changes: lr probably too low", f"Raise the learning rate to about {result.suggestion:.1e}.", None, numbers)
    if configured < low:
        return Check(step, WARNING, f"{where}: the loss barely changes there: lr probably too low", f"Try a learning rate nearer {result.suggestion:.1e}.", None, numbers)
    return Check(step, OK, where, "The learning rate is in the range where the loss falls.", None, numbers)


def bias_variance(
    train: float, train_dev: float | None, dev: float, baseline: float = 0.0, gap: float = 0.05, unit: str = "error"
) -> list[Check]:
    """Ng's reading of the errors: avoidable bias, variance and (with a train-dev set) data mismatch.

    - avoidable bias = train error - baseline error (human level, or the best known);
    - variance = train-dev error - train error (same distribution, unseen samples);
    - data mismatch = dev error - train-dev error (the dev set's distribution differs).

    Without a train-dev set the variance is dev - train and mismatch cannot be told apart from it.
    Each gap above `gap` is a warning with the standard advice (never a problem: these say what to do
    next, not that something is broken; a short run overstates the bias, and its advice says so).

    Returns
    -------
    list of Check
        ``"bias/variance"``, then ``"data mismatch"`` when there is a train-dev set.
    """
    bias = train - baseline
    ref = dev if train_dev is None else train_dev
    variance = ref - train
    numbers: dict[str, Any] = {
        "baseline": baseline, "train": train, "train_dev": train_dev, "dev": dev,
        "avoidable_bias": bias, "variance": variance, "gap": gap,
    }
    parts = [f"baseline {baseline:.3g}", f"train {train:.3g}"]
    if train_dev is not None:
        parts.append(f"train-dev {train_dev:.3g}")
    parts.append(f"dev {dev:.3g} ({unit})")
    summary = ", ".join(parts) + f": avoidable bias {bias:+.3g}, variance {variance:+.3g}"
    high_bias, high_var = bias > gap, variance > gap
    step = "bias/variance"
    if high_bias and high_var:
        out = Check(step, WARNING, summary + ": high bias and high variance", "Fix the bias first (a bigger network, training longer, a better architecture), then the variance (more data, regularization, dropout).", None, numbers)
    elif high_bias:
        out = Check(step, WARNING, summary + ": high bias (underfitting)", "Use a bigger network, train longer (this was a short run) or try a better architecture or optimizer.", None, numbers)
    elif high_var:
        out = Check(step, WARNING, summary + ": high variance (overfitting)", "Get more data, add regularization (L2, weight decay) or dropout, or use a smaller network.", None, numbers)
    else:
        out = Check(step, OK, summary, "Neither bias nor variance stands out at this gap.", None, numbers)
    checks = [out]
    if train_dev is not None:
        mismatch = dev - train_dev
        numbers["mismatch"] = mismatch
        m_summary = f"dev {dev:.3g} vs train-dev {train_dev:.3g}: mismatch {mismatch:+.3g}"
        if mismatch > gap:
            checks.append(Check("data mismatch", WARNING, m_summary, "The dev data differ from the training data: make the training data more like the dev data (collect or synthesize it), or train on some dev-like data.", None, {"mismatch": mismatch}))
        else:
            checks.append(Check("data mismatch", OK, m_summary, "The dev set behaves like unseen training data.", None, {"mismatch": mismatch}))
    return checks
