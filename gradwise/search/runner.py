"""Running trials: the objective (one `gradwise train` run per trial) and the worker loop.

Each trial is trained by the train command's own code path (`gradwise.cli.__main__.cmd_train`,
handed in as `train` so that this package does not import the command line that imports it): its
config goes to ``trials/NNNN.toml``, its run directory to ``trials/NNNN/`` (the normal layout:
config.toml, history.csv, metrics.json, checkpoints/, plots/) and what it prints to
``trials/NNNN.log``. A callback reports the validation metric to Optuna after every epoch and
stops the run when the pruner says so; a diverged run stops cleanly and counts as pruned.

A worker runs trials until the study holds the number asked for (COMPLETE plus PRUNED). While the
last ones are still running elsewhere it waits, in case one of them is lost (its process killed)
and comes back as a WAITING copy to run again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradwise.cli.config import ConfigError
from gradwise.search.spaces import SearchSpec, Space
from gradwise.search.storage import GRACE_PERIOD, HEARTBEAT_INTERVAL, counts, open_storage
from gradwise.training.callback_base import Callback, Logs

if TYPE_CHECKING:
    import optuna

__all__ = ["Job", "TrialReporter", "run_worker", "suggest"]

TrainFn = Callable[..., int]
POLL_SECONDS = 1.0  # how often a worker with nothing to run looks at the study again


@dataclass(frozen=True)
class Job:
    """What a worker process needs (plain values: it is pickled for `multiprocessing`)."""

    spec: SearchSpec
    directory: Path  # the study's directory: trials/, results.csv, plots/, best.toml
    storage: str
    study: str
    trials: int
    worker: int = 0
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD
    verbose: bool = True
    parent: int | None = None  # a worker process stops (between trials) once this process is gone


def suggest(trial: optuna.Trial, space: Space) -> Any:
    """Draw `space`'s value for `trial` from Optuna's distribution of the same kind."""
    if space.kind == "choice":
        return trial.suggest_categorical(space.name, list(space.choices))
    if space.kind in ("int", "log_int"):
        return trial.suggest_int(space.name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(space.name, float(space.low), float(space.high), log=space.log)


class TrialReporter(Callback):
    """Reports ``val_<metric>`` to an Optuna trial after each epoch; stops the run if it is pruned.

    Parameters
    ----------
    trial : optuna.Trial
    metric : str
        The metric's name without the ``val_`` prefix (``accuracy``, ``loss``).
    prune : bool
        Ask the study's pruner after each epoch (`optuna.Trial.should_prune`).
    """

    def __init__(self, trial: optuna.Trial, metric: str, prune: bool) -> None:
        super().__init__()
        self.trial, self.metric, self.prune = trial, metric, prune
        self.pruned_at: int | None = None
        self.diverged = False

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        value = (logs or {}).get(f"val_{self.metric}")
        if value is None or not math.isfinite(float(value)):
            self.diverged = True
            self.trainer.stop_training = True  # type: ignore[union-attr]
            return
        self.trial.report(float(value), step=epoch + 1)
        if self.prune and self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.trainer.stop_training = True  # type: ignore[union-attr]

    def on_train_diverged(self, error: Any, inputs: Any, targets: Any) -> bool:
        self.diverged = True
        return True  # stop cleanly: the trial is recorded as pruned, the search goes on


class _Surplus(Exception):
    """Two workers started the last trial at once: the later one stands down (recorded as FAIL)."""


def _in_flight_ahead(study: optuna.Study, number: int) -> int:
    """Trials that count (COMPLETE, PRUNED) or may still count (RUNNING with a lower number)."""
    from optuna.trial import TrialState

    ahead = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)):
        if t.state != TrialState.RUNNING or t.number < number:
            ahead += 1
    return ahead


def _objective(job: Job, spaces: list[Space], train: TrainFn) -> Callable[[optuna.Trial], float]:
    import optuna

    spec = job.spec

    def objective(trial: optuna.Trial) -> float:
        if _in_flight_ahead(trial.study, trial.number) >= job.trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus(f"trial {trial.number}: the study already has {job.trials} trials")
        params = {s.name: suggest(trial, s) for s in spaces}
        try:
            return _train_trial(job, spec, spaces, trial, params, train)
        except KeyboardInterrupt:
            # Ctrl-C: the trial is recorded as FAIL; queue its parameters so that the same command
            # run again trains them first instead of losing them.
            trial.study.enqueue_trial(params, user_attrs={"interrupted": trial.number})
            raise
        except optuna.TrialPruned:
            raise

    return objective


def _train_trial(
    job: Job, spec: SearchSpec, spaces: list[Space], trial: optuna.Trial, params: dict[str, Any], train: TrainFn
) -> float:
    import optuna
    import tomli_w

    from gradwise.fileio import atomic_write_bytes

    trials_dir = job.directory / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{trial.number:04d}"
    config_path = trials_dir / f"{stem}.toml"
    run_dir = trials_dir / stem
    data = spec.trial_config(params).data
    header = f"# trial {trial.number} of study {job.study!r}: {json.dumps(params)}\n"
    atomic_write_bytes(config_path, (header + tomli_w.dumps(data)).encode("utf-8"))
    trial.set_user_attr("run_dir", str(run_dir))
    reporter = TrialReporter(trial, spec.metric, prune=spec.pruner != "none")
    args = argparse.Namespace(
        config=str(config_path), out=str(run_dir), set=None, epochs=None, resume=None,
        strict_resume=False, no_progress=True, debug=False,
    )
    start = time.perf_counter()
    with open(trials_dir / f"{stem}.log", "w", encoding="utf-8", buffering=1) as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            status = train(args, callbacks=[reporter])
    if status != 0:
        raise RuntimeError(f"trial {trial.number}: training exited with status {status}; see {trials_dir / stem}.log")
    results = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    for part in ("train", "val", "test"):
        for name, value in results.get(part, {}).items():
            # A diverged run's metrics are NaN, written as null: left out.
            if isinstance(value, (int, float)) and math.isfinite(value):
                trial.set_user_attr(f"{part}_{name}", float(value))
    trial.set_user_attr("epochs", int(results.get("epochs", 0)))
    trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
    value = results.get("val", {}).get(spec.metric)
    value = float(value) if isinstance(value, (int, float)) else math.nan
    if reporter.diverged or not math.isfinite(value):
        trial.set_user_attr("diverged", True)
        _say(job, f"trial {trial.number}: diverged; stopped and counted as pruned ({_fmt(params)})")
        raise optuna.TrialPruned("diverged")
    if reporter.pruned_at is not None:
        trial.set_user_attr("pruned_at_epoch", reporter.pruned_at)
        _say(job, f"trial {trial.number}: pruned at epoch {reporter.pruned_at}, val {spec.metric} {value:.4f} ({_fmt(params)})")
        raise optuna.TrialPruned(f"epoch {reporter.pruned_at}")
    test = results.get("test", {}).get(spec.metric)
    tail = f", test {test:.4f}" if isinstance(test, (int, float)) else ""
    _say(job, f"trial {trial.number}: val {spec.metric} {value:.4f}{tail} ({_fmt(params)}; {time.perf_counter() - start:.0f} s)")
    return value


def _fmt(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _say(job: Job, text: str) -> None:
    if job.verbose:
        print(f"gradwise search [{job.study}{f' w{job.worker}' if job.worker else ''}] {text}", flush=True)


def make_sampler(spec: SearchSpec, worker: int, joined_at: int) -> optuna.samplers.BaseSampler:
    """Random (the default) or TPE, seeded from ``[search] seed``, the worker and when it joined.

    A fresh single-worker search draws the same trials for the same seed; a worker that joins a
    study already holding trials (a resumed search, a second process or machine) gets a seed of
    its own, so it does not propose the trials already run again.
    """
    import optuna

    seed = int(np.random.SeedSequence([spec.seed, worker, joined_at]).generate_state(1)[0])
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, spec.startup_trials))
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    """The pruner of ``[search] pruner``: none, median (Optuna's MedianPruner) or successive halving."""
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_epochs)
    if spec.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, spec.warmup_epochs), reduction_factor=spec.reduction_factor
        )
    return optuna.pruners.NopPruner()


