"""`Babysitter`: the babysitting checks of CS231n, live, during any `Trainer.fit`.

Every `every` optimizer steps the callback measures, on the batch being trained:

- the ratio of each parameter's update norm to its norm (`gradwise.diagnostics.health.update_ratios`):
  the weights are copied at ``on_train_batch_begin`` and compared at ``on_train_batch_end``, after
  the step (there is no before-step hook, and none is needed);
- each parameter's gradient norm (``Parameter.grad`` still holds the step's gradient after it);
- every layer's output: mean, std, histogram, and the fraction of dead ReLU units or saturated
  sigmoid/tanh outputs, observed with `gradwise.diagnostics.health.ActivationProbe` during that
  batch's forward pass only (the layers are not changed; between measurements nothing is wrapped);
- NaN or inf in the weights or gradients;

and, over the run, whether the loss falls. The judges of `gradwise.diagnostics.checks` read the
numbers; a verdict other than ok is warned about (a `BabysitterWarning` with the advice) once per
problem and layer. The measurements go to ``babysit.csv`` and the warnings to
``babysit_alerts.csv`` in the run directory (or `out_dir`), and a few summary columns
(``update_ratio``, ``dead_relu``, ``saturated``, ``grad_norm``, ``babysit_alerts``) to the epoch logs,
hence ``history.csv``. ``[train] babysit = true`` adds it to ``gradwise train``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gradwise.diagnostics.checks import OK, Check, Thresholds, judge_activations, judge_dead, judge_grad_norms
from gradwise.diagnostics.checks import judge_loss_curve, judge_non_finite, judge_saturated, judge_update_ratios
from gradwise.diagnostics.health import ActivationProbe, ActivationSummary, global_norm, grad_norms, non_finite
from gradwise.diagnostics.health import update_ratios, weight_snapshot
from gradwise.training.callback_base import Callback, Logs
from gradwise.training.rundir import atomic_write_bytes, read_csv_rows, rows_to_csv

__all__ = ["BABYSIT_ALERTS_FILE", "BABYSIT_FILE", "Babysitter", "BabysitterWarning"]

BABYSIT_FILE = "babysit.csv"
BABYSIT_ALERTS_FILE = "babysit_alerts.csv"
ALERT_COLUMNS = ["step", "epoch", "verdict", "check", "where", "summary", "advice"]


class BabysitterWarning(UserWarning):
    """A training-health problem the `Babysitter` saw (each is warned once per layer)."""


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Babysitter: {name}={value!r} must be an integer >= {minimum}")
    return int(value)


class Babysitter(Callback):
    """Watch a training run's health and warn, once per problem, with the advice.

    Parameters
    ----------
    every : int
        Measure every `every` optimizer steps (>= 1). A measurement copies the weights and
        summarizes every layer's output on one batch: a few passes over the weights and the
        activations, on one step in `every`.
    warmup : int
        Optimizer steps before the update/weight ratio is judged (Adam's first steps are large by
        design); the other checks start at once.
    patience : int
        The loss of the first `patience` batches must fall (else: flat, lr too low; or rising, lr
        too high); after that, every `patience` batches, the last ``2 * patience`` must not rise
        (a plateau is convergence, not a problem).
    window : int
        Measurements whose update/weight ratios are judged together (their median).
    warn : bool
        Issue a `BabysitterWarning` for each new problem (False: record only).
    thresholds : Thresholds, optional
        Where each quantity turns from ok to warning to problem (`gradwise.diagnostics.checks`).
    out_dir : path-like, optional
        Where ``babysit.csv`` and ``babysit_alerts.csv`` go; by default the trainer's run
        directory. Without either, everything stays in memory (`rows`, `alerts`).
    draw : callable, optional
        ``draw(rows, plots_dir)`` when `fit` ends, with `rows` and ``RUN/plots`` (or `out_dir`):
        pass `gradwise.viz.plot_babysit` (``gradwise train`` does). Training never imports viz.
    bins : int
        Bins of each activation histogram.

    Attributes
    ----------
    rows : list of dict
        One per measurement: ``step``, ``epoch``, ``loss`` and ``update_ratio/<param>``,
        ``grad_norm/<param>``, ``act_mean/<layer>``, ``act_std/<layer>``, ``dead/<layer>``,
        ``saturated/<layer>``.
    alerts : list of dict
        Every non-ok verdict warned about, with its step and epoch (the columns of
        ``babysit_alerts.csv``).
    checks : dict of step -> Check
        The latest verdict of each check.
    first_activations, last_activations : dict of layer -> ActivationSummary
        The activations at the first and the latest measurement (their histograms are plotted).
    losses : list of float
        Every batch loss seen.
    """

    def __init__(
        self,
        every: int = 20,
        *,
        warmup: int = 50,
        patience: int = 100,
        window: int = 5,
        warn: bool = True,
        thresholds: Thresholds | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        draw: Callable[[list[dict[str, Any]], Path], object] | None = None,
        bins: int = 40,
    ) -> None:
        super().__init__()
        self.every = _positive_int("every", every)
        self.warmup = _positive_int("warmup", warmup, 0)
        self.patience = _positive_int("patience", patience, 2)
        self.window = _positive_int("window", window)
        self.bins = _positive_int("bins", bins)
        if thresholds is not None and not isinstance(thresholds, Thresholds):
            raise TypeError(f"Babysitter: thresholds must be a Thresholds, got {type(thresholds).__name__}")
        if draw is not None and not callable(draw):
            raise ValueError(f"Babysitter: draw={draw!r} must be a function (rows, plots_dir) or None")
        self.thresholds = thresholds or Thresholds()
        self.warn = bool(warn)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.draw = draw
        self.rows: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.checks: dict[str, Check] = {}
        self.first_activations: dict[str, ActivationSummary] = {}
        self.last_activations: dict[str, ActivationSummary] = {}
        self.losses: list[float] = []
        self._warned: set[tuple[str, str | None]] = set()
        self._before: dict[str, np.ndarray] | None = None
        self._before_step = -1
        self._probe: ActivationProbe | None = None
        self._epoch = 0

    # ------------------------------------------------------------------ where things go
    def _dir(self) -> Path | None:
        if self.out_dir is not None:
            return self.out_dir
        run = getattr(self.trainer, "run_dir", None)
        return None if run is None else Path(run.path)

    def _step(self) -> int:
        return int(getattr(self.trainer, "global_step", len(self.losses)))

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs: Logs | None = None) -> None:
        out = self._dir()
        if out is not None and (out / BABYSIT_FILE).is_file() and not self.rows:
            # A resumed run: keep the measurements made before its checkpoint, drop those redone.
            step = self._step()
            self.rows = [r for r in read_csv_rows(out / BABYSIT_FILE) if r.get("step", math.inf) <= step]
            alerts = out / BABYSIT_ALERTS_FILE
            if alerts.is_file():
                self.alerts = [a for a in read_csv_rows(alerts) if a.get("step", math.inf) <= step]

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        step = self._step()
        if self._before is None and step % self.every == 0 and step != self._before_step:
            self._before = weight_snapshot(self.model)
            self._before_step = step
            self._probe = ActivationProbe(self.model, self.bins)
            self._probe.install()

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        loss = float((logs or {}).get("loss", math.nan))
        self.losses.append(loss)
        if self._before is not None and self._step() != self._before_step:
            self._measure(loss)
        n = len(self.losses)
        if n == self.patience:  # the first `patience` batches: flat, rising?
            self._judge(judge_loss_curve(self.losses, self.thresholds))
        elif n > self.patience and n % self.patience == 0:
            # Later, a plateau is normal (convergence); only a rise over the last two windows counts.
            check = judge_loss_curve(self.losses[-2 * self.patience :], self.thresholds)
            if check.numbers.get("relative_fall", 0.0) < -self.thresholds.loss_min_fall:
                self._judge(check)

    def on_train_diverged(self, error: Any, inputs: Any, targets: Any) -> bool:
        self._release()
        self._judge(judge_loss_curve([*self.losses, float(getattr(error, "loss", math.nan))], self.thresholds))
        self._write()
        return False

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs.update(self.epoch_summary(epoch))
        self._write()

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._release()
        self._write()
        out = self._dir()
        if self.draw is not None and self.rows and out is not None:
            run = getattr(self.trainer, "run_dir", None)
            plots = Path(run.plots_dir) if run is not None and self.out_dir is None else out
            self.draw(self.rows, plots)

    # ------------------------------------------------------------------ measuring and judging
    def _release(self) -> None:
        if self._probe is not None:
            self._probe.remove()
        self._probe = None
        self._before = None

    def _measure(self, loss: float) -> None:
        model = self.model
        before, probe = self._before, self._probe
        self._release()
        assert before is not None and probe is not None
        params = dict(model.named_parameters())
        ratios = update_ratios(before, {n: p.data for n, p in params.items()})
        norms = grad_norms(model)
        acts = dict(probe.summaries)
        step = self._step()
        row: dict[str, Any] = {"step": step, "epoch": self._epoch, "loss": loss}
        row.update({f"update_ratio/{n}": v for n, v in ratios.items()})
        row.update({f"grad_norm/{n}": v for n, v in norms.items()})
        for name, a in acts.items():
            row[f"act_mean/{name}"], row[f"act_std/{name}"] = a.mean, a.std
            if a.dead is not None:
                row[f"dead/{name}"] = a.dead
            if a.saturated is not None:
                row[f"saturated/{name}"] = a.saturated
        self.rows.append(row)
        if acts:
            self.last_activations = acts
            if not self.first_activations:
                self.first_activations = acts
        weights = {n for n, p in params.items() if p.data.ndim >= 2 and p.requires_grad}
        t = self.thresholds
        self._judge(judge_non_finite(non_finite(model)))
        recent = [r for r in self.rows[-self.window :] if r["step"] > self.warmup]
        if recent:
            series = {n: [r.get(f"update_ratio/{n}", math.nan) for r in recent] for n in weights}
            self._judge(judge_update_ratios(series, t))
        self._judge(judge_dead({n: a.dead for n, a in acts.items() if a.dead is not None}, t))
        self._judge(judge_saturated({n: a.saturated for n, a in acts.items() if a.saturated is not None}, t))
        self._judge(judge_grad_norms({n: norms[n] for n in norms if n in weights}, {n: params[n].size for n in weights}, t))
        self._judge(judge_activations({n: (a.mean, a.std) for n, a in acts.items()}, t))

    def _judge(self, check: Check) -> None:
        self.checks[check.step] = check
        if check.verdict == OK or check.key in self._warned:
            return
        self._warned.add(check.key)
        self.alerts.append({
            "step": self._step(), "epoch": self._epoch, "verdict": check.verdict, "check": check.step,
            "where": check.where or "", "summary": check.summary, "advice": check.advice,
        })
        if self.warn:
            warnings.warn(f"Babysitter (step {self._step()}): {check}", BabysitterWarning, stacklevel=2)

    def epoch_summary(self, epoch: int) -> dict[str, float]:
        """The columns added to an epoch's logs: the median update/weight ratio of the weights over
        the epoch's measurements, the largest dead and saturated fractions and the global gradient
        norm at its last measurement (each left out when not measured), and the number of alerts
        so far."""
        rows = [r for r in self.rows if r.get("epoch") == epoch]
        ratios = [
            v for r in rows for k, v in r.items()
            if k.startswith("update_ratio/") and k.endswith("weight") and isinstance(v, float) and math.isfinite(v)
        ]
        last = rows[-1] if rows else {}

        def largest(prefix: str) -> float:
            values = [v for k, v in last.items() if k.startswith(prefix) and isinstance(v, (int, float))]
            return float(max(values)) if values else math.nan

        norms = {k: v for k, v in last.items() if k.startswith("grad_norm/")}
        summary = {
            "update_ratio": float(np.median(ratios)) if ratios else math.nan,
            "dead_relu": largest("dead/"),
            "saturated": largest("saturated/"),
            "grad_norm": global_norm(norms) if norms else math.nan,
        }
        # A quantity the model has nothing of (no sigmoid: no saturation) is left out, not NaN.
        out = {k: v for k, v in summary.items() if math.isfinite(v)}
        out["babysit_alerts"] = len(self.alerts)
        return out

    def _write(self) -> None:
        out = self._dir()
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / BABYSIT_FILE, rows_to_csv(self.rows, ["step", "epoch", "loss"]))
        atomic_write_bytes(out / BABYSIT_ALERTS_FILE, rows_to_csv(self.alerts, ALERT_COLUMNS))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"warned": sorted([s, w or ""] for s, w in self._warned)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._warned = {(str(s), None if w in (None, "") else str(w)) for s, w in state.get("warned", [])}

    def __repr__(self) -> str:
        return f"Babysitter(every={self.every}, measurements={len(self.rows)}, alerts={len(self.alerts)})"
