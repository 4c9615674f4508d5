"""Showing the plots inline in a Jupyter notebook.

Every plot function of `gradwise.viz` writes PNG files and returns their paths (no pyplot, no
window, no global backend: see ``gradwise.viz``). In a notebook, `show` displays those files in
the cell's output::

    gw.viz.show(gw.viz.plot_history(trainer.history, "plots"))

(``plot_history(..., show=True)`` does the same). The images are PNG outputs of the cell, so they
stay in the saved notebook and render on GitHub and in ``nbconvert`` exports.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gradwise.training.progress import in_notebook

__all__ = ["show"]


def show(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, width: int | None = None
) -> list[Path]:
    """Display PNG files inline when running in a Jupyter kernel (`in_notebook`).

    Parameters
    ----------
    paths : path-like or iterable of path-likes
        What a `gradwise.viz` function returned: one path or a list of them.
    width : int, optional
        Display width in pixels (the file is not resized).

    Returns
    -------
    list of Path
        The paths. Outside a notebook nothing is displayed (an IPython terminal cannot show a
        PNG either): the files are on disk, where a script's user opens them.

    Raises
    ------
    FileNotFoundError
        For a path that does not exist (before anything is displayed).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [Path(p) for p in paths]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"gradwise.viz.show: {str(f)!r} does not exist")
    if in_notebook():
        from IPython.display import Image, display

        for f in files:
            display(Image(filename=str(f), width=width))
    return files

