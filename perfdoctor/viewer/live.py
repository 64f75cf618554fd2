"""A run still in progress, as far as its raw streams tell: steps so far, the recent median step,
steps/s and the DataLoader's share (what the progress line shows), and every step's phases (what
the TensorBoard scalars hold), for the step timeline and the breakdown so far.

Read from `RUN/raw/steps.jsonl` (rank 0's, or the only one) each time the page is asked for; no
finding is made before the run ends, since the rules need the whole run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ..model.steps import PHASES, PhaseValues, StepSeriesSection
from ..report.tensorboard import step_scalars
from ..run.live import RECENT_STEPS
from ..stream import lines
from ..stream.rundir import RunDir

MAX_POINTS = 2000  # the timeline is thinned to about this many steps


@dataclass(frozen=True)
class LiveRun:
    steps: int
    median_step_ms: float | None
    steps_per_s: float | None
    dataloader_share: float | None
    series: StepSeriesSection
    breakdown: PhaseValues | None  # shares of step time over the steps so far, the first left out
    breakdown_ms: PhaseValues | None  # mean ms per step of each phase, likewise


def live_run(rundir: RunDir) -> LiveRun:
    ranks = rundir.ranks("steps")
    rank = ranks[0] if ranks else None
    rows: list[tuple[int, int, dict[str, float]]] = []  # (step, end ns, {tag: ms}), as the scalars have them
    path = rundir.stream_path("steps", rank)
    records = lines.read(path) if path.exists() else None
    for record in records.records if records else []:
        if "restart" in record:
            rows.clear()
        elif isinstance(record.get("steps"), dict):
            rows.extend(step_scalars(record["steps"]))
    stride = max(1, -(-len(rows) // MAX_POINTS))
    shown = rows[::stride]

    def column(tag: str) -> list[float | None]:
        return [values[tag] for _, _, values in shown]

    series = StepSeriesSection(
        stride=stride,
        step=[step for step, _, _ in shown],
        duration_ms=column("step/time_ms"),
        profiled=[False for _ in shown],
        dataloader_ms=column("step/dataloader_ms"),
        forward_ms=column("step/forward_ms"),
        backward_ms=column("step/backward_ms"),
        optimizer_ms=column("step/optimizer_ms"),
        other_ms=column("step/other_ms"),
    )
    # The progress line's numbers (run/live.py): over the last RECENT_STEPS steps.
    recent = rows[-RECENT_STEPS:]
    span_s = (recent[-1][1] - recent[0][1]) / 1e9 if len(recent) > 1 else 0.0
    total = sum(values["step/time_ms"] for _, _, values in recent)
    steady = [values for _, _, values in (rows[1:] if len(rows) > 1 else rows)]  # the first step warms up
    return LiveRun(
        steps=rows[-1][0] + 1 if rows else 0,
        median_step_ms=statistics.median(values["step/time_ms"] for _, _, values in recent) if recent else None,
        steps_per_s=(len(recent) - 1) / span_s if span_s > 0 else None,
        dataloader_share=sum(values["step/dataloader_ms"] for _, _, values in recent) / total if total > 0 else None,
        series=series,
        breakdown=_breakdown(steady),
        breakdown_ms=PhaseValues.from_dict({p: sum(v[f"step/{p}_ms"] for v in steady) / len(steady) for p in PHASES}) if steady else None,
    )


def _breakdown(rows: list[dict[str, Any]]) -> PhaseValues | None:
    total = sum(values["step/time_ms"] for values in rows)
    if total <= 0:
        return None
    return PhaseValues.from_dict({phase: sum(values[f"step/{phase}_ms"] for values in rows) / total for phase in PHASES})
