"""Two runs side by side (`perfdoctor diff A B`): step-time statistics and breakdown, the operators
that got slower or faster, and the findings that appeared, went away or changed.

The comparison is built once as a ReportDiff and then printed (a compact table), written as JSON,
or rendered as `diff.html` from reports/templates/diff.html.j2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .reportfile import LoadedReport

PHASES = ("dataloader", "forward", "backward", "optimizer", "other")  # as report.json's breakdown
STEP_STATS = (("p50", "median"), ("mean", "mean"), ("p95", "p95"), ("min", "min"), ("max", "max"))
TOP_OPERATORS = 10  # per direction
DIFF_SCHEMA = "perfdoctor.diff/1"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class Change:
    """One quantity in A and B; None where a run did not measure it."""

    label: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def relative(self) -> float | None:
        return None if self.delta is None or not self.a else self.delta / self.a

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "a": self.a, "b": self.b, "change": _round(self.delta), "relative": _round(self.relative)}


@dataclass(frozen=True)
class PhaseChange:
    phase: str
    share: Change  # fraction of step time
    ms: Change  # mean ms per step

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "share": self.share.to_json(), "ms": self.ms.to_json()}


@dataclass(frozen=True)
class FindingChange:
    id: str
    kind: str  # appeared | gone | changed
    title: str
    severity_a: str | None
    severity_b: str | None
    saving_a: float | None
    saving_b: float | None


@dataclass(frozen=True)
class RunSide:
    path: str
    name: str
    status: str | None
    steps: int | None
    measured: int | None
    profiled: int | None


@dataclass
class ReportDiff:
    a: RunSide
    b: RunSide
    step_time: list[Change] = field(default_factory=list)  # ms
    breakdown: list[PhaseChange] = field(default_factory=list)
    slower_operators: list[Change] = field(default_factory=list)  # self ms per profiled step
    faster_operators: list[Change] = field(default_factory=list)
    operators_only_in_a: list[str] = field(default_factory=list)
    operators_only_in_b: list[str] = field(default_factory=list)
    operators_compared: bool = False  # both runs have operator statistics
    findings: list[FindingChange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": DIFF_SCHEMA,
            "a": asdict(self.a),
            "b": asdict(self.b),
            "step_time_ms": [change.to_json() for change in self.step_time],
            "breakdown": [phase.to_json() for phase in self.breakdown],
            "operators": {
                "compared": self.operators_compared,
                "unit": "self ms per profiled step",
                "slower": [change.to_json() for change in self.slower_operators],
                "faster": [change.to_json() for change in self.faster_operators],
                "only_in_a": self.operators_only_in_a,
                "only_in_b": self.operators_only_in_b,
            },
            "findings": [asdict(finding) for finding in self.findings],
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# --- building the diff ----------------------------------------------------------------------------


def _side(report: LoadedReport) -> RunSide:
    run, steps = report.section("run"), report.section("steps")
    subject = run.get("script") or run.get("module") or report.run_dir.name
    return RunSide(
        path=str(report.path),
        name=str(subject).replace("\\", "/").split("/")[-1],
        status=run.get("status") if isinstance(run.get("status"), str) else None,
        steps=steps.get("count") if isinstance(steps.get("count"), int) else None,
        measured=steps.get("measured") if isinstance(steps.get("measured"), int) else None,
        profiled=steps.get("profiled") if isinstance(steps.get("profiled"), int) else None,
    )


def _mapping(section: dict[str, Any], key: str) -> dict[str, Any]:
    value = section.get(key)
    return value if isinstance(value, dict) else {}


def _operators_per_step(report: LoadedReport) -> dict[str, float] | None:
    """Self ms per profiled step of each top operator (the report sums them over the profiled
    steps, and two runs may profile different numbers of steps)."""
    operators = report.section("operators")
    top = operators.get("top")
    if not isinstance(top, list) or not top:
        return None
    profiled = report.section("steps").get("profiled")
    per = profiled if isinstance(profiled, int) and profiled > 0 else 1
    found: dict[str, float] = {}
    for op in top:
        if isinstance(op, dict) and isinstance(op.get("name"), str) and _number(op.get("self_ms")) is not None:
            found[op["name"]] = found.get(op["name"], 0.0) + op["self_ms"] / per
    return found


def _findings(report: LoadedReport) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for finding in report.data.get("findings") or []:
        if isinstance(finding, dict) and isinstance(finding.get("id"), str):
            found.setdefault(finding["id"], finding)
    return found


def build_diff(a: LoadedReport, b: LoadedReport) -> ReportDiff:
    diff = ReportDiff(a=_side(a), b=_side(b))
    steps_a, steps_b = a.section("steps"), b.section("steps")
    time_a, time_b = _mapping(steps_a, "time_ms"), _mapping(steps_b, "time_ms")
    diff.step_time = [Change(label, _number(time_a.get(key)), _number(time_b.get(key))) for key, label in STEP_STATS]

    share_a, share_b = _mapping(steps_a, "breakdown"), _mapping(steps_b, "breakdown")
    ms_a, ms_b = _mapping(steps_a, "breakdown_ms"), _mapping(steps_b, "breakdown_ms")
    phases = [phase for phase in PHASES if phase in share_a or phase in share_b]
    phases += [phase for phase in {**share_a, **share_b} if phase not in phases]
    diff.breakdown = [
        PhaseChange(
            phase,
            Change(phase, _number(share_a.get(phase)), _number(share_b.get(phase))),
            Change(phase, _number(ms_a.get(phase)), _number(ms_b.get(phase))),
        )
        for phase in phases
    ]

    ops_a, ops_b = _operators_per_step(a), _operators_per_step(b)
    if ops_a is not None and ops_b is not None:
        diff.operators_compared = True
        matched = [Change(name, ops_a[name], ops_b[name]) for name in ops_a if name in ops_b]
        diff.slower_operators = sorted((c for c in matched if (c.delta or 0) > 0), key=lambda c: -(c.delta or 0))[:TOP_OPERATORS]
        diff.faster_operators = sorted((c for c in matched if (c.delta or 0) < 0), key=lambda c: c.delta or 0)[:TOP_OPERATORS]
        diff.operators_only_in_a = [name for name in ops_a if name not in ops_b]
        diff.operators_only_in_b = [name for name in ops_b if name not in ops_a]

    diff.findings = _finding_changes(_findings(a), _findings(b))
    return diff


def _finding_changes(in_a: dict[str, dict[str, Any]], in_b: dict[str, dict[str, Any]]) -> list[FindingChange]:
    changes = []
    for finding_id in [*in_b, *(i for i in in_a if i not in in_b)]:
        fa, fb = in_a.get(finding_id), in_b.get(finding_id)
        saving_a = _number(fa.get("estimated_saving")) if fa else None
        saving_b = _number(fb.get("estimated_saving")) if fb else None
        severity_a, severity_b = (fa or {}).get("severity"), (fb or {}).get("severity")
        if fa is None:
            kind = "appeared"
        elif fb is None:
            kind = "gone"
        elif severity_a != severity_b or _round(saving_a, 3) != _round(saving_b, 3):
            kind = "changed"
        else:
            continue
        title = str((fb or fa or {}).get("title") or finding_id)
        changes.append(FindingChange(finding_id, kind, title, severity_a, severity_b, saving_a, saving_b))
    order = {"appeared": 0, "changed": 1, "gone": 2}
    return sorted(changes, key=lambda change: order[change.kind])


# --- the console table ----------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} ms" if abs(value) < 100 else f"{value:,.0f} ms"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _signed_ms(change: Change) -> str:
    if change.delta is None:
        return "n/a"
    relative = f" ({change.relative:+.1%})" if change.relative is not None else ""
    return f"{'+' if change.delta >= 0 else '-'}{_ms(abs(change.delta))}{relative}"


def _points(change: Change) -> str:
    return "n/a" if change.delta is None else f"{change.delta * 100:+.1f} pts"


def _saving(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        return "  " + "  ".join(cells).rstrip()
    return [line(header), *(line(row) for row in rows)]


def text_lines(diff: ReportDiff) -> list[str]:
    lines = ["perfdoctor diff"]
    for label, side in (("A", diff.a), ("B", diff.b)):
        facts = ", ".join(part for part in (side.name, f"{side.steps} steps" if side.steps is not None else "", side.status or "") if part)
        lines.append(f"  {label}: {side.path} ({facts})")
    lines += ["", "Step time"]
    lines += _table(("", "A", "B", "change"), [(c.label, _ms(c.a), _ms(c.b), _signed_ms(c)) for c in diff.step_time])
    lines += ["", "Breakdown (share of step; ms per step)"]
    if diff.breakdown:
        lines += _table(
            ("", "A", "B", "change", "A ms", "B ms", "change ms"),
            [(p.phase, _pct(p.share.a), _pct(p.share.b), _points(p.share), _ms(p.ms.a), _ms(p.ms.b), _signed_ms(p.ms)) for p in diff.breakdown],
        )
    else:
        lines.append("  n/a: no step was timed in either run")
    lines += ["", "Operators (self ms per profiled step)"]
    if not diff.operators_compared:
        lines.append("  n/a: operator statistics need a profiled trace in both runs")
    elif not diff.slower_operators and not diff.faster_operators:
        lines.append("  no operator of both top lists changed")
    else:
        rows = [("slower: " + c.label, _ms(c.a), _ms(c.b), _signed_ms(c)) for c in diff.slower_operators]
        rows += [("faster: " + c.label, _ms(c.a), _ms(c.b), _signed_ms(c)) for c in diff.faster_operators]
        lines += _table(("", "A", "B", "change"), rows)
    if diff.operators_only_in_b:
        lines.append(f"  only in B's top operators: {', '.join(diff.operators_only_in_b)}")
    if diff.operators_only_in_a:
        lines.append(f"  only in A's top operators: {', '.join(diff.operators_only_in_a)}")
    lines += ["", "Findings"]
    if not diff.findings:
        lines.append("  no change")
    for change in diff.findings:
        if change.kind == "appeared":
            lines.append(f"  + {change.id} ({change.severity_b}, saving {_saving(change.saving_b)}): {change.title}")
        elif change.kind == "gone":
            lines.append(f"  - {change.id} ({change.severity_a}, saving {_saving(change.saving_a)}): gone in B")
        else:
            lines.append(
                f"  ~ {change.id}: {change.severity_a}, saving {_saving(change.saving_a)} -> "
                f"{change.severity_b}, saving {_saving(change.saving_b)}"
            )
    return lines


# --- the page -------------------------------------------------------------------------------------

DIFF_TEMPLATE = "diff.html.j2"


def render_diff_html(diff: ReportDiff, a: LoadedReport, b: LoadedReport) -> str:
    from ..report import charts
    from ..report.html import render_html

    page = diff.to_json()
    page["bars"] = {
        "a": charts.breakdown_bar(a.section("steps").get("breakdown")),
        "b": charts.breakdown_bar(b.section("steps").get("breakdown")),
    }
    return render_html(page, template=DIFF_TEMPLATE)


def write_diff_html(diff: ReportDiff, a: LoadedReport, b: LoadedReport, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "diff.html"
    path.write_text(render_diff_html(diff, a, b), encoding="utf-8")
    return path
