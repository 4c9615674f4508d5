"""`Diagnosis`: what `gradwise.diagnostics.diagnose` found, step by step, as a table, Markdown or JSON.

The data only: the verdicts (`Check`), the measurements the plots are drawn from, and the facts of
the run (sizes, timings). ``gradwise diagnose`` prints `table`, and writes `to_markdown` and
`to_json` as ``report.md`` and ``report.json`` (`gradwise.viz.plot_diagnosis` draws `data`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any


from gradwise.diagnostics.checks import OK, PROBLEM, WARNING, Check, worst
from gradwise.fileio import jsonable

if TYPE_CHECKING:
    from rich.table import Table

    from gradwise.optim.lr_curve import LRFinderResult

__all__ = ["Diagnosis", "jsonable"]

_MARK = {OK: "ok", WARNING: "WARNING", PROBLEM: "PROBLEM"}
_STYLE = {OK: "green", WARNING: "yellow", PROBLEM: "bold red"}


@dataclass
class Diagnosis:
    """The result of `gradwise.diagnostics.diagnose`.

    Attributes
    ----------
    checks : list of Check
        One per step, in the order run.
    info : dict
        Facts of the run: samples per split, parameters, the configured learning rate, the
        seconds each step took, the budgets.
    data : dict
        What the plots are drawn from: ``"babysit"`` (the short training's measurements, one row
        per measurement, as the `Babysitter` records them), ``"activations"`` (``{"first": ...,
        "last": ...}``: per layer the `ActivationSummary` at the first and last measurement),
        ``"losses"`` (every batch loss of the short training).
    lr_sweep : LRFinderResult or None
        The learning-rate sweep (None if it could not run).
    run_dir : Path or None
        Where the report was written.
    """

    checks: list[Check] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    lr_sweep: LRFinderResult | None = None
    run_dir: Path | None = None

    @property
    def verdict(self) -> str:
        """The gravest verdict of all steps."""
        return worst([c.verdict for c in self.checks])

    @property
    def ok(self) -> bool:
        """True when no step is a problem (warnings allowed)."""
        return self.verdict != PROBLEM

    @property
    def exit_code(self) -> int:
        """0 when nothing is a problem, 1 when something is (``gradwise diagnose`` exits with it)."""
        return 0 if self.ok else 1

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == PROBLEM]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == WARNING]

    def __getitem__(self, step: str) -> Check:
        for c in self.checks:
            if c.step == step:
                return c
        raise KeyError(f"no step {step!r} in this diagnosis; steps: {[c.step for c in self.checks]}")

    def __contains__(self, step: object) -> bool:
        return any(c.step == step for c in self.checks)

    # ------------------------------------------------------------------ renderings
    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON types (``report.json``)."""
        return jsonable({
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "checks": [c.to_dict() for c in self.checks],
            "info": self.info,
            "lr_sweep": None if self.lr_sweep is None else {
                "lrs": self.lr_sweep.lrs, "losses": self.lr_sweep.losses, "smoothed": self.lr_sweep.smoothed,
                "suggestion": self.lr_sweep.suggestion, "divergence": self.lr_sweep.divergence,
                "divergence_lr": self.lr_sweep.divergence_lr,
            },
        })

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    def to_markdown(self, plots: list[str] | None = None) -> str:
        """The report as Markdown (``report.md``): the table of steps, then the plots."""
        lines = [
            "# gradwise diagnose",
            "",
            f"Verdict: **{self.verdict}** ({len(self.problems)} problem(s), {len(self.warnings)} warning(s)).",
            "",
        ]
        facts = {k: v for k, v in self.info.items() if not isinstance(v, (dict, list))}
        if facts:
            lines += [", ".join(f"{k}: {_fmt(v)}" for k, v in facts.items()), ""]
        lines += ["| # | step | verdict | measured | advice |", "|---|---|---|---|---|"]
        for i, c in enumerate(self.checks, 1):
            where = f" (**{c.where}**)" if c.where else ""
            lines.append(f"| {i} | {c.step}{where} | {_MARK[c.verdict]} | {_md(c.summary)} | {_md(c.advice)} |")
        if plots:
            lines += ["", "## Plots", ""]
            lines += [f"![{Path(p).stem}]({p})" for p in plots]
        return "\n".join(lines) + "\n"

    def table(self) -> Table:
        """The steps as a rich `Table` (``gradwise diagnose`` prints it)."""
        from rich.table import Table

        t = Table(title=f"gradwise diagnose: {self.verdict}", show_lines=True)
        t.add_column("#", justify="right")
        t.add_column("step")
        t.add_column("verdict")
        t.add_column("measured", overflow="fold")
        t.add_column("advice", overflow="fold")
        for i, c in enumerate(self.checks, 1):
            step = c.step if not c.where else f"{c.step}\n[{c.where}]"
            t.add_row(str(i), step, f"[{_STYLE[c.verdict]}]{_MARK[c.verdict]}[/]", c.summary, c.advice)
        return t

    def __str__(self) -> str:
        return "\n".join(str(c) for c in self.checks)

    def __repr__(self) -> str:
        return f"Diagnosis(verdict={self.verdict!r}, steps={len(self.checks)}, problems={[c.step for c in self.problems]})"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
