"""What the report needs from one rank's trace(s): top operators, host-overhead evidence, the
trace-measured step breakdown, collectives per step, and the time in a few named ops that rules
ask about. Totals are over the measured steps (the profiled steps, less a foreign trace's
warm-up step); `*_per_step` and shares are means over them.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.ddp import TraceComm
from ..model.operators import OperatorRow
from ..model.steps import PHASES, PhaseValues
from .rundata import TraceSummary

if TYPE_CHECKING:
    from ..trace import Trace
    from ..trace.comm import CommStepStats
    from ..trace.cpu import StepBreakdown
    from ..trace.steps import StepWindow

TOP_OPERATORS = 25
MAX_SHAPES_CHARS = 160  # input shapes of an op with hundreds of inputs are cut to this
# Ops whose time per step some rules use as evidence, by a name fragment they contain.
NAMED_OPS = {
    "search_unused_parameters": ("search_unused_parameters",),
    "data_parallel_overhead": ("Broadcast", "ReduceAddCoalesced", "Scatter", "Gather"),
}


def summarize_traces(paths: list[Path], relative_to: Path | None = None) -> tuple[TraceSummary, Trace | None]:
    """Summarise a rank's traces (normally one; the last readable one is used when a window was
    re-taken). Returns the summary and the Trace it came from (None if none was readable), so
    that other analyses need not read it again."""
    from ..trace import TraceError, read_trace

    files = [str(path.relative_to(relative_to)) if relative_to else str(path) for path in paths]
    summary = TraceSummary(files=files, windows=0)
    for path in reversed(paths):
        try:
            trace = read_trace(path)
        except TraceError as error:
            summary.skipped.append(str(error))  # the message names the file
            continue
        return summarize_trace(trace, summary), trace
    return summary, None


def summarize_trace(trace: Trace, summary: TraceSummary, measured: list[StepWindow] | None = None) -> TraceSummary:
    """`measured`: the step windows to summarise (default: every one); a foreign trace's first,
    warm-up step is left out here as the step statistics leave it out (analysis/foreign.py)."""
    from ..trace.comm import comm_steps
    from ..trace.cpu import host_op_stats, top_operators
    from ..trace.steps import step_windows

    if trace.skipped:
        summary.skipped.append(trace.skipped.summary())
    every = step_windows(trace)
    windows = [w for w in measured if w in every] if measured is not None else every
    windows = windows or every
    summary.windows = len(windows)
    if not windows:
        return summary
    total_ns = sum(window.duration_ns for window in windows)
    summary.step_ms = total_ns / len(windows) / 1e6
    summary.top_operators = [
        OperatorRow(
            name=op.name,
            calls=op.calls,
            self_ms=op.self_ns / 1e6,
            total_ms=op.total_ns / 1e6,
            input_dims=_shortened(op.input_shapes[0][0]) if op.input_shapes else None,
        )
        for op in top_operators(trace, windows, TOP_OPERATORS)
    ]
    host = host_op_stats(trace, windows)
    if host:
        summary.ops_per_step = sum(step.ops for step in host) / len(host)
        summary.median_op_us = statistics.median(step.median_op_ns for step in host) / 1e3
        summary.small_op_share = sum(step.short_op_ns for step in host) / max(total_ns, 1)
        summary.gap_share = sum(step.gap_ns for step in host) / max(total_ns, 1)
    breakdown = [step for step in step_breakdowns(trace) if step.step in windows]
    if breakdown:
        summary.breakdown = PhaseValues.from_dict(
            {phase: round(sum(getattr(step, f"{phase}_ns") for step in breakdown) / max(total_ns, 1), 4) for phase in PHASES}
        )
    summary.comm = _comm(comm_steps(trace, windows), len(windows))
    summary.named_op_ms = _named_ops(trace, windows)
    from .places import trace_places

    file = next((name for name in summary.files if Path(name).name == trace.path.name), str(trace.path))
    summary.places = trace_places(trace, file, trace.metadata.rank)
    return summary


def step_breakdowns(trace: Trace) -> list[StepBreakdown]:
    """cpu_breakdown over the trace's own step windows, computed once per Trace."""
    from ..trace.cpu import cpu_breakdown
    from ..trace.steps import step_windows

    if "cpu_breakdown" not in trace.derived:
        trace.derived["cpu_breakdown"] = cpu_breakdown(trace, step_windows(trace))
    breakdowns: list[StepBreakdown] = trace.derived["cpu_breakdown"]
    return breakdowns


def _shortened(text: str) -> str:
    return text if len(text) <= MAX_SHAPES_CHARS else text[: MAX_SHAPES_CHARS - 1] + "…"


def _comm(steps: list[CommStepStats], windows: int) -> TraceComm | None:
    if not steps or not any(step.host_comm_ns or step.device_comm_ns for step in steps):
        return None
    on_device = any(step.device_comm_ns for step in steps)
    kinds: dict[str, float] = {}
    for step in steps:
        for kind, count in step.collectives.items():
            kinds[kind] = kinds.get(kind, 0.0) + count / windows
    return TraceComm(
        comm_ms=sum((step.device_comm_ns if on_device else step.host_comm_ns) for step in steps) / windows / 1e6,
        exposed_ms=sum(step.exposed_ns for step in steps) / windows / 1e6 if on_device else None,
        overlap_share=(sum(step.overlapped_ns for step in steps) / max(1, sum(step.device_comm_ns for step in steps))) if on_device else None,
        where="device" if on_device else "host",
        collectives_per_step={kind: round(count, 2) for kind, count in sorted(kinds.items())},
    )


def _named_ops(trace: Trace, windows: list[StepWindow]) -> dict[str, float]:
    import numpy as np

    from ..trace.ranges import operator_mask
    from ..trace.steps import window_of

    in_steps = window_of(trace.ts_ns, windows) >= 0
    ops = operator_mask(trace) & in_steps
    found: dict[str, float] = {}
    for key, fragments in NAMED_OPS.items():
        mask = ops & trace.name_mask(lambda name: any(fragment in name for fragment in fragments))
        if mask.any():
            found[key] = float(np.sum(trace.dur_ns[mask])) / len(windows) / 1e6
    return found
