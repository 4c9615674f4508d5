"""Training: the `Trainer` loop, `History`, metrics, callbacks and the run directory.

See ``docs/training.md``. Nothing here imports rich or matplotlib until a progress bar or a plot
is actually drawn, so ``import gradwise`` stays fast.
"""

from gradwise.training import callbacks
from gradwise.training import metrics
from gradwise.training.callbacks import Callback
from gradwise.training.callbacks import CallbackList
from gradwise.training.rundir import RunDir
from gradwise.training.rundir import atomic_write_bytes
from gradwise.training.trainer import History
from gradwise.training.trainer import Trainer
from gradwise.training.divergence import TrainingDiverged

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "RunDir",
    "Trainer",
    "TrainingDiverged",
    "atomic_write_bytes",
    "callbacks",
    "metrics",
]
