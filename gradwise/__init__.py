"""gradwise: neural networks on NumPy with hand-derived backward passes, gradient checks and diagnostics."""

from gradwise import data
from gradwise import diagnostics
from gradwise import init
from gradwise import io
from gradwise import layers
from gradwise import losses
from gradwise import optim
from gradwise import tabular
from gradwise._version import __version__
from gradwise.core import Layer
from gradwise.core import Parameter
from gradwise.core import Sequential
from gradwise.io import load
from gradwise.io import save
from gradwise.random import default_rng
from gradwise.random import manual_seed
from gradwise.training import callbacks
from gradwise.training import metrics
from gradwise.training.ensemble import Ensemble
from gradwise.training.trainer import History
from gradwise.training.trainer import Trainer


def __getattr__(name: str) -> object:
    # `gw.search(config, trials=N)`: the package (callable) is imported on first use, so that
    # `import gradwise` does not import Optuna. See gradwise/search/__init__.py.
    if name == "search":
        import gradwise.search

        return gradwise.search
    raise AttributeError(f"module 'gradwise' has no attribute {name!r}")


__all__ = [
    "Ensemble",
    "History",
    "Layer",
    "Parameter",
    "Sequential",
    "Trainer",
    "callbacks",
    "data",
    "default_rng",
    "diagnostics",
    "init",
    "io",
    "layers",
    "load",
    "losses",
    "manual_seed",
    "metrics",
    "optim",
    "tabular",
    "save",
]
