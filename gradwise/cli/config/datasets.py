"""One loader per `[data] dataset`: the config's data table -> the arrays of one run.

`LOADERS[name](body, rng)` returns ``(x_train, y_train, x_test, y_test)`` or those and a `meta`
dict describing the data for a ``[model] learner`` (`Splits.meta`); `build.build_data`
then splits validation data off the training set and standardizes with training statistics
alone, the same way for every dataset. A dataset's own keys and their defaults are declared in
``names.DATASETS`` (so a misspelled key is caught before anything loads); its loader is here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = tuple[Any, Any, Any, Any]


def _mnist1d(body: dict[str, Any], rng: np.random.Generator) -> Arrays:
    from gradwise.data import load_mnist1d

    return load_mnist1d()


def _images(kind: str) -> Callable[[dict[str, Any], np.random.Generator], Arrays]:
    def load(body: dict[str, Any], rng: np.random.Generator) -> Arrays:
        from gradwise.cli.config.images import load_images

        return load_images(kind, body, rng)  # type: ignore[return-value]

    return load


def _spiral(body: dict[str, Any], rng: np.random.Generator) -> Arrays:
    from gradwise.data import make_spiral, train_test_split

    x, y = make_spiral(n_per_class=body["n_per_class"], n_classes=body["n_classes"], noise=body["noise"], rng=rng)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test=body["test"], stratify=y, rng=rng)
    return x_train, y_train, x_test, y_test


LOADERS: dict[str, Callable[[dict[str, Any], np.random.Generator], Arrays]] = {
    "mnist": _images("mnist"),
    "fashion_mnist": _images("fashion"),
    "kmnist": _images("kmnist"),
    "mnist1d": _mnist1d,
    "spiral": _spiral,
}
