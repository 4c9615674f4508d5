"""`Diagnosis` (`gradwise/diagnostics/report.py`): verdict, exit code, table, Markdown and JSON."""

from __future__ import annotations

import json
import math

import pytest

from gradwise.diagnostics.checks import Check, worst
from gradwise.diagnostics.report import Diagnosis


def test_a_diagnosis_renders_as_table_markdown_and_json() -> None:
    d = Diagnosis(checks=[
        Check("initial loss", "ok", "2.3 vs ln(10)", "Fine."),
        Check("dead ReLUs", "problem", "90% | dead", "Lower the lr.", "1", {"x": math.nan}),
        Check("bias/variance", "warning", "high bias", "Bigger network."),
    ], info={"train_samples": 10, "seconds": {"a": 1.0}})
    assert d.verdict == "problem" and d.exit_code == 1 and [c.step for c in d.problems] == ["dead ReLUs"]
    assert d["dead ReLUs"].where == "1" and "dead ReLUs" in d
    with pytest.raises(KeyError, match="no step"):
        d["nope"]
    md = d.to_markdown(["plots/a.png"])
    assert "| 2 | dead ReLUs (**1**) | PROBLEM | 90% \\| dead | Lower the lr. |" in md and "![a](plots/a.png)" in md
    doc = json.loads(d.json_text())  # strict JSON: NaN became null
    assert doc["checks"][1]["numbers"]["x"] is None and doc["exit_code"] == 1
    assert d.table().row_count == 3
    assert worst(["ok", "warning"]) == "warning" and worst([]) == "ok"
    with pytest.raises(ValueError, match="verdict"):
        Check("x", "bad", "", "")
