"""The ONE explicit table from the names a config may use to the classes they build.

Nothing else in gradwise looks classes up by string (DESIGN.md): to make a layer, loss, penalty,
optimizer, schedule or metric usable from a TOML config, add it here. ``parsing.py`` checks a
config's names and keys against these tables; ``build.py`` builds the objects they name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradwise import layers, losses, optim
from gradwise.core import Layer
from gradwise.data.adult import ADULT_CAT_NAMES, ADULT_CONT_NAMES
from gradwise.data.tabular import NA_VALUES
from gradwise.optim import schedules
from gradwise.tabular import MODEL_DEFAULTS as _TABULAR_MODEL
from gradwise.training import metrics as _metrics
from gradwise.training.callbacks import ReduceLROnPlateau
from gradwise.data.imageprep import ChannelStandardizer, MeanImage
from gradwise.data.whitening import PCA, ZCA

LAYERS: dict[str, type[Layer]] = {
    "AvgPool1d": layers.AvgPool1d,
    "AvgPool2d": layers.AvgPool2d,
    "BatchNorm1d": layers.BatchNorm1d,
    "BatchNorm2d": layers.BatchNorm2d,
    "Concat": layers.Concat,
    "Conv1d": layers.Conv1d,
    "Conv2d": layers.Conv2d,
    "Dropout": layers.Dropout,
    "ELU": layers.ELU,
    "Embedding": layers.Embedding,
    "Flatten": layers.Flatten,
    "GELU": layers.GELU,
    "GRU": layers.GRU,
    "GlobalAvgPool": layers.GlobalAvgPool,
    "LSTM": layers.LSTM,
    "LayerNorm": layers.LayerNorm,
    "LeakyReLU": layers.LeakyReLU,
    "Linear": layers.Linear,
    "MaxPool1d": layers.MaxPool1d,
    "MaxPool2d": layers.MaxPool2d,
    "Maxout": layers.Maxout,
    "Parallel": layers.Parallel,
    "RNN": layers.RNN,
    "ReLU": layers.ReLU,
    "Reshape": layers.Reshape,
    "Residual": layers.Residual,
    "Sigmoid": layers.Sigmoid,
    "Softplus": layers.Softplus,
    "TakeLast": layers.TakeLast,
    "Tanh": layers.Tanh,
}
# Layers whose config holds nested layer lists: `block = [tables]` or `branches = [[tables], ...]`.
CONTAINERS = {"Residual": "block", "Concat": "branches", "Parallel": "branches"}
LOSSES: dict[str, type[losses.Loss]] = {
    "SoftmaxCrossEntropy": losses.SoftmaxCrossEntropy,
    "MulticlassHinge": losses.MulticlassHinge,
    "MSE": losses.MSE,
    "BCEWithLogits": losses.BCEWithLogits,
}
PENALTIES: dict[str, type[losses.Penalty]] = {
    "L1": losses.L1,
    "L2": losses.L2,
    "ElasticNet": losses.ElasticNet,
}
OPTIMIZERS: dict[str, Callable[..., optim.Optimizer]] = {
    "SGD": optim.SGD,
    "Adam": optim.Adam,
    "AdamW": optim.AdamW,
    "Adagrad": optim.Adagrad,
    "Adadelta": optim.Adadelta,
    "RMSprop": optim.RMSprop,
    "NAdam": optim.NAdam,
    "RAdam": optim.RAdam,
    "Lion": optim.Lion,
}
# Schedules take their base rate from [optimizer] lr (`lr`, or `max_lr` for one_cycle) and, where
# they need it, `total_steps` = epochs * batches per epoch unless given. "plateau" is a callback.
SCHEDULES: dict[str, Callable[..., Any]] = {
    "constant": schedules.constant,
    "step": schedules.step_decay,
    "multistep": schedules.multistep,
    "exponential": schedules.exponential,
    "inverse_time": schedules.inverse_time,
    "cosine": schedules.cosine,
    "polynomial": schedules.polynomial,
    "one_cycle": schedules.one_cycle,
    "plateau": ReduceLROnPlateau,
}
# Keys of [schedule] that the config itself handles (not arguments of the schedule class).
SCHEDULE_KEYS = ("type", "warmup_steps", "warmup_start_factor", "cycle_momentum")
# Optional keys of [optimizer] that the config itself handles: `decay_biases = false` leaves the
# biases and normalization parameters out of weight decay (`gradwise.optim.groups.is_decay_exempt`).
OPTIMIZER_KEYS = ("decay_biases",)
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _metrics.accuracy,
    "rmse": _metrics.rmse,
    "mae": _metrics.mae,
}
# `[model] learner = NAME` builds a ready-made model from the data's description (column
# cardinalities, number of users/items, ...) instead of a `layers` list: NAME's own keys and defaults
# here, its builder in `gradwise.cli.config.learners.BUILDERS`.
LEARNERS: dict[str, dict[str, Any]] = {
    # fastai's tabular model (gradwise.tabular): layers, dropout (one or one per layer), emb_dropout,
    # emb_sizes = { column = width } overrides of min(600, round(1.6 * n**0.56)), bn_cont, use_bn, bn_final.
    "tabular": dict(_TABULAR_MODEL),
    # Collaborative filtering (gradwise.collab): EmbeddingDotBias, or EmbeddingNN with use_nn;
    # layers = [] means [n_factors] (fastai's collab_learner); y_range = [] means no sigmoid range.
    "collab": {"n_factors": 50, "y_range": [0.0, 5.5], "use_nn": False, "layers": [], "ps": 0.0, "embed_p": 0.0,
               "use_bn": True, "init_std": 0.01},
}
# [data] keys every dataset takes (None: required), then each dataset's own keys and defaults.
# The function that loads each dataset is `gradwise.cli.config.datasets.LOADERS[name]`.
DATA_KEYS: dict[str, Any] = {"dataset": None, "val": 0.1, "standardize": False}
# The image datasets' own keys (mnist, fashion_mnist, kmnist; see gradwise.cli.config.images).
_IMAGE_DATA: dict[str, Any] = {
    "path": "", "download": False, "split": "standard", "holdout": 0, "train_size": 0, "test_size": 0,
    "split_seed": 0, "flatten": False, "preprocess": "none", "n_components": 0, "eps": 1e-5,
}
# [data] preprocess = NAME for the image datasets: fitted on the training images, applied to the test images.
IMAGE_PREPROCESSING: dict[str, type] = {
    "mean_image": MeanImage,
    "channel": ChannelStandardizer,
    "pca": PCA,
    "zca": ZCA,
}
DATASETS: dict[str, dict[str, Any]] = {
    "mnist": _IMAGE_DATA,
    "fashion_mnist": _IMAGE_DATA,
    "kmnist": _IMAGE_DATA,
    "mnist1d": {},
    "spiral": {"n_per_class": 300, "n_classes": 3, "noise": 0.2, "test": 0.2},
    # UCI Adult: train on adult.data, test on adult.test; path "" searches GRADWISE_DATA and the cache.
    "adult": {
        "path": "", "download": False, "cat_names": list(ADULT_CAT_NAMES), "cont_names": list(ADULT_CONT_NAMES),
        "fill_missing": True, "normalize": True,
    },
    # Any CSV file with declared columns; test_path "" holds out `test` of the rows (stratified).
    "csv": {
        "path": None, "y_name": None, "cat_names": [], "cont_names": [], "test_path": "", "test": 0.2,
        "task": "classification", "names": [], "delimiter": ",", "na_values": list(NA_VALUES), "comment": "",
        "fill_missing": True, "normalize": True,
    },
    # MovieLens 100k (gradwise.data.movielens): path "" = $GRADWISE_DATA/ml-100k or the cache;
    # split "random" holds out valid_pct of u.data (seeded by `seed`) as the test set, or a canonical
    # split "ua", "ub", "u1".."u5" (<split>.base / <split>.test); items "title" merges the films listed
    # twice under two ids, as the fastai lesson does.
    "movielens": {"path": "", "split": "random", "valid_pct": 0.2, "seed": 0, "items": "id", "download": False,
                  "val": 0.0},
}
