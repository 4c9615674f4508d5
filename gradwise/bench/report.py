"""The suite's results: one `CaseResult` per case, its targets, the text report and the JSON file.

Pure Python (no NumPy): the runner formats the workers' JSON in the parent process.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from gradwise.bench.timing import median, ratio

_OPS = {"<=": lambda v, t: v <= t, "<": lambda v, t: v < t, ">=": lambda v, t: v >= t}


@dataclass
class Target:
    """A goal printed next to a case: `metric op threshold`, e.g. ratio <= 0.7.

    `metric` is "ratio" (gradwise / peer), "gradwise" (the gradwise headline value, in the case's
    unit) or a key of the case's `extra` values.
    """

    metric: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"Target: op={self.op!r} must be one of {sorted(_OPS)}")

    def label(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def met(self, value: float | None) -> bool | None:
        """True/False, or None when the value could not be measured (e.g. no peer installed)."""
        if value is None or not math.isfinite(value):
            return None
        return bool(_OPS[self.op](value, self.threshold))


@dataclass
class CaseResult:
    """What one case measured.

    `rows` maps a candidate's label to its timed runs (in `unit`, already per epoch / per step /
    per call), `busy` to the matching disturbed-run flags. `ours` and `peer` name the two rows
    whose medians make the case's ratio; `peer` is None when the peer library is missing
    (`peer_missing` says why) and the case then reports gradwise alone.
    """

    name: str
    title: str
    unit: str
    rows: dict[str, list[float]] = field(default_factory=dict)
    busy: dict[str, list[bool]] = field(default_factory=dict)
    ours: str | None = None
    peer: str | None = None
    peer_missing: str | None = None
    targets: list[Target] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    phases_of: str = ""
    notes: list[str] = field(default_factory=list)

    def add_row(self, label: str, values: list[float], busy: list[bool] | None = None) -> None:
        if not values:
            raise ValueError(f"{self.name}: row {label!r} has no runs")
        self.rows[label] = [float(v) for v in values]
        self.busy[label] = list(busy) if busy is not None else [False] * len(values)

    def median_of(self, label: str | None) -> float | None:
        if label is None or label not in self.rows:
            return None
        return median(self.rows[label])

    @property
    def ratio(self) -> float | None:
        return ratio(self.median_of(self.ours), self.median_of(self.peer))

    @property
    def paired_ratio(self) -> float | None:
        """The median over rounds of ours / peer within each round (the rows are timed round-robin,
        so run i of every row belongs to round i); None without a peer or with unequal rows.

        Next to `ratio` (the ratio of the medians, the suite's headline): on a host whose speed
        changes for seconds at a time, a slow spell slows both runs of a round, and pairing
        cancels it where the ratio of medians may take one library's median from a fast spell
        and the other's from a slow one.
        """
        if self.ours not in self.rows or self.peer not in self.rows:
            return None
        ours, peer = self.rows[self.ours], self.rows[self.peer]
        if len(ours) != len(peer):
            return None
        pairs = [a / b for a, b in zip(ours, peer) if b > 0]
        return median(pairs) if pairs else None

    def metric(self, name: str) -> float | None:
        if name == "ratio":
            return self.ratio
        if name == "gradwise":
            return self.median_of(self.ours)
        return self.extra.get(name)

    def checks(self) -> list[tuple[Target, float | None, bool | None]]:
        return [(t, self.metric(t.metric), t.met(self.metric(t.metric))) for t in self.targets]

    @property
    def any_busy(self) -> bool:
        return any(any(flags) for flags in self.busy.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["medians"] = {label: self.median_of(label) for label in self.rows}
        out["ratio"] = self.ratio
        out["paired_ratio"] = self.paired_ratio
        out["checks"] = [
            {"target": t.label(), "value": v, "met": m} for t, v, m in self.checks()
        ]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        keys = {f for f in cls.__dataclass_fields__}
        body = {k: v for k, v in data.items() if k in keys}
        body["targets"] = [Target(**t) for t in body.get("targets", [])]
        return cls(**body)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:.3g}"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[met]


def format_case(result: CaseResult) -> list[str]:
    """The detail block of one case: every row, the ratio, the targets, the breakdown, the notes."""
    lines = [f"== {result.name}: {result.title}"]
    if result.rows:
        width = max(len(label) for label in result.rows)
        lines.append(f"   {'candidate':<{width}}  {'median':>9}  {'min':>9}  runs ({result.unit}; * = machine busy)")
        for label, values in result.rows.items():
            marks = " ".join(f"{_fmt(v)}{'*' if b else ''}" for v, b in zip(values, result.busy[label]))
            lines.append(f"   {label:<{width}}  {_fmt(median(values)):>9}  {_fmt(min(values)):>9}  {marks}")
    if result.peer is not None and result.ratio is not None:
        lines.append(f"   ratio {result.ours} / {result.peer}: {_fmt(result.ratio)}  (< 1: gradwise is faster)")
        if result.paired_ratio is not None:
            lines.append(f"   paired ratio (median of the per-round ratios): {_fmt(result.paired_ratio)}")
    elif result.peer_missing:
        lines.append(f"   gradwise alone: {result.peer_missing}")
    for key, value in result.extra.items():
        lines.append(f"   {key}: {value:.4g}")
    for target, value, met in result.checks():
        lines.append(f"   target {target.label()}: {_fmt(value)} -> {verdict(met)}")
    if result.phases:
        total = sum(result.phases.values())
        lines.append(f"   where the time goes ({result.phases_of}, {total:.3f} s):")
        for phase, sec in sorted(result.phases.items(), key=lambda kv: -kv[1]):
            share = 100 * sec / total if total > 0 else 0.0
            lines.append(f"     {phase:<40} {sec:8.4f} s  {share:5.1f} %")
    if result.any_busy:
        lines.append("   * other processes used more than 10 % of the CPUs during that run; rerun on a quiet machine")
    lines.extend(f"   note: {note}" for note in result.notes)
    return lines


def summary_rows(results: list[CaseResult]) -> list[tuple[str, ...]]:
    """(case, unit, gradwise, peer, ratio, paired, target, value, verdict) per target (one row per
    case without)."""
    rows = []
    for r in results:
        peer = _fmt(r.median_of(r.peer)) if r.peer else "-"
        base = (r.name, r.unit, _fmt(r.median_of(r.ours)), peer, _fmt(r.ratio), _fmt(r.paired_ratio))
        checks = r.checks()
        if not checks:
            rows.append((*base, "-", "-", "-"))
        for i, (t, v, m) in enumerate(checks):
            rows.append((*(base if i == 0 else ("",) * len(base)), t.label(), _fmt(v), verdict(m)))
    return rows


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(header, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(f"{c:<{w}}" for c, w in zip(row, widths)) for row in rows]
    return out


SUMMARY_HEADER = ("case", "unit", "gradwise", "peer", "ratio", "paired", "target", "value", "verdict")


def format_summary(results: list[CaseResult]) -> list[str]:
    return format_table(SUMMARY_HEADER, summary_rows(results))


def format_comparison(columns: dict[str, list[CaseResult]]) -> list[str]:
    """Ratios (or the gradwise value where a case has no peer) side by side, one column per environment."""
    labels = list(columns)
    names: list[str] = []
    for results in columns.values():
        names += [r.name for r in results if r.name not in names]
    rows = []
    for name in names:
        cells = []
        for label in labels:
            r = next((c for c in columns[label] if c.name == name), None)
            if r is None:
                cells.append("-")
            elif r.ratio is not None:
                cells.append(f"ratio {r.ratio:.2f}")
            else:
                cells.append(f"{_fmt(r.median_of(r.ours))} {r.unit}")
        rows.append((name, *cells))
    return format_table(("case", *labels), rows)
