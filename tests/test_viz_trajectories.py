"""Tests of the optimizer-trajectory plots in gradwise/viz/trajectories.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradwise.optim import SGD, Adam
from gradwise.optim.trajectories import (
    Beale,
    IllConditionedBowl,
    Rosenbrock,
    Saddle,
    Surface,
    run_optimizer,
)
from gradwise.viz import animate_trajectories, plot_trajectories


def _paths(surface: Surface, steps: int = 30) -> dict[str, np.ndarray]:
    return {
        "SGD": run_optimizer(lambda ps: SGD(ps, lr=1e-3), surface, steps=steps),
        "Adam": run_optimizer(lambda ps: Adam(ps, lr=0.05), surface, steps=steps),
    }


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"\x89PNG") and len(data) > 1000


@pytest.mark.parametrize("surface", [IllConditionedBowl(), Saddle(), Rosenbrock(), Beale()], ids=repr)
def test_plot_trajectories_writes_a_png(tmp_path: Path, surface: Surface) -> None:
    out = plot_trajectories(_paths(surface), surface, tmp_path / "sub" / "paths.png", title="t")
    assert out == tmp_path / "sub" / "paths.png" and _is_png(out)
    with Image.open(out) as im:
        width, height = im.size
    assert width > 300 and height > 200


def test_plot_trajectories_copes_with_a_diverged_path(tmp_path: Path) -> None:
    bowl = IllConditionedBowl()
    paths = {"diverges": run_optimizer(lambda ps: SGD(ps, lr=1e3), bowl, steps=200), **_paths(bowl)}
    assert np.isnan(paths["diverges"][-1]).all()
    assert _is_png(plot_trajectories(paths, bowl, tmp_path / "d.png"))


def test_animate_trajectories_writes_a_small_looping_gif(tmp_path: Path) -> None:
    surface = Rosenbrock()
    out = animate_trajectories(_paths(surface, steps=40), surface, tmp_path / "a.gif", frames=12)
    data = out.read_bytes()
    assert data.startswith(b"GIF89a") and 1000 < len(data) < 2_000_000
    with Image.open(out) as im:
        assert im.n_frames == 12 and im.info.get("loop") == 0


def test_animate_trajectories_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frames"):
        animate_trajectories(_paths(Saddle(), 5), Saddle(), tmp_path / "a.gif", frames=1)


def test_the_new_plots_leave_pyplot_alone(tmp_path: Path) -> None:
    had_pyplot = "matplotlib.pyplot" in sys.modules
    surface = Saddle()
    plot_trajectories(_paths(surface, 5), surface, tmp_path / "p.png")
    animate_trajectories(_paths(surface, 5), surface, tmp_path / "p.gif", frames=3)
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
