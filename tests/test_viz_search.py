"""The search plots: metric against a hyperparameter (log, linear, categorical) and the history."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gradwise.viz.search import _best_index, plot_search_history, plot_search_param

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("xs", "log"),
    [([1e-4, 3e-3, 1e-2, 0.05], True), ([0.0, 0.1, 0.3, 0.5], False), (["SGD", "Adam", "SGD", "AdamW"], False)],
    ids=["log", "linear", "choice"],
)
def test_a_param_plot_is_written_for_every_kind_of_space(tmp_path: Path, xs: list, log: bool) -> None:
    path = plot_search_param("x", xs, [0.5, 0.7, math.nan, 0.6], tmp_path / "p" / "x.png", log=log,
                             pruned=[False, False, True, True], metric="accuracy")
    assert path.read_bytes().startswith(PNG)


def test_the_history_is_written_and_lengths_must_match(tmp_path: Path) -> None:
    path = plot_search_history([2, 0, 1], [0.4, 0.6, 0.5], tmp_path / "h.png", pruned=[True, False, False], direction="minimize")
    assert path.read_bytes().startswith(PNG)
    assert plot_search_history([], [], tmp_path / "empty.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="2 trial numbers for 1 values"):
        plot_search_history([0, 1], [0.5], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="3 values of 'lr' for 2"):
        plot_search_param("lr", [1, 2, 3], [0.1, 0.2], tmp_path / "bad.png")


def test_the_best_trial_is_a_finished_one_in_the_right_direction() -> None:
    import numpy as np

    values = np.array([0.9, 0.5, 0.7, math.nan])
    done = np.array([False, True, True, True])  # 0.9 was pruned: not a candidate
    assert _best_index(values, done, "maximize") == 2
    assert _best_index(values, done, "minimize") == 1
    assert _best_index(values, np.zeros(4, dtype=bool), "maximize") is None
