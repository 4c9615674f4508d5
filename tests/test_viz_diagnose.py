"""`gradwise/viz/diagnose.py`: the plots of `gradwise diagnose` and of the `Babysitter`, drawn from data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gradwise.diagnostics.health import ActivationSummary
from gradwise.diagnostics.report import Diagnosis
from gradwise.viz import plot_activations, plot_babysit, plot_diagnosis

PNG = b"\x89PNG"


def summary(name: str, kind: str, dead: float | None = None) -> ActivationSummary:
    counts = np.array([1.0, 3.0, 2.0])
    return ActivationSummary(name, kind, 0.1, 1.0, counts, np.array([-1.0, 0.0, 1.0, 2.0]), dead=dead)


def test_babysit_plots_from_rows(tmp_path: Path) -> None:
    rows = [
        {"step": s, "epoch": 0, "loss": 1.0 / s, "update_ratio/0.weight": 1e-3 * s, "update_ratio/0.bias": math.inf,
         "grad_norm/0.weight": 0.5, "dead/1": 0.1 * s}
        for s in (1, 2, 3)
    ]
    written = plot_babysit(rows, tmp_path / "plots")
    assert [p.name for p in written] == ["babysit_update_ratios.png", "babysit_units.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written)
    # without ReLU, sigmoid or tanh layers there is no units plot
    bare = [{k: v for k, v in r.items() if not k.startswith("dead/")} for r in rows]
    assert [p.name for p in plot_babysit(bare, tmp_path / "bare", prefix="")] == ["update_ratios.png"]


def test_activation_histograms_from_summaries_or_their_dicts(tmp_path: Path) -> None:
    first = {"0": summary("0", "Linear"), "1": summary("1", "ReLU", dead=0.0)}
    last = {"0": summary("0", "Linear").to_dict(), "1": summary("1", "ReLU", dead=0.5).to_dict()}
    path = plot_activations(first, last, tmp_path / "a.png")
    assert path.read_bytes().startswith(PNG)


def test_a_diagnosis_without_sweep_or_training_draws_nothing(tmp_path: Path) -> None:
    assert plot_diagnosis(Diagnosis(), tmp_path) == []
