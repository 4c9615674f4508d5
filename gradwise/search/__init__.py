"""Hyperparameter search on Optuna: random on log scales, TPE, pruning, coarse to fine, resumable.

``gradwise.search(config, trials=N)`` (also ``gradwise search CONFIG --trials N``) trains one run
per trial over the spaces of a config's ``[search]`` table (`gradwise.search.spaces`), in a study
stored in SQLite or any Optuna storage (`gradwise.search.storage`), run by one or many worker
processes (`gradwise.search.runner`), and writes a results table, plots and ``best.toml``
(`gradwise.search.report`). See ``docs/search.md``.

Modules: `spaces` (the ``[search]`` table), `refine` (coarse to fine), `storage`, `runner` (the
objective and the worker loop), `report`, `study` (one search from start to end), `cli`, `api`.

The package is callable: ``gradwise.search`` is this module once it is imported (Python binds a
subpackage to its parent's attribute), so calling it calls `search`, and ``gw.search(...)`` works
whether or not ``gradwise.search`` was imported before.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from gradwise.search.api import search
from gradwise.search.refine import refine_spaces
from gradwise.search.spaces import KINDS, SearchSpec, Space, parse_search
from gradwise.search.study import SearchResult, load_spec

__all__ = ["KINDS", "SearchResult", "SearchSpec", "Space", "load_spec", "parse_search", "refine_spaces", "search"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> SearchResult:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
