"""What `Trainer.fit` shows while it trains.

On a terminal: a rich progress bar per epoch with the batch count, the running training loss,
the previous epoch's metrics and the time left; each finished epoch leaves one summary line above
the bar. In a Jupyter notebook (or JupyterLab, VS Code, Colab): the same bar and lines as one HTML
output, rendered by rich and updated in place (`NotebookProgress`; no ANSI escapes, no ipywidgets
needed). Elsewhere (a log file, CI, a pipe): only the summary line, once per epoch, e.g.::

    epoch 3/20  loss 0.512  acc 0.81  val_loss 0.6  val_acc 0.78  1.2s

rich is imported when the first bar is drawn, never at ``import gradwise``.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = [
    "Progress", "NullProgress", "LineProgress", "RichProgress", "NotebookProgress", "make_progress",
    "format_epoch_line", "in_notebook",
]

# Keys that are bookkeeping rather than metrics; `time` is shown separately, at the end.
_NOT_SHOWN = ("epoch", "lr", "time")


def _short(key: str) -> str:
    # Keras prints "acc" for accuracy; the long name stays the key in logs and history.
    return key.replace("accuracy", "acc")


def _fmt(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3g}"
    return str(value)


def format_metrics(logs: Mapping[str, Any]) -> str:
    """``"loss 0.512  acc 0.81  val_loss 0.6  val_acc 0.78"``: every metric of `logs`, short names."""
    return "  ".join(f"{_short(k)} {_fmt(v)}" for k, v in logs.items() if k not in _NOT_SHOWN)


def format_epoch_line(logs: Mapping[str, Any], total_epochs: int) -> str:
    """One concise line for a finished epoch (``logs["epoch"]`` is 0-based, shown 1-based)."""
    parts = [f"epoch {int(logs['epoch']) + 1}/{total_epochs}", format_metrics(logs)]
    if "time" in logs:
        seconds = float(logs["time"])
        parts.append(f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms")
    return "  ".join(p for p in parts if p)


class Progress:
    """The interface the trainer drives; this base shows nothing."""

    def start(self, total_epochs: int, batches_per_epoch: int | None) -> None:
        """Training begins; `total_epochs` counts the epochs of earlier `fit` calls too."""

    def start_epoch(self, epoch: int) -> None:
        """Epoch `epoch` (0-based) begins."""

    def update(self, batches_done: int, running_loss: float) -> None:
        """`batches_done` batches of the current epoch are finished; mean loss so far."""

    def end_epoch(self, logs: Mapping[str, Any]) -> None:
        """The epoch is finished, validation included; `logs` is its complete row."""

    def close(self) -> None:
        """Training ended (normally or not): release the terminal."""


class NullProgress(Progress):
    """``progress=False``: silence."""


class LineProgress(Progress):
    """One line per epoch on `stream` (for logs, CI and pipes, where a live bar is noise)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total_epochs = 0

    def start(self, total_epochs: int, batches_per_epoch: int | None) -> None:
        self.total_epochs = total_epochs

    def end_epoch(self, logs: Mapping[str, Any]) -> None:
        self.stream.write(format_epoch_line(logs, self.total_epochs) + "\n")
        self.stream.flush()


