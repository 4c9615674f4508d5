"""Tests for gradwise/viz/history.py (plot_history) and gradwise/viz/_common.py (ema)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradwise.training.trainer import History
from gradwise.viz import ema, plot_history

_ROOT = Path(__file__).resolve().parents[1]


def _history(n_epochs: int = 5, per_epoch: int = 20) -> History:
    rng = np.random.default_rng(0)
    history = History()
    history.batch_loss = list(
        np.exp(-np.arange(n_epochs * per_epoch) / 30) + 0.05 * rng.random(n_epochs * per_epoch)
    )
    for e in range(n_epochs):
        history.epochs.append(
            {
                "epoch": e,
                "loss": 1 / (e + 1),
                "accuracy": 0.5 + 0.08 * e,
                "top5_accuracy": 0.9,
                "val_loss": 1.2 / (e + 1),
                "val_accuracy": 0.45 + 0.08 * e,
                "val_top5_accuracy": 0.85,
                "lr": 0.01,
                "time": 0.1,
            }
        )
        history.steps.append((e + 1) * per_epoch)
    return history


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 1000


def test_plot_history_writes_loss_and_one_png_per_metric(tmp_path: Path) -> None:
    paths = plot_history(_history(), tmp_path / "plots")
    assert [p.name for p in paths] == ["loss.png", "accuracy.png", "top5_accuracy.png"]
    assert all(_is_png(p) for p in paths)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths)


def test_plot_history_leaves_pyplot_and_the_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plot_history(_history(), tmp_path)
    assert matplotlib.get_backend() == backend
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


def test_plot_history_copes_with_divergence_and_csv_histories(tmp_path: Path) -> None:
    history = _history(3)
    history.batch_loss[-1] = math.nan
    history.batch_loss[-2] = math.inf
    history.epochs[-1]["loss"] = math.nan
    assert all(_is_png(p) for p in plot_history(history, tmp_path / "diverged"))

    history.to_csv(tmp_path / "h.csv")
    from_csv = History.from_csv(tmp_path / "h.csv")  # no per-iteration losses, no step counts
    assert all(_is_png(p) for p in plot_history(from_csv, tmp_path / "csv"))


def test_plot_history_of_an_empty_history(tmp_path: Path) -> None:
    paths = plot_history(History(), tmp_path)
    assert [p.name for p in paths] == ["loss.png"] and _is_png(paths[0])


def test_ema_is_bias_corrected_and_skips_non_finite_values() -> None:
    np.testing.assert_allclose(ema([3.0, 3.0, 3.0], 0.9), [3.0, 3.0, 3.0])
    smoothed = ema([1.0, math.nan, 3.0], 0.5)
    # (0.5 * 1 + 0.5 * 3 * ... ): s = 0.5, then 0.25 + 1.5 = 1.75 over weight 0.75
    np.testing.assert_allclose(smoothed, [1.0, 1.0, 1.75 / 0.75])
    assert math.isnan(ema([math.nan, 1.0], 0.5)[0])
    with pytest.raises(ValueError, match="beta"):
        ema([1.0], 1.0)


def test_importing_viz_leaves_matplotlib_unloaded_and_keeps_every_name() -> None:
    # A fresh interpreter: this one has long imported matplotlib through the other tests.
    code = (
        "import sys, gradwise.viz as v\n"
        "names = ['BATCH_LOSS_FILE', 'HISTOGRAM_DIR', 'animate_trajectories', 'ema', 'plot_activations',\n"
        "         'plot_babysit', 'plot_diagnosis', 'plot_histogram_data',\n"
        "         'plot_histograms', 'plot_history', 'plot_lr_finder', 'plot_lr_schedule', 'plot_lr_sweep', 'plot_run',\n"
        "         'plot_trajectories', 'show']\n"
        "assert sorted(v.__all__) == names, v.__all__\n"
        "assert all(callable(getattr(v, n)) for n in names if not n.isupper())\n"
        "print('matplotlib' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_the_packages_below_viz_do_not_import_it() -> None:
    # STYLE: a lower package offers data and viz draws it; only viz and what sits above it
    # (the command line, the bench suite and the search, floor 5 in tests/test_layering.py) may
    # import it or matplotlib.
    import ast

    offenders = []
    for path in sorted((_ROOT / "gradwise").rglob("*.py")):
        rel = path.relative_to(_ROOT / "gradwise").as_posix()
        if rel.split("/")[0] in ("viz", "cli", "bench", "search"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{rel}: {n}" for n in names if n.split(".")[0] == "matplotlib" or n.startswith("gradwise.viz")]
    assert offenders == []
