"""Optimizers: one small file per family on the `Optimizer` base; see docs/optimizers.md."""

from gradwise.optim.adadelta import Adadelta
from gradwise.optim.adagrad import Adagrad
from gradwise.optim.adam import Adam
from gradwise.optim.adam import AdamW
from gradwise.optim.groups import layer_groups
from gradwise.optim.groups import weight_decay_groups
from gradwise.optim.lion import Lion
from gradwise.optim.nadam import NAdam
from gradwise.optim.optimizer import Optimizer
from gradwise.optim.radam import RAdam
from gradwise.optim.rmsprop import RMSprop
from gradwise.optim.sgd import SGD

__all__ = [
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Lion",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "SGD",
    "layer_groups",
    "weight_decay_groups",
]
