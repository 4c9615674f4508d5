"""One search from start to report: read the config, open or create the study, run the workers.

Layout of a search directory (``--out``, ``searches/`` by default)::

    searches/
      studies.db                 the SQLite storage (unless --storage URL): every study of the directory
      <study>/                   one folder per study (the config's name, NAME-fine for --refine)
        trials/NNNN.toml         the config of trial NNNN; trials/NNNN/ its run directory, NNNN.log its output
        results.csv              every finished trial: state, value, parameters, test metric, run directory
        plots/history.png        the optimization history; plots/param_<name>.png, one per hyperparameter
        best.toml                the best trial's config, ready for `gradwise train`

Everything a user can get wrong (the config, the spaces, the storage, the study's past) is checked
before the directory is created or any trial runs, and raises `ConfigError` (exit 2 on the CLI).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradwise.cli.config import ConfigError
from gradwise.cli.config.parsing import read_toml
from gradwise.search import report
from gradwise.search.refine import refine_spaces
from gradwise.search.runner import Job, TrainFn, run_worker, worker_main
from gradwise.search.spaces import SearchSpec, Space, parse_search, spaces_from_toml, spaces_to_toml
from gradwise.search.storage import DB_NAME, GRACE_PERIOD, counts, default_url, open_storage, redact

if TYPE_CHECKING:
    import optuna

__all__ = ["DEFAULT_DIR", "SearchResult", "load_spec", "run_search"]

DEFAULT_DIR = "searches"
SPACES_ATTR = "gradwise:spaces"  # the study's spaces, as written in [search], stored with the study
REFINED_FROM_ATTR = "gradwise:refined_from"


@dataclass
class SearchResult:
    """What `gradwise.search` returns.

    Attributes
    ----------
    study : optuna.Study
        The study (open it in ``optuna-dashboard`` with `storage`).
    storage : str
        The storage URL (password hidden).
    directory : Path
        This study's folder: trials/, results.csv, plots/, best.toml.
    rows : list of dict
        One per finished trial (the rows of ``results.csv``).
    best_params : dict
        The best trial's values (empty if no trial completed).
    best_value : float or None
        Its validation metric.
    best_config : Path or None
        ``best.toml``.
    spaces : list of Space
        The spaces searched (narrowed ones for a refined study).
    """

    study: Any
    storage: str
    directory: Path
    rows: list[dict[str, Any]]
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    best_config: Path | None = None
    spaces: list[Space] = field(default_factory=list)


def load_spec(config: str | os.PathLike[str], overrides: Sequence[str] = ()) -> SearchSpec:
    """Read a search config (a training config with a ``[search]`` table), `overrides` applied first."""
    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    data = read_toml(path.read_text(encoding="utf-8"), str(path), tuple(overrides))
    return parse_search(data, str(path))


def _direction(study: optuna.Study) -> str:
    return study.direction.name.lower()


def _open_study(storage: Any, name: str, spec: SearchSpec, spaces: list[Space], refined_from: str | None) -> optuna.Study:
    """Load `name`, checking it searches `spaces` in `spec`'s direction; create it if it is new."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction=spec.direction)
            study.set_user_attr(SPACES_ATTR, spaces_to_toml(spaces))
            study.set_user_attr("gradwise:metric", spec.metric)
            if refined_from:
                study.set_user_attr(REFINED_FROM_ATTR, refined_from)
            return study
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
            study = optuna.load_study(study_name=name, storage=storage)
    if _direction(study) != spec.direction:
        raise ConfigError(f"study {name!r} is {_direction(study)}d, the config says {spec.direction}: give --study NEW")
    stored = study.user_attrs.get(SPACES_ATTR)
    if stored is not None and refined_from is None and stored != spaces_to_toml(spaces):
        raise ConfigError(
            f"study {name!r} was created with other spaces ({stored}); to search new ones give --study NEW_NAME"
        )
    return study


def _study_spaces(study: optuna.Study) -> list[Space]:
    stored = study.user_attrs.get(SPACES_ATTR)
    if stored is None:
        raise ConfigError(f"study {study.study_name!r} was not made by gradwise search: it has no stored spaces")
    return spaces_from_toml(stored, f"study {study.study_name!r}")