class RichProgress(Progress):
    """A rich bar per epoch: batches done, running loss, last epoch's metrics, time left."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total_epochs = 0
        self.batches_per_epoch: int | None = None
        self._bar: Any = None
        self._task: Any = None
        self._last = ""

    def start(self, total_epochs: int, batches_per_epoch: int | None) -> None:
        from rich.console import Console

        self.total_epochs = total_epochs
        self.batches_per_epoch = batches_per_epoch
        self._bar = _rich_bar(Console(file=self.stream), transient=True)
        self._bar.start()

    def start_epoch(self, epoch: int) -> None:
        if self._bar is None:
            return
        description = f"epoch {epoch + 1}/{self.total_epochs}"
        if self._task is None:
            self._task = self._bar.add_task(
                description, total=self.batches_per_epoch, loss="-", last=self._last
            )
        else:
            self._bar.reset(
                self._task, total=self.batches_per_epoch, description=description, loss="-", last=self._last
            )

    def update(self, batches_done: int, running_loss: float) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=batches_done, loss=_fmt(running_loss))

    def end_epoch(self, logs: Mapping[str, Any]) -> None:
        if self._bar is None:
            return
        self._last = "last: " + format_metrics(logs)
        # Printed through the bar's console, the line lands above the live bar and stays.
        self._bar.console.print(format_epoch_line(logs, self.total_epochs), highlight=False, markup=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None


def _rich_bar(console: Any, transient: bool) -> Any:
    """The rich bar both displays draw: epoch, bar, batches, running loss, last metrics, times."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as _RichBar

    return _RichBar(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("[dim]{task.fields[last]}"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


def in_notebook() -> bool:
    """True inside a Jupyter kernel (notebook, JupyterLab, VS Code, Colab, Databricks).

    The test rich itself makes (``rich.console._is_jupyter``), so our console and rich's agree;
    IPython in a terminal is not a notebook. IPython is never imported here: a kernel has it loaded.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    return (
        type(shell).__name__ == "ZMQInteractiveShell"
        or "google.colab" in str(type(shell))
        or bool(os.getenv("DATABRICKS_RUNTIME_VERSION"))
    )


# rich's own Jupyter markup (rich.jupyter.JUPYTER_HTML_FORMAT): a <pre> block with inline styles.
_NOTEBOOK_HTML = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)


class _Rendered:
    """A rich renderable as Jupyter shows it: HTML with inline styles, and plain text (no ANSI)."""

    def __init__(self, renderable: Any, width: int) -> None:
        from rich.console import Console

        console = Console(
            file=io.StringIO(), record=True, width=width, force_terminal=True, force_jupyter=False,
            color_system="truecolor",
        )
        console.print(renderable)
        self.html = console.export_html(inline_styles=True, code_format=_NOTEBOOK_HTML, clear=False)
        self.text = console.export_text(styles=False)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}


class NotebookProgress(Progress):
    """In a notebook: the finished epochs' lines above a live rich bar, as one output updated in place.

    The output is an IPython display (``display(..., display_id=True)``, then ``update``), so it
    needs no ipywidgets and survives saving the notebook: what stays is the epoch lines (the bar
    goes when training ends, as on a terminal).

    Parameters
    ----------
    width : int
        Characters per line of the rendering.
    min_interval : float
        Seconds between two redraws of the bar (epoch ends always redraw).
    """

    def __init__(self, width: int = 120, min_interval: float = 0.2) -> None:
        self.width = int(width)
        self.min_interval = float(min_interval)
        self.total_epochs = 0
        self.batches_per_epoch: int | None = None
        self.lines: list[str] = []
        self._bar: Any = None
        self._task: Any = None
        self._handle: Any = None
        self._last = ""
        self._drawn = -math.inf

    def start(self, total_epochs: int, batches_per_epoch: int | None) -> None:
        from IPython.display import display

        self.total_epochs = total_epochs
        self.batches_per_epoch = batches_per_epoch
        self._bar = _rich_bar(None, transient=True)
        self._handle = display(self._view(), display_id=True)

    def start_epoch(self, epoch: int) -> None:
        if self._bar is None:
            return
        description = f"epoch {epoch + 1}/{self.total_epochs}"
        if self._task is None:
            self._task = self._bar.add_task(description, total=self.batches_per_epoch, loss="-", last=self._last)
        else:
            self._bar.reset(self._task, total=self.batches_per_epoch, description=description, loss="-", last=self._last)
        self._draw()

    def update(self, batches_done: int, running_loss: float) -> None:
        if self._bar is None or self._task is None:
            return
        self._bar.update(self._task, completed=batches_done, loss=_fmt(running_loss))
        if time.perf_counter() - self._drawn >= self.min_interval:
            self._draw()

    def end_epoch(self, logs: Mapping[str, Any]) -> None:
        if self._bar is None:
            return
        self._last = "last: " + format_metrics(logs)
        self.lines.append(format_epoch_line(logs, self.total_epochs))
        self._draw()

    def close(self) -> None:
        if self._bar is None:
            return
        self._bar = None
        self._task = None
        self._draw()  # the lines alone
        self._handle = None

    def _view(self) -> _Rendered:
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = [Text(line) for line in self.lines]
        if self._bar is not None and self._task is not None:
            parts.append(self._bar.get_renderable())
        return _Rendered(Group(*parts), self.width)

    def _draw(self) -> None:
        if self._handle is not None:
            self._handle.update(self._view())
        self._drawn = time.perf_counter()


def make_progress(enabled: bool, stream: TextIO | None = None) -> Progress:
    """The display for `Trainer(progress=enabled)`: a rich bar on a terminal, an HTML bar in a
    Jupyter notebook (`in_notebook`), lines elsewhere.

    Parameters
    ----------
    enabled : bool
        False gives `NullProgress`.
    stream : text stream, optional
        Where to write; `sys.stdout` at call time by default.
    """
    if not enabled:
        return NullProgress()
    if stream is None and in_notebook():
        return NotebookProgress()
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return RichProgress(stream)
    return LineProgress(stream)
