"""Two runs side by side (`perfdoctor diff A B`): step-time statistics and breakdown, the operators
that got slower or faster, and the findings that appeared, went away or changed.

The comparison is built once as a ReportDiff and then printed (a compact table), written as JSON,
or rendered as `diff.html` from perfdoctor/templates/diff.html.j2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..model.finding import Finding
from ..model.numbers import rounded
from ..model.steps import PHASES, PhaseValues
from ..terminal import printable
from .reportfile import LoadedReport

STEP_STATS = (("p50", "median"), ("mean", "mean"), ("p95", "p95"), ("min", "min"), ("max", "max"))
TOP_OPERATORS = 10  # per direction
DIFF_SCHEMA = "perfdoctor.diff/1"


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
        return {"label": self.label, "a": self.a, "b": self.b, "change": rounded(self.delta, 4), "relative": rounded(self.relative, 4)}


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
    findings: int = 0  # how many findings the run's report has


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


# --- building the diff ----------------------------------------------------------------------------


def _side(loaded: LoadedReport) -> RunSide:
    run, steps = loaded.report.run, loaded.report.steps
    subject = run.script or run.module or loaded.run_dir.name
    return RunSide(
        path=str(loaded.path),
        name=subject.replace("\\", "/").split("/")[-1],
        status=run.status,
        steps=steps.count,
        measured=steps.measured,
        profiled=steps.profiled,
        findings=len(loaded.report.findings),
    )


def _operators_per_step(loaded: LoadedReport) -> dict[str, float] | None:
    """Self ms per profiled step of each top operator (the report sums them over the profiled
    steps, and two runs may profile different numbers of steps)."""
    operators = loaded.report.operators
    if operators is None or not operators.top:
        return None
    per = loaded.report.steps.profiled or 1
    found: dict[str, float] = {}
    for op in operators.top:
        found[op.name] = found.get(op.name, 0.0) + op.self_ms / per
    return found


def _findings(loaded: LoadedReport) -> dict[str, Finding]:
    found: dict[str, Finding] = {}
    for finding in loaded.report.findings:
        found.setdefault(finding.id, finding)
    return found


def build_diff(a: LoadedReport, b: LoadedReport) -> ReportDiff:
    diff = ReportDiff(a=_side(a), b=_side(b))
    steps_a, steps_b = a.report.steps, b.report.steps
    diff.step_time = [
        Change(label, getattr(steps_a.time_ms, key) if steps_a.time_ms else None, getattr(steps_b.time_ms, key) if steps_b.time_ms else None)
        for key, label in STEP_STATS
    ]
    if steps_a.breakdown or steps_b.breakdown:
        diff.breakdown = [
            PhaseChange(
                phase,
                Change(phase, _phase(steps_a.breakdown, phase), _phase(steps_b.breakdown, phase)),
                Change(phase, _phase(steps_a.breakdown_ms, phase), _phase(steps_b.breakdown_ms, phase)),
            )
            for phase in PHASES
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


def _phase(values: PhaseValues | None, phase: str) -> float | None:
    return values.get(phase) if values else None


def _finding_changes(in_a: dict[str, Finding], in_b: dict[str, Finding]) -> list[FindingChange]:
    changes = []
    for finding_id in [*in_b, *(i for i in in_a if i not in in_b)]:
        fa, fb = in_a.get(finding_id), in_b.get(finding_id)
        saving_a = fa.estimated_saving if fa else None
        saving_b = fb.estimated_saving if fb else None
        severity_a, severity_b = (fa.severity if fa else None), (fb.severity if fb else None)
        if fa is None:
            kind = "appeared"
        elif fb is None:
            kind = "gone"
        elif severity_a != severity_b or rounded(saving_a) != rounded(saving_b):
            kind = "changed"
        else:
            continue
        shown = fb or fa
        title = (shown.title if shown else "") or finding_id
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


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    rows = [tuple(printable(cell) for cell in row) for row in rows]  # escaped before they are measured
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        return "  " + "  ".join(cells).rstrip()
    return [line(header), *(line(row) for row in rows)]


def text_lines(diff: ReportDiff) -> list[str]:
    """The console table, every control character from the data (operator names, finding
    titles, paths) escaped: nothing read can colour the terminal or forge a line."""
    return [printable(line) for line in _text_lines(diff)]


def _text_lines(diff: ReportDiff) -> list[str]:
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
    from ..report.html import render_page

    def bar(loaded: LoadedReport) -> dict[str, Any] | None:
        breakdown = loaded.report.steps.breakdown
        return charts.breakdown_bar(dict(breakdown.items()) if breakdown else None)

    page = diff.to_json()
    page["bars"] = {"a": bar(a), "b": bar(b)}
    return render_page(DIFF_TEMPLATE, page)


def write_diff_html(diff: ReportDiff, a: LoadedReport, b: LoadedReport, out: Path) -> Path:
    """DIR/diff.html, replaced atomically; never through a symlink, never over an input."""
    import os
    import stat

    from ..errors import PerfdoctorError
    from ..stream.atomic import write_text

    out.mkdir(parents=True, exist_ok=True)
    path = out / "diff.html"
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        found = None
    if found is not None:
        if stat.S_ISLNK(found.st_mode) or not stat.S_ISREG(found.st_mode):
            raise PerfdoctorError(f"cannot write {path}: it is not a regular file (perfdoctor replaces only files it wrote)")
        if any(os.path.samefile(path, side.path) for side in (a, b)):
            raise PerfdoctorError(f"{path} is an input: writing the diff there would overwrite it (choose another --out)")
    write_text(path, render_diff_html(diff, a, b))
    return path
