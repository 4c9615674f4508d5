"""TOML configuration -> objects.

Three modules, in the order a run uses them:

- ``names.py``: the ONE explicit table from the names a config may use to the classes they build;
  nothing else in gradwise looks classes up by string.
- ``parsing.py``: TOML text -> a validated `Config`. Every key is validated against the signature
  of the class it configures, so a misspelled key is reported with the file, the section and the
  valid choices before anything is trained or written.
- ``build.py``: a `Config` -> the model, loss, penalty, schedule, optimizer, metrics and data.

Import everything from here (``from gradwise.cli import config``; ``config.parse(...)``).
"""

from gradwise.cli.config.build import (
    Splits,
    build_data,
    build_loss,
    build_metrics,
    build_model,
    build_optimizer,
    build_penalty,
    build_schedule,
    check_fit,
)
from gradwise.cli.config.names import (
    CONTAINERS,
    DATASETS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    PENALTIES,
    SCHEDULE_KEYS,
    SCHEDULES,
)
from gradwise.cli.config.parsing import (
    OPEN_SECTIONS,
    OPTIONAL_SECTIONS,
    SECTIONS,
    Config,
    ConfigError,
    default_config_text,
    load,
    load_or_default,
    parse,
    validate,
)

__all__ = [
    "CONTAINERS",
    "DATASETS",
    "LAYERS",
    "LOSSES",
    "METRICS",
    "OPEN_SECTIONS",
    "OPTIMIZERS",
    "OPTIONAL_SECTIONS",
    "PENALTIES",
    "SCHEDULES",
    "SCHEDULE_KEYS",
    "SECTIONS",
    "Config",
    "ConfigError",
    "Splits",
    "build_data",
    "build_loss",
    "build_metrics",
    "build_model",
    "build_optimizer",
    "build_penalty",
    "build_schedule",
    "check_fit",
    "default_config_text",
    "load",
    "load_or_default",
    "parse",
    "validate",
]
