"""`diagnose`: the babysitting protocol of CS231n and Ng's bias/variance reading, run for you.

The steps, in order (``docs/diagnose.md``); each gives a `Check` with a verdict, the numbers and
one sentence of advice:

1. **initial loss** against its expected value (`readings.expected_initial_loss`), and the
   **penalty** must raise it;
2. a float64 **gradient check** of the whole model on a small batch; when it fails, every leaf
   layer is checked on its own input, to name the layer at fault;
3. **overfit** a tiny subset (~20 samples) with penalty, weight decay and dropout off;
4. a short **learning-rate sweep** (`gradwise.optim.lr_finder.lr_find`) and the configured rate
   read against the range where the loss falls;
5. a **short real training** watched by a `Babysitter` (loss curve, update/weight ratios, dead and
   saturated units, gradient norms, activation statistics, NaN/inf);
6. **bias and variance** of that training against a baseline error, with a train-dev split held
   out of the training data to tell variance from a train/dev distribution mismatch.

Every step runs on a copy of the model and optimizer (`copy.deepcopy` of the pair, so the copy of
the optimizer steps the copy of the model); the objects passed in are never changed.

This module needs the `Trainer`, so it sits on the training floor (3), above the rest of
`gradwise.diagnostics` (floor 2); ``gw.diagnostics.diagnose`` loads it on first use
(``docs/design.md``, "Layering").
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.core import Layer
from gradwise.data.loader import DataLoader
from gradwise.diagnostics.checks import Check, Thresholds, judge_activations, judge_dead, judge_grad_norms
from gradwise.diagnostics.checks import judge_loss_curve, judge_non_finite, judge_saturated, judge_update_ratios
from gradwise.diagnostics.gradcheck import KINKS, check_layer, check_model
from gradwise.diagnostics.health import ActivationProbe, non_finite
from gradwise.diagnostics.readings import bias_variance, expected_initial_loss, judge_gradcheck
from gradwise.diagnostics.readings import judge_initial_loss, judge_lr, judge_overfit, judge_penalty
from gradwise.diagnostics.inputs import Data, cast, check_budgets, check_inputs, model_width, split
from gradwise.diagnostics.report import Diagnosis
from gradwise.layers.dropout import Dropout
from gradwise.losses import BCEWithLogits, Loss, MulticlassHinge, Penalty, SoftmaxCrossEntropy
from gradwise.optim import Adam, Optimizer
from gradwise.optim._flat import FlatGroup
from gradwise.optim.lr_finder import lr_find
from gradwise.training.babysitter import Babysitter
from gradwise.training.callback_base import Callback
from gradwise.training.divergence import TrainingDiverged
from gradwise.training.metrics import accuracy
from gradwise.training.rundir import RunDir, atomic_write_bytes, rows_to_csv
from gradwise.training.trainer import Trainer

__all__ = ["check_inputs", "diagnose"]


def diagnose(
    model: Layer,
    loss: Loss,
    data: Data,
    *,
    optimizer: Optimizer | None = None,
    penalty: Penalty | None = None,
    baseline_error: float = 0.0,
    gap: float = 0.05,
    batch_size: int = 64,
    steps: int = 600,
    train_dev: float = 0.1,
    overfit_samples: int = 20,
    overfit_steps: int = 300,
    sweep_steps: int = 150,
    gradcheck_samples: int = 4,
    gradcheck_entries: int = 20,
    thresholds: Thresholds | None = None,
    run_dir: RunDir | str | os.PathLike[str] | None = None,
    plot: Callable[[Diagnosis, Path], Sequence[Path]] | None = None,
    seed: int = 0,
    log: Callable[[str], object] | None = None,
) -> Diagnosis:
    """Run the babysitting protocol on `model` and return the verdict of every step.

    Parameters
    ----------
    model : Layer
        Not modified: every step trains a copy.
    loss : Loss
        SoftmaxCrossEntropy, MulticlassHinge and BCEWithLogits are read as classifiers (errors are
        1 - accuracy); MSE and others as regression (errors are the loss).
    data : (x_train, y_train) or (x_train, y_train, x_dev, y_dev)
        Arrays with samples on the first axis. With a dev set, a `train_dev` fraction of the
        training data is held out as the train-dev set; without one, that fraction is the dev set.
    optimizer : Optimizer, optional
        Built on ``model.parameters()`` as it will train (copied, never stepped); by default
        ``Adam(lr=1e-3)``. Its first param group's learning rate at the next step is "the
        configured learning rate".
    penalty : Penalty, optional
        The weight penalty training will use (on in every step but the overfit).
    baseline_error : float
        The error to compare the training error with (human level, or the best known); 0 by default.
    gap : float
        An avoidable bias, variance or mismatch above this is a warning (for regression, a
        fraction of the targets' mean square).
    batch_size, steps : int
        The short training: `steps` optimizer steps on batches of `batch_size`.
    train_dev, overfit_samples, overfit_steps, sweep_steps, gradcheck_samples, gradcheck_entries
        The budgets of the other steps (entries checked per tensor for the gradient check).
    thresholds : Thresholds, optional
        For the training-health checks (`gradwise.diagnostics.checks`).
    run_dir : RunDir or path, optional
        Write ``report.md``, ``report.json``, ``lr_sweep.csv``, ``babysit.csv`` and the plots
        there; a path must be new or empty (an earlier run is never written over).
    plot : callable, optional
        ``plot(diagnosis, plots_dir) -> paths``: `gradwise.viz.plot_diagnosis` (``gradwise
        diagnose`` passes it; the diagnostics do not import matplotlib).
    seed : int
        Seeds the splits, the subsets, the shuffling and the gradient check.
    log : callable, optional
        Called with a line as each step finishes (``print`` for progress).

    Returns
    -------
    Diagnosis
        ``.checks`` in step order, ``.exit_code`` (0, or 1 if a step is a problem), the data of the
        plots, ``.run_dir``.

    Raises
    ------
    ValueError
        On one line, before anything runs or is written: data holding NaN or inf, mismatched
        lengths, too few samples, or a model whose output does not fit the loss and targets.
    """
    say = log or (lambda line: None)
    xs = check_inputs(model, loss, data, overfit_samples=overfit_samples)
    check_budgets(batch_size=batch_size, steps=steps, overfit_steps=overfit_steps, sweep_steps=sweep_steps,
                   gradcheck_samples=gradcheck_samples, gradcheck_entries=gradcheck_entries)
    if not 0 < train_dev < 0.5:
        raise ValueError(f"diagnose: {train_dev=} must be in (0, 0.5)")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"diagnose: optimizer must be a gradwise Optimizer built on model.parameters(), got {type(optimizer).__name__}")
    if optimizer is not None:
        own = {id(p) for p in model.parameters()}
        if any(id(p) not in own for group in optimizer.param_groups for p in group["params"]):
            raise ValueError("diagnose: the optimizer was built on parameters that are not this model's; build it on model.parameters()")
    rng = np.random.default_rng(seed)
    classify = isinstance(loss, (SoftmaxCrossEntropy, MulticlassHinge, BCEWithLogits))
    n_out = model_width(model, xs[0])
    splits = split(xs, train_dev, classify, rng)
    if optimizer is None:
        optimizer = Adam(model.parameters(), lr=1e-3)
    run = None if run_dir is None else (run_dir if isinstance(run_dir, RunDir) else RunDir.create(run_dir))
    t = thresholds or Thresholds()
    pristine = (model, optimizer)

    def fresh() -> tuple[Layer, Optimizer]:
        net, opt = copy.deepcopy(pristine)
        if getattr(opt, "_flat", None):
            # A deep copy does not keep NumPy views: the copied parameters would no longer be views
            # into the copied flat buffers. Rebuild those on the copies, as the optimizer did.
            opt._flat = [FlatGroup(group["params"], index=i) for i, group in enumerate(opt.param_groups)]
        return net, opt

    configured = float(optimizer.current_lr(optimizer.param_groups[0]))
    x_tr, y_tr = splits["train"]
    diagnosis = Diagnosis(info={
        "train_samples": len(x_tr), "train_dev_samples": len(splits["train_dev"][0]) if "train_dev" in splits else 0,
        "dev_samples": len(splits["dev"][0]), "parameters": model.num_parameters(), "loss": repr(loss),
        "optimizer": type(optimizer).__name__, "configured_lr": configured, "batch_size": batch_size, "steps": steps,
        "seconds": {},
    })

    def record(name: str, start: float, *checks: Check) -> None:
        diagnosis.info["seconds"][name] = time.perf_counter() - start
        for c in checks:
            diagnosis.checks.append(c)
            say(f"gradwise: diagnose: {c.verdict:>7}  {c.step}" + (f" [{c.where}]" if c.where else ""))

    # 1. initial loss, and the penalty raises it
    start = time.perf_counter()
    net, _ = fresh()
    net.eval()
    xb, yb = x_tr[:256], y_tr[:256]
    data_loss = float(loss.forward(net.forward(cast(xb, net)), yb))
    expected = expected_initial_loss(loss, y_tr, n_out)
    pen = None if penalty is None else float(penalty.value(net.parameters()))
    record("initial loss", start, judge_initial_loss(data_loss, expected, loss), judge_penalty(data_loss, pen, penalty))

    # 2. gradient check, float64, whole model; layer by layer when it fails
    start = time.perf_counter()
    xg, yg = x_tr[:gradcheck_samples], y_tr[:gradcheck_samples]
    report = check_model(model, loss, xg, yg, penalty=penalty, max_entries=gradcheck_entries, seed=seed)
    layers = _check_layers(model, xg, gradcheck_entries, seed) if report.max_rel_error >= KINKS else None
    kinds = {name: type(m).__name__ for name, m in model.named_modules() if name}
    record("gradient check", start, judge_gradcheck(report, kinds, layers))

    # 3. overfit a tiny subset, regularization and dropout off
    start = time.perf_counter()
    record("overfit", start, _overfit(fresh, loss, x_tr, y_tr, overfit_samples, overfit_steps, classify, rng))

    # 4. learning-rate sweep
    start = time.perf_counter()
    net, opt = fresh()
    sweep_loader = DataLoader(x_tr, y_tr, batch_size=batch_size, shuffle=True, rng=rng)
    try:
        result = lr_find(net, loss, opt, sweep_loader, start_lr=min(1e-7, configured / 1e3),
                         end_lr=max(10.0, configured * 10), num_steps=sweep_steps, penalty=penalty)
        diagnosis.lr_sweep = result
        lr_check = judge_lr(result, configured)
    except FloatingPointError as err:
        lr_check = Check("learning rate", "problem", f"the sweep could not start: {err}", "Check the inputs and the model's output scale.")
    record("learning-rate sweep", start, lr_check)

    # 5. a short real training, babysat
    start = time.perf_counter()
    net, opt = fresh()
    train_loader = DataLoader(x_tr, y_tr, batch_size=batch_size, shuffle=True, rng=rng)
    sitter = Babysitter(every=max(1, steps // 50), warmup=steps // 10, patience=max(2, steps // 5), warn=False, thresholds=t)
    trainer = Trainer(net, loss, opt, penalty=penalty, progress=False, callbacks=[sitter, _StopAt(steps)])
    probe_x = x_tr[:512]
    first_acts = _activations(net, probe_x)
    try:
        trainer.fit(train_loader, epochs=math.ceil(steps / len(train_loader)))
        diverged = False
    except TrainingDiverged:
        diverged = True
    losses = list(trainer.history.batch_loss)
    rows = sitter.rows
    later = [r for r in rows if r["step"] > steps // 10] or rows[-1:]
    params = dict(net.named_parameters())
    weights = [n for n, p in params.items() if p.data.ndim >= 2 and p.requires_grad]
    last_acts = _activations(net, probe_x)
    last = rows[-1] if rows else {}
    record(
        "short training", start,
        *_reconcile(
            judge_loss_curve(losses, t),
            judge_non_finite(non_finite(net)),
            judge_update_ratios({n: [r.get(f"update_ratio/{n}", math.nan) for r in later] for n in weights}, t),
            judge_dead({n: a.dead for n, a in last_acts.items() if a.dead is not None}, t),
            judge_saturated({n: a.saturated for n, a in last_acts.items() if a.saturated is not None}, t),
            judge_grad_norms({n: last[f"grad_norm/{n}"] for n in weights if f"grad_norm/{n}" in last},
                             {n: params[n].size for n in weights}, t),
            judge_activations({n: (a.mean, a.std) for n, a in last_acts.items()}, t),
        ),
    )
    diagnosis.data.update(
        babysit=rows, losses=losses,
        activations={"first": first_acts, "last": last_acts},
    )

    # 6. bias and variance of that training
    start = time.perf_counter()
    record("bias/variance", start, *_bias_variance(net, loss, splits, classify, baseline_error, gap, diverged, trainer))

    if run is not None:
        diagnosis.run_dir = run.path
        _write(diagnosis, run, plot)
        say(f"gradwise: diagnose: wrote {run.path / 'report.md'}")
    return diagnosis


# ------------------------------------------------------------------------------------ the steps


def _reconcile(*checks: Check) -> list[Check]:
    """Tiny updates read as "raise the learning rate", unless dead or saturated units block the
    gradient: then the units are the cause (a too-high rate often killed them), and the advice says so."""
    blocked = [c.step for c in checks if c.step in ("dead ReLUs", "saturated units") and c.verdict == "problem"]
    out = []
    for c in checks:
        low = c.step == "update/weight ratio" and c.verdict != "ok" and ("tiny" in c.advice or "small" in c.advice)
        if blocked and low:
            c = Check(c.step, c.verdict, c.summary, f"The updates are small because little gradient gets through the {' and '.join(blocked)} (see there), not because the learning rate is low.", c.where, c.numbers)
        out.append(c)
    return out


class _StopAt(Callback):
    """Stop `fit` once the optimizer has taken `steps` steps."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.trainer is not None and self.trainer.global_step >= self.steps:
            self.trainer.stop_training = True


class _StopWhenMemorized(Callback):
    def __init__(self, classify: bool, target: float) -> None:
        super().__init__()
        self.classify, self.target = classify, target

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        done = logs.get("accuracy", 0.0) >= 1.0 if self.classify else logs.get("loss", math.inf) <= self.target
        if done and self.trainer is not None:
            self.trainer.stop_training = True


def _overfit(
    fresh: Callable[[], tuple[Layer, Optimizer]], loss: Loss, x: np.ndarray, y: np.ndarray,
    samples: int, steps: int, classify: bool, rng: np.random.Generator,
) -> Check:
    net, opt = fresh()
    for _, mod in net.named_modules():
        if isinstance(mod, Dropout):
            mod.p = 0.0
    for group in opt.param_groups:
        if group.get("weight_decay"):
            group["weight_decay"] = 0.0
    pick = rng.choice(len(x), size=samples, replace=False)
    xs, ys = x[pick], y[pick]
    metrics = [accuracy] if classify else []
    trainer = Trainer(net, loss, opt, metrics=metrics, progress=False)
    initial = trainer.evaluate(DataLoader(xs, ys, batch_size=samples))["loss"]
    trainer.callbacks.append(_StopWhenMemorized(classify, 0.01 * initial))
    try:
        trainer.fit(DataLoader(xs, ys, batch_size=samples), epochs=steps)
        final = trainer.evaluate(DataLoader(xs, ys, batch_size=samples))
    except TrainingDiverged:
        final = {"loss": math.nan, "accuracy": 0.0}
    return judge_overfit(initial, final["loss"], final.get("accuracy") if classify else None, trainer.global_step, samples)


def _activations(net: Layer, x: np.ndarray) -> dict[str, Any]:
    """Every observed layer's output on `x` (a forward pass in training mode, on a copy of `net`:
    the same batch at the start and the end of the short training, larger than a training batch,
    so that a unit that fires on few inputs is not counted as dead)."""
    probe_net = copy.deepcopy(net).train()
    with ActivationProbe(probe_net) as probe:
        try:
            probe_net.forward(cast(x, probe_net))
        except FloatingPointError:
            pass  # a diverged copy: what was seen up to the failing layer is kept
    return dict(probe.summaries)


def _check_layers(model: Layer, x: np.ndarray, entries: int, seed: int) -> dict[str, Any]:
    """`check_layer` of every leaf layer on the input it receives in a forward pass of `x`."""
    net = copy.deepcopy(model).astype(np.float64)
    net.train()
    inputs: dict[str, Any] = {}
    leaves = [(n, m) for n, m in net.named_modules() if n and next(iter(m.named_children()), None) is None]
    for name, mod in leaves:
        inner = type(mod).forward

        def wrapper(inp: Any, _name: str = name, _mod: Layer = mod, _inner: Any = inner) -> Any:
            # A copy: the layer's input as it was, for checking the layer alone afterwards.
            inputs[_name] = inp.copy() if isinstance(inp, np.ndarray) else copy.deepcopy(inp)
            return _inner(_mod, inp)

        object.__setattr__(mod, "forward", wrapper)
    try:
        net.forward(np.asarray(x, dtype=np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating) else x)
    finally:
        for _, mod in leaves:
            mod.__dict__.pop("forward", None)
    out = {}
    for name, mod in leaves:
        inp = inputs.get(name)
        if inp is None or not isinstance(inp, np.ndarray) or not np.issubdtype(inp.dtype, np.floating):
            continue  # not reached, or integer input (embedding indices): checked through the whole model
        out[name] = check_layer(mod, inp, max_entries=entries, seed=seed)
    return out


def _bias_variance(
    net: Layer, loss: Loss, splits: dict[str, tuple[np.ndarray, np.ndarray]], classify: bool,
    baseline: float, gap: float, diverged: bool, trainer: Trainer,
) -> list[Check]:
    if diverged:
        return [Check("bias/variance", "warning", "the short training diverged: no errors to read", "Fix the learning rate first (see above), then run again.")]
    errors = {}
    for part, (x, y) in splits.items():
        x, y = x[:5000], y[:5000]  # enough to read an error to a percent, whatever the data size
        scores = trainer.predict(x, batch_size=1024)
        errors[part] = 1.0 - accuracy(scores, y) if classify else float(loss.forward(scores, y))
    scale = 1.0
    if not classify:
        scale = float(np.mean(np.asarray(splits["train"][1], dtype=np.float64) ** 2)) or 1.0
    return bias_variance(errors["train"], errors.get("train_dev"), errors["dev"], baseline, gap * scale,
                         unit="error" if classify else "MSE")


def _write(diagnosis: Diagnosis, run: RunDir, plot: Callable[[Diagnosis, Path], Sequence[Path]] | None) -> None:
    if diagnosis.lr_sweep is not None:
        atomic_write_bytes(run.path / "lr_sweep.csv", rows_to_csv(diagnosis.lr_sweep.rows(), ["step", "lr", "loss", "smoothed_loss"]))
    atomic_write_bytes(run.path / "babysit.csv", rows_to_csv(diagnosis.data.get("babysit", []), ["step", "epoch", "loss"]))
    plots = [] if plot is None else [str(Path(p).relative_to(run.path)) for p in plot(diagnosis, run.plots_dir)]
    diagnosis.info["plots"] = plots
    atomic_write_bytes(run.path / "report.json", diagnosis.json_text().encode("utf-8"))
    atomic_write_bytes(run.path / "report.md", diagnosis.to_markdown(plots).encode("utf-8"))
