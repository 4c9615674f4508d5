"""One builder per `[model] learner`: the model table and the data's description -> a model.

``BUILDERS[name](body, meta, rng)`` returns the model. `body` is the validated ``[model]`` table
(its keys declared with their defaults in ``names.LEARNERS``); `meta` is what the dataset's loader
said of the data (`Splits.meta`: column cardinalities, numbers of users and items, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradwise.core import Layer



def _tabular(body: dict[str, Any], meta: dict[str, Any], rng: np.random.Generator) -> Layer:
    from gradwise.tabular import MODEL_DEFAULTS, model_from_config

    if "processor" not in meta:
        raise ValueError("needs a tabular dataset ([data] dataset = \"adult\" or \"csv\"): the data has no processor")
    return model_from_config(meta["processor"], {k: body[k] for k in MODEL_DEFAULTS}, rng)


def _collab(body: dict[str, Any], meta: dict[str, Any], rng: np.random.Generator) -> Layer:
    from gradwise.collab import EmbeddingDotBias, EmbeddingNN

    missing = [k for k in ("user_encoder", "item_encoder") if k not in meta]
    if missing:
        raise ValueError("needs a ratings dataset ([data] dataset = \"movielens\"): the data does not describe "
                         f"its users and items ({', '.join(missing)} missing)")
    y_range = tuple(body["y_range"]) or None
    users, items = meta["user_encoder"], meta["item_encoder"]
    if body["use_nn"]:
        layers = list(body["layers"]) or [body["n_factors"]]
        return EmbeddingNN(users, items, layers=layers, ps=body["ps"], embed_p=body["embed_p"],
                           use_bn=body["use_bn"], y_range=y_range, init_std=body["init_std"], rng=rng)
    if body["layers"] or body["ps"] or body["embed_p"]:
        raise ValueError("layers, ps and embed_p are keys of the neural variant: set use_nn = true")
    return EmbeddingDotBias(users, items, body["n_factors"], y_range, init_std=body["init_std"], rng=rng)


BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any], np.random.Generator], Layer]] = {
    "tabular": _tabular,
    "collab": _collab,
}
