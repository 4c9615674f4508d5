"""Plots of training runs, of the learning-rate range test and of optimizer trajectories (PNG, GIF).

One module per kind of picture, all re-exported here:

- `gradwise.viz.history`: `plot_history`, the loss and metric curves of a `History`;
- `gradwise.viz.run`: `plot_run`, every plot of a run directory redrawn from its files;
- `gradwise.viz.schedule`: `plot_lr_schedule`;
- `gradwise.viz.histograms`: `plot_histograms`, `plot_histogram_data`;
- `gradwise.viz.lr_finder`: `plot_lr_finder`;
- `gradwise.viz.trajectories`: `plot_trajectories`, `animate_trajectories`;
- `gradwise.viz.notebook`: `show`, the written PNGs inline in a Jupyter notebook;
- `gradwise.viz.diagnose`: `plot_diagnosis`, `plot_babysit`, `plot_activations`, `plot_lr_sweep`;
- `ema`, the bias-corrected moving average the curves are smoothed with.

The lower packages compute what is drawn (a `History`, an `LRFinderResult`, histogram data,
optimizer paths) and never import this one. matplotlib is imported inside each function
(``import gradwise.viz`` does not import it), and figures are drawn with
`matplotlib.figure.Figure` on an Agg canvas rather than through pyplot: no window opens, and the
backend or figures of a user's own pyplot session are left alone.
"""

from __future__ import annotations

from gradwise.viz._common import ema
from gradwise.viz.diagnose import plot_activations, plot_babysit, plot_diagnosis, plot_lr_sweep
from gradwise.viz.histograms import plot_histogram_data, plot_histograms
from gradwise.viz.history import plot_history
from gradwise.viz.lr_finder import plot_lr_finder
from gradwise.viz.notebook import show
from gradwise.viz.run import BATCH_LOSS_FILE, HISTOGRAM_DIR, plot_run
from gradwise.viz.schedule import plot_lr_schedule
from gradwise.viz.trajectories import animate_trajectories, plot_trajectories

__all__ = [
    "BATCH_LOSS_FILE",
    "HISTOGRAM_DIR",
    "animate_trajectories",
    "ema",
    "plot_activations",
    "plot_babysit",
    "plot_diagnosis",
    "plot_histogram_data",
    "plot_histograms",
    "plot_history",
    "plot_lr_finder",
    "plot_lr_schedule",
    "plot_lr_sweep",
    "plot_run",
    "plot_trajectories",
    "show",
]
