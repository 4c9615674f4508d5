"""Where a study lives: an Optuna RDB storage (SQLite by default, PostgreSQL across machines).

Trials left RUNNING by a process that was killed (SIGKILL, a lost machine) are found by Optuna's
heartbeat: every running trial records a heartbeat each `HEARTBEAT_INTERVAL` seconds, and a trial
silent for longer than the grace period is marked FAIL by the next worker that looks
(``optuna.storages.fail_stale_trials``), which also queues a copy of it (same parameters, state
WAITING, `RetryHeartbeatStaleTrialCallback`) for the next free worker. Only COMPLETE and PRUNED
trials count toward the number asked for, so a lost trial is run again and none is counted twice.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradwise.cli.config import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DB_NAME",
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "counts",
    "default_url",
    "open_storage",
    "redact",
]

DB_NAME = "studies.db"
HEARTBEAT_INTERVAL = 5  # seconds between the heartbeats of a running trial
GRACE_PERIOD = 30  # seconds without a heartbeat after which a running trial counts as lost
CREATE_ATTEMPTS = 5
_CREATE_RACE = ("UniqueViolation", "DuplicateTable", "already exists", "duplicate key")


def default_url(directory: str | Path) -> str:
    """The SQLite file of a search directory, as a storage URL."""
    return f"sqlite:///{Path(directory).resolve() / DB_NAME}"


def redact(url: str) -> str:
    """`url` with any password replaced by ``***``, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several worker processes write to one file: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {"pool_pre_ping": True}


def open_storage(url: str, *, heartbeat_interval: int = HEARTBEAT_INTERVAL, grace_period: int = GRACE_PERIOD) -> optuna.storages.RDBStorage:
    """Connect to the storage at `url` (any SQLAlchemy URL Optuna's RDB storage takes).

    Raises
    ------
    ConfigError
        The URL is malformed, its driver is missing, or the database cannot be reached; the
        message names the URL (password hidden) and the reason on one line.
    """
    import optuna

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        parent = Path(url.removeprefix("sqlite:///")).parent
        if not parent.is_dir():
            raise ConfigError(f"--storage {url}: cannot open the study storage: directory {str(parent)!r} does not exist")
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback
    for attempt in range(CREATE_ATTEMPTS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=retry(max_retry=3),
                )
            except Exception as e:  # sqlalchemy's OperationalError, ArgumentError, a missing driver...
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                # Workers starting together on an empty PostgreSQL database race to create Optuna's
                # tables; the losers see a duplicate type or table. The tables exist now: try again.
                if attempt + 1 < CREATE_ATTEMPTS and any(m in reason for m in _CREATE_RACE):
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise ConfigError(f"--storage {redact(url)}: cannot open the study storage: {reason}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def counts(study: optuna.Study) -> dict[str, int]:
    """How many trials of `study` are in each state (``COMPLETE``, ``PRUNED``, ``RUNNING``, ...)."""
    found: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        found[t.state.name] = found.get(t.state.name, 0) + 1
    return found
