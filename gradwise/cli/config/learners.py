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


BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any], np.random.Generator], Layer]] = {
    "tabular": _tabular,
}
