"""Layers: each class holds its forward and its hand-derived backward side by side."""

from gradwise.layers.activations import ELU
from gradwise.layers.activations import GELU
from gradwise.layers.activations import LeakyReLU
from gradwise.layers.activations import Maxout
from gradwise.layers.activations import ReLU
from gradwise.layers.activations import Sigmoid
from gradwise.layers.activations import Softplus
from gradwise.layers.activations import Tanh
from gradwise.layers.linear import Linear
from gradwise.layers.structure import Flatten

__all__ = [
    "ELU",
    "Flatten",
    "GELU",
    "LeakyReLU",
    "Linear",
    "Maxout",
    "ReLU",
    "Sigmoid",
    "Softplus",
    "Tanh",
]
