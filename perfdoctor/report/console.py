"""The few lines printed when a run ends: how it went, where the time went, what to fix first."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..model.report import Report
from ..terminal import printable, shell_quote
from .renderer import AnalysedRun, Renderer

MAX_FINDINGS = 5


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def memory_line(report: Report) -> str | None:
    """One line on memory when it matters: the run died of it, or it grows."""
    from ..rules.memory import SUBJECTS, duration_text, size_text

    memory = report.memory
    if memory is None:
        return None
    oom = memory.oom
    if oom is not None:
        if oom.kind == "host_killed":
            return f"the kernel's OOM killer ended the run after {oom.step} steps"
        where = f" in {oom.phase}" if oom.phase else ""
        module = oom.module_path or oom.module_type
        return f"out of {'GPU' if oom.kind == 'cuda' else 'host'} memory at step {oom.step}{where}" + (f" ({module})" if module else "")
    growing = sorted(memory.growing(), key=lambda t: (t.seconds_to_limit is None, t.seconds_to_limit or 0.0))
    if not growing:
        return None
    trend = growing[0]
    text = f"{SUBJECTS[trend.subject].lower()} grows {size_text(trend.projected_bytes_per_step)} per step"
    if trend.seconds_to_limit is not None:
        text += f": the limit in about {duration_text(trend.seconds_to_limit)} at this rate"
    return text


def summary_lines(report: Report, out_dir: Path, tensorboard: bool = True) -> list[str]:
    run, steps = report.run, report.steps
    name = run.script or run.module or "trace"
    lines = []
    head = f"perfdoctor: {printable(name)} {run.status}"
    if run.exit_code not in (None, 0):
        head += f" (exit status {run.exit_code})"
    if run.duration_s is not None:
        head += f" in {run.duration_s:.1f} s"
    time_ms = steps.time_ms
    if time_ms and time_ms.p50 is not None and time_ms.p95 is not None:
        head += f"; {steps.count} steps, {time_ms.p50:.1f} ms/step (median, p95 {time_ms.p95:.1f})"
    elif steps.count == 0:
        head += "; no training step seen"
    lines.append(head)
    shared = machine_line(report)
    if shared:
        lines.append(shared)
    if steps.breakdown:
        lines.append("  where a step goes: " + " · ".join(f"{printable(phase)} {_pct(share)}" for phase, share in steps.breakdown.items()))
    findings = report.findings
    if findings:
        lines.append("  findings:")
        for finding in findings[:MAX_FINDINGS]:
            lines.append(
                f"    [{finding.severity}] {printable(finding.id)}: {printable(finding.title)} "
                f"(saves up to {_pct(finding.estimated_saving)})"
            )
        if len(findings) > MAX_FINDINGS:
            lines.append(f"    ... and {len(findings) - MAX_FINDINGS} more in the report")
    else:
        lines.append("  findings: none; nothing measured here calls for a change")
    memory = memory_line(report)
    if memory:
        lines.append(f"  memory: {memory}")
    for note in report.notes:
        lines.append(f"  note: {printable(note)}")
    traced = bool(report.profiler and report.profiler.traces or report.operators and report.operators.trace_files)
    view = f"; with its trace view: perfdoctor view {shell_quote(out_dir)}" if traced else ""
    lines.append(f"  report: {printable(out_dir / 'report.html')}  (data: {printable(out_dir / 'report.json')}{view})")
    if tensorboard:
        lines.append(f"  traces and scalars: tensorboard --logdir {shell_quote(out_dir / 'tb')}  (the perfdoctor tab)")
    return lines


def machine_line(report: Report) -> str | None:
    """Whether the machine was shared while the job ran, and by how much (None: not measured)."""
    contention = report.host.contention if report.host else None
    if contention is None:
        return None
    cores = contention.usable_cores
    others = contention.others_cpu_cores
    if not contention.shared:
        if others is None:
            return None
        return f"  machine: quiet enough (other processes used {others:.1f} of {cores} cores; the job's threads seldom waited for a CPU)"
    parts = []
    if others is not None:
        parts.append(f"other processes used {others:.1f} of {cores} cores")
    if contention.main_wait_share is not None:
        parts.append(f"the training thread waited for a CPU {contention.main_wait_share:.0%} of the time")
    if contention.throttled_share:
        parts.append(f"the cgroup quota throttled the job {contention.throttled_share:.0%} of the time")
    names = ", ".join(other.name for other in contention.top_others[:3])
    return "  machine SHARED: " + "; ".join(parts) + (f" (busiest: {names})" if names else "") + ": timings are inflated"


def print_summary(report: Report, out_dir: Path, stream: TextIO, tensorboard: bool = True) -> None:
    print("\n".join(summary_lines(report, out_dir, tensorboard)), file=stream)


class ConsoleRenderer(Renderer):
    """The summary on a stream (stderr by default: stdout belongs to the script)."""

    output = "the console summary"

    def __init__(self, stream: TextIO | None = None, tensorboard: bool = True) -> None:
        self.stream = stream
        self.tensorboard = tensorboard

    def render(self, run: AnalysedRun, out: Path) -> None:
        print_summary(run.report, out, self.stream or sys.stderr, tensorboard=self.tensorboard)
