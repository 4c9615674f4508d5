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