def load_study(job: Job) -> optuna.Study:
    import optuna

    storage = open_storage(job.storage, heartbeat_interval=job.heartbeat_interval, grace_period=job.grace_period)
    probe = optuna.load_study(study_name=job.study, storage=storage)
    joined_at = len(probe.get_trials(deepcopy=False))
    return optuna.load_study(
        study_name=job.study,
        storage=storage,
        sampler=make_sampler(job.spec, job.worker, joined_at),
        pruner=make_pruner(job.spec),
    )


def run_worker(job: Job, spaces: list[Space], train: TrainFn) -> None:
    """Run trials of `job.study` until it holds `job.trials` COMPLETE or PRUNED trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(job)
    objective = _objective(job, spaces, train)
    waiting = False
    while job.parent is None or os.getppid() == job.parent:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # lost trials -> FAIL, and a WAITING copy each
        n = counts(study)
        done = n.get("COMPLETE", 0) + n.get("PRUNED", 0)
        if done >= job.trials:
            return
        if done + n.get("RUNNING", 0) >= job.trials and not n.get("WAITING", 0):
            if not waiting:
                _say(job, f"{done} of {job.trials} trials done; waiting for the {n['RUNNING']} still running "
                     f"(one silent for {job.grace_period} s is run again)")
                waiting = True
            time.sleep(POLL_SECONDS)  # the last trials run elsewhere; wait in case one is lost
            continue
        waiting = False
        study.optimize(objective, n_trials=1, catch=(_Surplus,))


def worker_main(job: Job, spaces: list[Space], train: TrainFn) -> None:
    """A worker process's entry point (`multiprocessing`, spawn start method)."""
    try:
        run_worker(job, spaces, train)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except ConfigError as e:
        print(f"gradwise: error: {e}", flush=True)
        raise SystemExit(2) from None