def _refined(storage: Any, source: str, target: str, spec: SearchSpec) -> tuple[optuna.Study, list[Space]]:
    """The refined study `target`: loaded if it exists, else created from `source`'s best trials."""
    import optuna

    try:
        study = optuna.load_study(study_name=target, storage=storage)
        return _open_study(storage, target, spec, _study_spaces(study), refined_from=source), _study_spaces(study)
    except KeyError:
        pass
    try:
        coarse = optuna.load_study(study_name=source, storage=storage)
    except KeyError:
        raise ConfigError(f"--refine: there is no study {source!r} to refine in this storage; run it first") from None
    best = report.ranked(coarse)[: spec.refine_top]
    if not best:
        raise ConfigError(f"--refine: study {source!r} has no completed trial to refine around")
    spaces = refine_spaces(_study_spaces(coarse), [t.params for t in best])
    return _open_study(storage, target, spec, spaces, refined_from=source), spaces


def run_search(
    config: str | os.PathLike[str],
    *,
    trials: int,
    train: TrainFn,
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    refine: bool = False,
    out: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    grace_period: int = GRACE_PERIOD,
    verbose: bool = True,
) -> SearchResult:
    """Run (or resume) a search; see `gradwise.search.search` for the arguments."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials {trials!r} must be an integer >= 1")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {workers!r} must be an integer >= 1")
    if isinstance(grace_period, bool) or not isinstance(grace_period, int) or grace_period < 2:
        raise ConfigError(f"--grace-period {grace_period!r} must be an integer >= 2 (seconds)")
    spec = load_spec(config, overrides)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # gradwise prints its own line per trial
    root = Path(out if out is not None else DEFAULT_DIR)
    if storage is None:
        if root.exists() and not root.is_dir():
            raise ConfigError(f"--out {str(root)!r} exists and is not a directory")
        url = default_url(root)
        root.mkdir(parents=True, exist_ok=True)  # the storage's folder: the first thing written
    else:
        url = storage
    heartbeat = max(1, grace_period // 6)
    store = open_storage(url, heartbeat_interval=heartbeat, grace_period=grace_period)
    name = study or Path(config).stem
    if refine:
        name, coarse_name = f"{name}-fine", name
        the_study, spaces = _refined(store, coarse_name, name, spec)
    else:
        the_study = _open_study(store, name, spec, spec.spaces, refined_from=None)
        spaces = spec.spaces
    from gradwise.viz._common import safe_name

    directory = root / safe_name(name)
    job = Job(spec=spec, directory=directory, storage=url, study=name, trials=trials,
              heartbeat_interval=heartbeat, grace_period=grace_period, verbose=verbose)
    n = counts(the_study)
    done = n.get("COMPLETE", 0) + n.get("PRUNED", 0)
    if verbose:
        where = str(root / DB_NAME) if storage is None else "the storage"
        print(f"gradwise search: study {name!r} in {where}: {done} of {trials} trials done"
              + (f", {n['RUNNING']} running" if n.get("RUNNING") else "")
              + f"; {workers} worker{'s' if workers > 1 else ''}", flush=True)
    directory.mkdir(parents=True, exist_ok=True)
    _run_workers(job, spaces, train, workers)
    return finish(job, the_study, spaces, verbose)


def _run_workers(job: Job, spaces: list[Space], train: TrainFn, workers: int) -> None:
    if workers == 1:
        run_worker(job, spaces, train)
        return
    import dataclasses
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding database connections
    procs = [
        ctx.Process(target=worker_main, args=(dataclasses.replace(job, worker=k, parent=os.getpid()), spaces, train))
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join()
        raise
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {workers} search workers failed (exit codes {failed}); see their output above")


def finish(job: Job, study: optuna.Study, spaces: list[Space], verbose: bool = True) -> SearchResult:
    """Write results.csv, the plots and best.toml of `study`; print the table."""
    spec = SearchSpec(**{**job.spec.__dict__, "spaces": spaces})
    rows = report.trial_rows(study, spaces, spec.metric)
    report.write_results(job.directory, rows)
    if rows:
        report.write_plots(job.directory, rows, spec)
    best_path = report.write_best(job.directory, study, spec, spaces)
    best = report.best_trial(study)
    if verbose:
        report.print_table(rows, spec, title=f"study {study.study_name!r}: {len(rows)} trials")
        if best is not None:
            print(f"gradwise search: best trial {best.number}: val {spec.metric} {best.value:.4f}; "
                  f"gradwise train {best_path}", flush=True)
        print(f"gradwise search: results in {job.directory}; browse with: optuna-dashboard {redact(job.storage)}", flush=True)
        sys.stdout.flush()
    return SearchResult(
        study=study,
        storage=redact(job.storage),
        directory=job.directory,
        rows=rows,
        best_params=dict(best.params) if best else {},
        best_value=float(best.value) if best else None,
        best_config=best_path,
        spaces=list(spaces),
    )
