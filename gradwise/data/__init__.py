"""Datasets, splits, preprocessing and mini-batch loading.

See ``docs/data.md`` for a walk-through.
"""

from __future__ import annotations

from gradwise.data.adult import load_adult
from gradwise.data.datasets import load_mnist1d
from gradwise.data.images import images_to_float
from gradwise.data.images import load_mnist
from gradwise.data.images import load_mnist_splits
from gradwise.data.imageprep import ChannelStandardizer
from gradwise.data.imageprep import MeanImage
from gradwise.data.whitening import PCA
from gradwise.data.whitening import ZCA
from gradwise.data.datasets import make_mnist1d
from gradwise.data.datasets import make_spiral
from gradwise.data.datasets import mnist1d_templates
from gradwise.data.loader import DataLoader
from gradwise.data.preprocessing import Standardizer
from gradwise.data.preprocessing import one_hot
from gradwise.data.splits import kfold
from gradwise.data.splits import train_dev_test_split
from gradwise.data.splits import train_test_split
from gradwise.data.tabular import Table
from gradwise.data.tabular import load_csv
from gradwise.data.tabular_preprocessing import TabularProcessor

__all__ = [
    "DataLoader",
    "Standardizer",
    "Table",
    "TabularProcessor",
    "kfold",
    "load_adult",
    "load_csv",
    "load_mnist1d",
    "make_mnist1d",
    "make_spiral",
    "mnist1d_templates",
    "one_hot",
    "train_dev_test_split",
    "train_test_split",
    # image data (docs/images.md)
    "ChannelStandardizer",
    "MeanImage",
    "PCA",
    "ZCA",
    "images_to_float",
    "load_mnist",
    "load_mnist_splits",
]
