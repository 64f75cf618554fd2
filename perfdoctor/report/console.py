"""The few lines printed when a run ends: how it went, where the time went, what to fix first."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from ..terminal import printable, shell_quote

MAX_FINDINGS = 5


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def print_summary(report: dict[str, Any], out_dir: Path, stream: TextIO, tensorboard: bool = True) -> None:
    run, steps = report["run"], report["steps"]
    name = run.get("script") or run.get("module") or "trace"
    lines = []
    head = f"perfdoctor: {printable(name)} {printable(run['status'])}"
    if run.get("exit_code") not in (None, 0):
        head += f" (exit status {run['exit_code']})"
    if run.get("duration_s") is not None:
        head += f" in {run['duration_s']:.1f} s"
    time_ms = steps.get("time_ms")
    if time_ms:
        head += f"; {steps['count']} steps, {time_ms['p50']:.1f} ms/step (median, p95 {time_ms['p95']:.1f})"
    elif steps.get("count") == 0:
        head += "; no training step seen"
    lines.append(head)
    breakdown = steps.get("breakdown")
    if breakdown:
        lines.append("  where a step goes: " + " · ".join(f"{printable(phase)} {_pct(share)}" for phase, share in breakdown.items()))
    findings = report.get("findings") or []
    if findings:
        lines.append("  findings:")
        for finding in findings[:MAX_FINDINGS]:
            lines.append(
                f"    [{printable(finding['severity'])}] {printable(finding['id'])}: {printable(finding['title'])} "
                f"(saves up to {_pct(finding['estimated_saving'])})"
            )
        if len(findings) > MAX_FINDINGS:
            lines.append(f"    ... and {len(findings) - MAX_FINDINGS} more in the report")
    else:
        lines.append("  findings: none; nothing measured here calls for a change")
    for note in report.get("notes") or []:
        lines.append(f"  note: {printable(note)}")
    lines.append(f"  report: {printable(out_dir / 'report.html')}  (data: {printable(out_dir / 'report.json')})")
    if tensorboard:
        lines.append(f"  traces and scalars: tensorboard --logdir {shell_quote(out_dir / 'tb')}")
    print("\n".join(lines), file=stream)
