"""Layers: each class holds its forward and its hand-derived backward side by side."""

from gradwise.layers.activations import ELU
from gradwise.layers.activations import GELU
from gradwise.layers.activations import LeakyReLU
from gradwise.layers.activations import Maxout
from gradwise.layers.activations import ReLU
from gradwise.layers.activations import Sigmoid
from gradwise.layers.activations import Softplus
from gradwise.layers.activations import Tanh
from gradwise.layers.conv import Conv1d
from gradwise.layers.conv import Conv2d
from gradwise.layers.dropout import Dropout
from gradwise.layers.embedding import Embedding
from gradwise.layers.linear import Linear
from gradwise.layers.normalization import BatchNorm1d
from gradwise.layers.normalization import BatchNorm2d
from gradwise.layers.normalization import LayerNorm
from gradwise.layers.pooling import AvgPool1d
from gradwise.layers.pooling import AvgPool2d
from gradwise.layers.pooling import GlobalAvgPool
from gradwise.layers.pooling import MaxPool1d
from gradwise.layers.pooling import MaxPool2d
from gradwise.layers.recurrent import GRU
from gradwise.layers.recurrent import LSTM
from gradwise.layers.recurrent import RNN
from gradwise.layers.recurrent import TakeLast
from gradwise.layers.reshape import Reshape
from gradwise.layers.structure import Concat
from gradwise.layers.structure import Flatten
from gradwise.layers.structure import Parallel
from gradwise.layers.structure import Residual

__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Concat",
    "Conv1d",
    "Conv2d",
    "Dropout",
    "ELU",
    "Embedding",
    "Flatten",
    "GELU",
    "GRU",
    "GlobalAvgPool",
    "LSTM",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool1d",
    "MaxPool2d",
    "Maxout",
    "Parallel",
    "RNN",
    "ReLU",
    "Reshape",
    "Residual",
    "Sigmoid",
    "Softplus",
    "TakeLast",
    "Tanh",
]
