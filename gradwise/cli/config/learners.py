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

BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any], np.random.Generator], Layer]] = {}
