"""Diagnostics: gradient checks, training-health measurements and verdicts, and `diagnose`.

- `gradcheck`: numerical gradients, `check_layer`, `check_model`;
- `health`: what is measured while a network trains (`update_ratios`, `dead_fraction`,
  `saturated_fraction`, `grad_norms`, `ActivationProbe`);
- `checks` and `readings`: the verdicts (`Check`: ok / warning / problem, with advice);
- `report`: `Diagnosis`, the result of `diagnose`;
- `protocol`: `diagnose`, the babysitting protocol run step by step.

`diagnose` trains (it needs the `Trainer`), so `gradwise.diagnostics.protocol` sits on the training
floor; it is imported on first use of ``gradwise.diagnostics.diagnose``, which keeps
``import gradwise.diagnostics`` light and free of cycles (``docs/design.md``, "Layering").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradwise.diagnostics.checks import Check, Thresholds
from gradwise.diagnostics.gradcheck import GradCheckReport
from gradwise.diagnostics.gradcheck import check_layer
from gradwise.diagnostics.gradcheck import check_model
from gradwise.diagnostics.gradcheck import numerical_gradient
from gradwise.diagnostics.gradcheck import rel_error
from gradwise.diagnostics.health import ActivationProbe
from gradwise.diagnostics.health import dead_fraction
from gradwise.diagnostics.health import grad_norms
from gradwise.diagnostics.health import saturated_fraction
from gradwise.diagnostics.health import update_ratios
from gradwise.diagnostics.report import Diagnosis

if TYPE_CHECKING:
    from gradwise.diagnostics.protocol import diagnose

__all__ = [
    "ActivationProbe",
    "Check",
    "Diagnosis",
    "GradCheckReport",
    "Thresholds",
    "check_layer",
    "check_model",
    "dead_fraction",
    "diagnose",
    "grad_norms",
    "numerical_gradient",
    "rel_error",
    "saturated_fraction",
    "update_ratios",
]


def __getattr__(name: str) -> Any:
    # `diagnose` needs the Trainer (floor 3): loaded on first use, not by `import gradwise.diagnostics`.
    if name == "diagnose":
        from gradwise.diagnostics.protocol import diagnose

        globals()["diagnose"] = diagnose
        return diagnose
    raise AttributeError(f"module 'gradwise.diagnostics' has no attribute {name!r}")
