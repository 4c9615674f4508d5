"""`gradwise.search(...)`: the search of `gradwise search`, from Python."""

from __future__ import annotations

import os
from collections.abc import Sequence

from gradwise.search.storage import GRACE_PERIOD
from gradwise.search.study import SearchResult, run_search

__all__ = ["search"]


def search(
    config: str | os.PathLike[str],
    *,
    trials: int,
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    refine: bool = False,
    out: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    grace_period: int = GRACE_PERIOD,
    verbose: bool = True,
) -> SearchResult:
    """Run or resume a hyperparameter search over the spaces of `config`'s ``[search]`` table.

    Each trial is a ``gradwise train`` run (same code path, same run directory layout) of the
    config with the trial's values put in; Optuna samples the values (random by default, TPE with
    ``sampler = "tpe"``), prunes bad trials from their per-epoch validation metric
    (``pruner = "median"`` or ``"halving"``) and stores the study. See ``docs/search.md``.

    Parameters
    ----------
    config : path-like
        A TOML training config with a ``[search]`` table.
    trials : int
        The number of finished (COMPLETE or PRUNED) trials the study should hold; a resumed study
        runs only the missing ones.
    workers : int
        Worker processes on this machine sharing the study.
    storage : str, optional
        An Optuna storage URL (``postgresql://user:pw@host/db``, ``sqlite:///path.db``); default
        ``sqlite:///OUT/studies.db``.
    study : str, optional
        The study's name; default the config's file name.
    refine : bool
        Narrow the ranges around the best trials of `study` into a new study ``<study>-fine``
        (created once; the same call again resumes it) and run that.
    out : path-like, optional
        The search directory (default ``searches``); the study's files go to ``OUT/<study>/``.
    overrides : sequence of str
        ``section.key=value`` assignments applied to the config first (``search.seed=1``).
    grace_period : int
        Seconds without a heartbeat after which a running trial counts as lost (its process was
        killed) and a copy of it is queued to run again.
    verbose : bool
        Print a line per trial and the results table.

    Returns
    -------
    SearchResult
        The study, the results rows, the best values and the path of ``best.toml``.

    Raises
    ------
    gradwise.cli.config.ConfigError
        A bad config or ``[search]`` table, an unreachable storage, or a study created with other
        spaces: before any trial runs.
    """
    from gradwise.cli.__main__ import cmd_train

    return run_search(
        config, trials=trials, train=cmd_train, workers=workers, storage=storage, study=study,
        refine=refine, out=out, overrides=overrides, grace_period=grace_period, verbose=verbose,
    )
