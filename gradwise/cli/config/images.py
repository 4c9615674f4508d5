"""The `[data]` loader of the image datasets: ``dataset = "mnist"``, ``"fashion_mnist"``, ``"kmnist"``.

Keys (declared with their defaults in ``names.DATASETS``):

- ``path``: the folder holding the files; ``""`` looks in ``$GRADWISE_DATA/<folder>`` and the cache
  (`gradwise.data.sources.find_dataset`). ``download = true`` fetches missing files (official
  sources, SHA-256 checked).
- ``split = "standard"`` trains on the training file and tests on the test file;
  ``split = "test"`` reads only the test file and holds ``holdout`` of its images out as the test
  set (an int count, or a fraction in (0, 1)), stratified by class: with MNIST's 10,000 test images
  and ``holdout = 2000``, an 8,000/2,000 split.
- ``train_size``, ``test_size``: keep a stratified random subset of that many images (0: all).
- ``split_seed``: the seed of the holdout split and of the subsets, kept apart from ``[train] seed``
  so that every training seed sees the same held-out images.
- ``flatten = false`` gives ``(N, 1, 28, 28)`` float32 in [0, 1] (for ``Conv2d``); ``true`` gives
  ``(N, 784)``.
- ``preprocess``: ``"none"``, or a name of ``names.IMAGE_PREPROCESSING`` (``"mean_image"``,
  ``"channel"``, ``"pca"``, ``"zca"``), fitted on the training images alone: the loader splits
  ``[data] val`` off them first (stratified, with the run's generator, as `build_data` would) and
  returns it in ``meta["val"]``, so neither the validation nor the test images enter the fit; ``n_components`` (PCA; 0: all)
  and ``eps`` (PCA, ZCA) are its arguments. PCA gives vectors, so it needs ``flatten = true``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradwise.cli.config.names import IMAGE_PREPROCESSING
from gradwise.cli.config.parsing import ConfigError
from gradwise.data.images import CLASSES, images_to_float, load_mnist
from gradwise.data.splits import train_test_split
from gradwise.data.whitening import PCA, ZCA

SPLIT_MODES = ("standard", "test")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(body: dict[str, Any]) -> None:
    def bad(key: str, what: str) -> ConfigError:
        return ConfigError(f"[data] {key} = {body[key]!r}: {what}")

    if not isinstance(body["path"], str):
        raise bad("path", "must be a string (a folder), or \"\" to look in $GRADWISE_DATA and the cache")
    for key in ("download", "flatten"):
        if not isinstance(body[key], bool):
            raise bad(key, "must be true or false")
    if body["split"] not in SPLIT_MODES:
        raise bad("split", "must be \"standard\" (train file / test file) or \"test\" (split the test file)")
    holdout = body["holdout"]
    if body["split"] == "test":
        if not ((_is_int(holdout) and holdout > 0) or (isinstance(holdout, float) and 0 < holdout < 1)):
            raise bad("holdout", "with split = \"test\", the images to hold out: a count >= 1 or a fraction in (0, 1)")
    elif holdout != 0:
        raise bad("holdout", "applies to split = \"test\" only (the standard split tests on the test file)")
    for key in ("train_size", "test_size", "split_seed", "n_components"):
        if not _is_int(body[key]) or body[key] < 0:
            raise bad(key, "must be an int >= 0")
    if body["preprocess"] != "none" and body["preprocess"] not in IMAGE_PREPROCESSING:
        raise bad("preprocess", f"must be \"none\" or one of {', '.join(sorted(IMAGE_PREPROCESSING))}")
    if body["preprocess"] == "pca" and not body["flatten"]:
        raise bad("preprocess", "PCA turns images into vectors of components: it needs flatten = true")
    if body["n_components"] and body["preprocess"] != "pca":
        raise bad("n_components", "is an argument of preprocess = \"pca\" only")


def _subset(x: np.ndarray, y: np.ndarray, size: int, key: str, rng: np.random.Generator) -> tuple[Any, Any]:
    if size == 0 or size == len(y):
        return x, y
    if size > len(y):
        raise ConfigError(f"[data] {key} = {size}: there are only {len(y)} images to take it from")
    _, x_keep, _, y_keep = train_test_split(x, y, test=size, stratify=y, rng=rng)
    return x_keep, y_keep


def _preprocessor(body: dict[str, Any]) -> Any:
    cls = IMAGE_PREPROCESSING[body["preprocess"]]
    if cls is PCA:
        return PCA(n_components=body["n_components"] or None, eps=body["eps"])
    if cls is ZCA:
        return ZCA(eps=body["eps"])
    return cls()


def load_images(kind: str, body: dict[str, Any], rng: np.random.Generator) -> tuple[Any, ...]:
    """``(x_train, y_train, x_test, y_test, meta)`` for ``[data] dataset`` of `kind` (``"mnist"``, ...).

    `meta` holds ``classes`` (the class names), ``input_shape`` and, with ``preprocess``, the
    fitted transform (``preprocessing``) and its ``preprocessing_state`` (a dict of arrays).
    ``meta["val"]`` is the validation split (``[data] val``), made with `rng`; the holdout and the
    subsets come from ``split_seed``.
    """
    _check(body)
    split_rng = np.random.default_rng(body["split_seed"])
    path = body["path"] or None
    if body["split"] == "test":
        x, y = load_mnist(path, kind=kind, split="test", download=body["download"])
        try:
            x_train, x_test, y_train, y_test = train_test_split(x, y, test=body["holdout"], stratify=y, rng=split_rng)
        except ValueError as e:
            raise ConfigError(f"[data] holdout = {body['holdout']!r}: {e}") from None
    else:
        x_train, y_train = load_mnist(path, kind=kind, split="train", download=body["download"])
        x_test, y_test = load_mnist(path, kind=kind, split="test", download=body["download"])
    x_train, y_train = _subset(x_train, y_train, body["train_size"], "train_size", split_rng)
    x_test, y_test = _subset(x_test, y_test, body["test_size"], "test_size", split_rng)
    # Preprocessing sees (N, 1, H, W) images (one channel for "channel"); flattening comes after.
    x_train, x_test = images_to_float(x_train), images_to_float(x_test)
    meta: dict[str, Any] = {"classes": list(CLASSES[kind])}
    if body["val"]:  # split here, before any fit: the validation images must not shape the preprocessing
        x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test=body["val"], stratify=y_train, rng=rng)
    else:
        x_val, y_val = x_train[:0], y_train[:0]
    if body["preprocess"] != "none":
        try:
            pre = _preprocessor(body)
            x_train = pre.fit_transform(x_train)  # training images only
        except ValueError as e:
            raise ConfigError(f"[data] preprocess = {body['preprocess']!r}: {e}") from None
        x_test = pre.transform(x_test)
        x_val = pre.transform(x_val) if len(x_val) else x_val
        meta.update(preprocessing=pre, preprocessing_state=pre.state_dict())
    if body["flatten"]:
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
        x_val = x_val.reshape(len(x_val), *x_train.shape[1:])
    meta["val"] = (x_val, y_val)
    meta["input_shape"] = tuple(x_train.shape[1:])
    return x_train, y_train, x_test, y_test, meta
