"""Optimizers: one small file per family on the `Optimizer` base; see docs/optimizers.md."""

from gradwise.optim.adam import Adam
from gradwise.optim.adam import AdamW
from gradwise.optim.optimizer import Optimizer
from gradwise.optim.sgd import SGD

__all__ = [
    "Adam",
    "AdamW",
    "Optimizer",
    "SGD",
]
