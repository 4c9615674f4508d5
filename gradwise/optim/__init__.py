"""Optimizers: one small file per family on the `Optimizer` base; see docs/optimizers.md."""

from gradwise.optim import schedules
from gradwise.optim.adadelta import Adadelta
from gradwise.optim.adagrad import Adagrad
from gradwise.optim.adam import Adam
from gradwise.optim.adam import AdamW
from gradwise.optim.clip import clip_grad_norm
from gradwise.optim.clip import clip_grad_value
from gradwise.optim.groups import layer_groups
from gradwise.optim.groups import weight_decay_groups
from gradwise.optim.lion import Lion
from gradwise.optim.lr_finder import lr_find
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
    "clip_grad_norm",
    "clip_grad_value",
    "layer_groups",
    "lr_find",
    "schedules",
    "weight_decay_groups",
]
