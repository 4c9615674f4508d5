"""The notebook display of gradwise/training/progress.py: `in_notebook` (rich's own test) and
`NotebookProgress`, one IPython output updated in place with rich's HTML rendering (the end-to-end
run in a real kernel is tests/test_notebooks.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gradwise.training import progress
from gradwise.training.progress import LineProgress, NotebookProgress, in_notebook, make_progress


class _Handle:
    """What ``IPython.display.display(obj, display_id=True)`` returns: a handle to update the output."""

    def __init__(self, shown: list[Any]) -> None:
        self.shown = shown

    def update(self, obj: Any) -> None:
        self.shown.append(obj)


class ZMQInteractiveShell:
    """Stands for the shell of a Jupyter kernel: rich and `in_notebook` look only at its class name."""


def test_not_a_notebook_under_pytest() -> None:
    assert not in_notebook()
    assert isinstance(make_progress(True), LineProgress)  # pytest's captured stdout is no terminal


def test_a_kernel_gets_the_notebook_display(monkeypatch: pytest.MonkeyPatch) -> None:
    IPython = pytest.importorskip("IPython", reason="Jupyter kernels run IPython (the test extra's ipykernel)")
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    assert in_notebook()
    assert isinstance(make_progress(True), NotebookProgress)
    assert isinstance(make_progress(False), progress.NullProgress)


def test_notebook_progress_draws_html_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    display_module = pytest.importorskip("IPython.display", reason="the notebook display uses IPython")
    shown: list[Any] = []
    monkeypatch.setattr(display_module, "display", lambda obj, display_id: shown.append(obj) or _Handle(shown))
    bar = NotebookProgress(min_interval=0.0)
    bar.start(total_epochs=2, batches_per_epoch=5)
    bar.start_epoch(0)
    bar.update(3, 0.75)
    mid = shown[-1]._repr_mimebundle_()
    assert mid["text/html"].startswith("<pre") and "<span" in mid["text/html"]  # rich's styled HTML
    assert "epoch 1/2" in mid["text/plain"] and "3/5" in mid["text/plain"] and "loss 0.75" in mid["text/plain"]
    bar.end_epoch({"epoch": 0, "loss": 0.5, "accuracy": 0.75, "time": 0.25})
    bar.start_epoch(1)
    bar.update(5, 0.25)
    bar.end_epoch({"epoch": 1, "loss": 0.25, "accuracy": 0.875, "time": 0.25})
    bar.close()
    final = shown[-1]._repr_mimebundle_()
    assert final["text/plain"].splitlines() == [
        "epoch 1/2  loss 0.5  acc 0.75  250ms",
        "epoch 2/2  loss 0.25  acc 0.875  250ms",
    ]  # the bar is gone, the lines stay
    assert all("\x1b" not in s._repr_mimebundle_()["text/plain"] for s in shown)
    assert bar.lines == final["text/plain"].splitlines()
