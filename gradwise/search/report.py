"""What a search leaves in its directory: ``results.csv``, the plots and ``best.toml``.

Everything is read back from the study's storage, so the report of a study shared by several
machines lists every machine's trials (the run directories stay on the machine that ran them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradwise.fileio import atomic_write_bytes
from gradwise.search.spaces import SearchSpec, Space
from gradwise.training.rundir import rows_to_csv

if TYPE_CHECKING:
    import optuna

__all__ = ["RESULTS", "BEST", "PLOTS", "trial_rows", "write_best", "write_plots", "write_results", "print_table"]

RESULTS = "results.csv"
BEST = "best.toml"
PLOTS = "plots"


def _value(t: optuna.trial.FrozenTrial) -> float:
    """A finished trial's value, or the last value a pruned one reported (NaN if none)."""
    if t.value is not None:
        return float(t.value)
    if t.intermediate_values:
        return float(t.intermediate_values[max(t.intermediate_values)])
    return math.nan


def trial_rows(study: optuna.Study, spaces: Sequence[Space], metric: str) -> list[dict[str, Any]]:
    """One row per COMPLETE or PRUNED trial, by trial number: state, value, parameters, test metric."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name.lower(), f"val_{metric}": _value(t)}
        if t.user_attrs.get("diverged"):
            row["state"] = "diverged"
        row.update({s.name: t.params.get(s.name, "") for s in spaces})
        row[f"test_{metric}"] = t.user_attrs.get(f"test_{metric}", math.nan)
        row["epochs"] = t.user_attrs.get("epochs", "")
        row["seconds"] = t.user_attrs.get("seconds", "")
        row["run_dir"] = t.user_attrs.get("run_dir", "")
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial"])


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best COMPLETE trial, or None when none has completed."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    return study.best_trial


def ranked(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The COMPLETE trials, best first."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return sorted(done, key=lambda t: t.value, reverse=study.direction == StudyDirection.MAXIMIZE)


def write_results(directory: Path, rows: list[dict[str, Any]]) -> Path:
    """``results.csv``: every finished trial, by trial number."""
    return atomic_write_bytes(directory / RESULTS, rows_to_csv(rows) if rows else b"trial\n")


def print_table(rows: list[dict[str, Any]], spec: SearchSpec, title: str, limit: int = 20) -> None:
    """The results as a rich table, best first (at most `limit` rows)."""
    from rich.console import Console
    from rich.table import Table

    key = f"val_{spec.metric}"
    sign = -1 if spec.direction == "maximize" else 1
    order = sorted(rows, key=lambda r: (r["state"] != "complete", sign * r[key] if math.isfinite(r[key]) else math.inf))
    table = Table(title=title)
    for col in ("trial", "state", key, *(s.name for s in spec.spaces), f"test_{spec.metric}", "epochs"):
        table.add_column(col, justify="left" if col == "state" else "right")
    for r in order[:limit]:
        cells = [r["trial"], r["state"], r[key], *(r[s.name] for s in spec.spaces), r[f"test_{spec.metric}"], r["epochs"]]
        table.add_row(*(f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells))
    import sys

    Console(width=None if sys.stdout.isatty() else 160).print(table)
    if len(order) > limit:
        print(f"({len(order) - limit} more in {RESULTS})")


def write_plots(directory: Path, rows: list[dict[str, Any]], spec: SearchSpec) -> list[Path]:
    """``plots/history.png`` and one ``plots/param_<name>.png`` per hyperparameter."""
    from gradwise.viz._common import safe_name
    from gradwise.viz.search import plot_search_history, plot_search_param

    key = f"val_{spec.metric}"
    values = [r[key] for r in rows]
    pruned = [r["state"] != "complete" for r in rows]
    common = {"pruned": pruned, "metric": spec.metric, "direction": spec.direction}
    paths = [plot_search_history([r["trial"] for r in rows], values, directory / PLOTS / "history.png", **common)]
    for s in spec.spaces:
        path = directory / PLOTS / f"param_{safe_name(s.name)}.png"
        paths.append(plot_search_param(s.name, [r[s.name] for r in rows], values, path, log=s.log, **common))
    return paths


def write_best(directory: Path, study: optuna.Study, spec: SearchSpec, spaces: Sequence[Space]) -> Path | None:
    """``best.toml``: the base config with the best trial's values, ready for ``gradwise train``."""
    import tomli_w

    best = best_trial(study)
    if best is None:
        return None
    data = spec.trial_config(best.params).data
    test = best.user_attrs.get(f"test_{spec.metric}")
    lines = [
        f"# The best trial ({best.number}) of study {study.study_name!r}: validation {spec.metric} {best.value:.4f}"
        + (f", test {test:.4f}" if isinstance(test, (int, float)) else ""),
        f"# {json.dumps(best.params)}",
        f"# Train it again with: gradwise train {directory / BEST}",
        "",
    ]
    return atomic_write_bytes(directory / BEST, ("\n".join(lines) + tomli_w.dumps(data)).encode("utf-8"))
