"""Diagnostics: gradient checks (and, later, sanity checks and the bias/variance report)."""

from gradwise.diagnostics.gradcheck import GradCheckReport
from gradwise.diagnostics.gradcheck import check_layer
from gradwise.diagnostics.gradcheck import check_model
from gradwise.diagnostics.gradcheck import numerical_gradient
from gradwise.diagnostics.gradcheck import rel_error

__all__ = ["GradCheckReport", "check_layer", "check_model", "numerical_gradient", "rel_error"]
