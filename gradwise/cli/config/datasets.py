"""One loader per `[data] dataset`: the config's data table -> the arrays of one run.

`LOADERS[name](body, rng)` returns ``(x_train, y_train, x_test, y_test)`` or those and a `meta`
dict describing the data for a ``[model] learner`` (`Splits.meta`); `build.build_data`
then splits validation data off the training set and standardizes with training statistics
alone, the same way for every dataset. A dataset's own keys and their defaults are declared in
``names.DATASETS`` (so a misspelled key is caught before anything loads); its loader is here.

A loader whose inputs are several arrays returns x as a tuple (tabular: ``(x_cat, x_cont)``). A
loader that must fit preprocessing on the training rows alone splits validation off itself and
returns it as ``meta["val"] = (x_val, y_val)``; ``meta["files"]`` (file name -> JSON-able value)
is written into the run directory (the fitted tabular processor as ``processor.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = tuple[Any, ...]


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


def _tabular(processor: Any, train: Any, test: Any, body: dict[str, Any], rng: np.random.Generator) -> tuple[Any, ...]:
    """Encode tabular rows; the processor is fitted on the training rows left after the validation
    split, which is returned in meta["val"] (build_data does not split again)."""
    from gradwise.tabular import encode_splits

    parts = encode_splits(processor, train, test, val=body["val"], rng=rng)
    meta = {
        "cardinalities": processor.cardinalities,
        "cat_names": processor.all_cat_names,
        "cont_names": list(processor.cont_names),
        "n_classes": processor.n_classes,
        "processor": processor,
        "files": {"processor.json": processor.to_dict()},  # saved in the run directory
        "val": (parts["x_val"], parts["y_val"]),
    }
    return parts["x_train"], parts["y_train"], parts["x_test"], parts["y_test"], meta


def _processor(body: dict[str, Any], y_name: str, task: str = "classification") -> Any:
    from gradwise.data import TabularProcessor

    return TabularProcessor(
        body["cat_names"], body["cont_names"], y_name, task=task,
        fill_missing=body["fill_missing"], normalize=body["normalize"],
    )  # fmt: skip


def _adult(body: dict[str, Any], rng: np.random.Generator) -> tuple[Any, ...]:
    from gradwise.data.adult import ADULT_TARGET, load_adult

    train, test = load_adult(
        body["path"] or None, cat_names=body["cat_names"], cont_names=body["cont_names"], download=body["download"]
    )
    return _tabular(_processor(body, ADULT_TARGET), train, test, body, rng)


def _csv(body: dict[str, Any], rng: np.random.Generator) -> tuple[Any, ...]:
    from gradwise.data import load_csv, train_test_split

    def read(path: str) -> Any:
        return load_csv(
            path, body["cat_names"], body["cont_names"], body["y_name"], names=body["names"] or None,
            delimiter=body["delimiter"], na_values=body["na_values"], comment=body["comment"] or None,
        )  # fmt: skip

    table = read(body["path"])
    if body["test_path"]:
        train, test = table, read(body["test_path"])
    else:
        strat = table[body["y_name"]] if body["task"] == "classification" else None
        idx_train, idx_test = train_test_split(
            np.arange(len(table)), test=body["test"], stratify=None if strat is None else strat.astype(str), rng=rng
        )
        train, test = table.take(idx_train), table.take(idx_test)
    return _tabular(_processor(body, body["y_name"], body["task"]), train, test, body, rng)
def _movielens(body: dict[str, Any], rng: np.random.Generator) -> tuple[Any, ...]:
    from gradwise.collab.data import movielens_collab

    data = movielens_collab(body["path"] or None, body["split"], body["valid_pct"], body["seed"],
                            items=body["items"], download=body["download"])
    return data.x_train, data.y_train, data.x_test, data.y_test, data.meta()


LOADERS: dict[str, Callable[[dict[str, Any], np.random.Generator], Arrays]] = {
    "mnist": _images("mnist"),
    "fashion_mnist": _images("fashion"),
    "kmnist": _images("kmnist"),
    "mnist1d": _mnist1d,
    "spiral": _spiral,
    "adult": _adult,
    "csv": _csv,
    "movielens": _movielens,
}
