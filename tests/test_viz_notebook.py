"""gradwise/viz/notebook.py: `show` displays written PNGs inline in a notebook and does nothing
elsewhere; ``plot_history(..., show=True)`` goes through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradwise.training import History
from gradwise.viz import plot_history, show


class ZMQInteractiveShell:
    """Stands for a Jupyter kernel's shell (rich and `in_notebook` look at the class name only)."""


def _history() -> History:
    h = History()
    for epoch in range(3):
        h.epochs.append({"epoch": epoch, "loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.1 * epoch, "lr": 0.1})
        h.steps.append(4 * (epoch + 1))
    h.batch_loss.extend(np.linspace(1.2, 0.3, 12).tolist())
    return h


def test_outside_a_notebook_show_only_checks_and_returns_the_paths(tmp_path: Path) -> None:
    paths = plot_history(_history(), tmp_path, show=True)
    assert show(paths) == paths and show(paths[0]) == [paths[0]]
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        show([paths[0], tmp_path / "nothing.png"])


def test_in_a_notebook_each_png_is_displayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    IPython = pytest.importorskip("IPython", reason="inline images go through IPython.display")
    ipython_display = pytest.importorskip("IPython.display")

    shown: list[Any] = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    monkeypatch.setattr(ipython_display, "display", shown.append)
    paths = plot_history(_history(), tmp_path, show=True)
    assert [p.name for p in paths] == ["loss.png", "accuracy.png"]
    assert [type(obj).__name__ for obj in shown] == ["Image", "Image"]
    assert shown[0].data == paths[0].read_bytes() and shown[0].format == "png"
