"""Tabular data: a learner with one embedding per categorical column (fastai's tabular model).

``gw.tabular.tabular_learner(processor_or_columns, layers=[200, 100])`` builds the model from a
column description; `TabularLearner.fit` trains it on raw rows, `predict` labels new rows, and
`load_learner` reads one back from its folder or a ``gradwise train`` run directory. The loaders
and the preprocessing live in `gradwise.data` (`load_adult`, `load_csv`, `TabularProcessor`).
See ``docs/tabular.md``.
"""

from __future__ import annotations

from gradwise.data.tabular import Table
from gradwise.data.tabular_preprocessing import TabularProcessor
from gradwise.tabular.learner import MODEL_DEFAULTS
from gradwise.tabular.learner import TabularLearner
from gradwise.tabular.learner import load_learner
from gradwise.tabular.learner import model_from_config
from gradwise.tabular.learner import tabular_learner
from gradwise.tabular.model import Identity
from gradwise.tabular.model import NoFeatures
from gradwise.tabular.model import SplitColumns
from gradwise.tabular.model import emb_sz_rule
from gradwise.tabular.model import embedding_sizes
from gradwise.tabular.model import tabular_model
from gradwise.tabular.splits import encode_splits

__all__ = [
    "MODEL_DEFAULTS",
    "Identity",
    "NoFeatures",
    "SplitColumns",
    "Table",
    "TabularLearner",
    "TabularProcessor",
    "emb_sz_rule",
    "embedding_sizes",
    "encode_splits",
    "load_learner",
    "model_from_config",
    "tabular_learner",
    "tabular_model",
]
