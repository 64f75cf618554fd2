"""A run still in progress, as far as its raw streams tell: steps so far, the recent median step,
steps/s and the DataLoader's share (what the progress line shows), and every step's phases (what
the TensorBoard scalars hold), for the step timeline and the breakdown so far.

Read from `RUN/raw/steps.jsonl` (rank 0's, or the only one) each time the page is asked for; no
finding is made before the run ends, since the rules need the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.steps import PHASES, PhaseValues, StepSeriesSection
from ..report.tensorboard import step_scalars
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
    from ..run.live import Follower

    ranks = rundir.ranks("steps")
    rank = ranks[0] if ranks else None
    follower = Follower(rundir, rank, None)
    follower.poll()
    rows: list[tuple[int, dict[str, float]]] = []
    path = rundir.stream_path("steps", rank)
    records = lines.read(path) if path.exists() else None
    for record in records.records if records else []:
        if not isinstance(record, dict):
            continue
        if "restart" in record:
            rows.clear()
        elif isinstance(record.get("steps"), dict):
            rows.extend((step, values) for step, _, values in step_scalars(record["steps"]))
    stride = max(1, -(-len(rows) // MAX_POINTS))
    shown = rows[::stride]
    def column(tag: str) -> list[float | None]:
        return [values[tag] for _, values in shown]

    series = StepSeriesSection(
        stride=stride,
        step=[step for step, _ in shown],
        duration_ms=column("step/time_ms"),
        profiled=[False for _ in shown],
        dataloader_ms=column("step/dataloader_ms"),
        forward_ms=column("step/forward_ms"),
        backward_ms=column("step/backward_ms"),
        optimizer_ms=column("step/optimizer_ms"),
        other_ms=column("step/other_ms"),
    )
    steady = rows[1:] if len(rows) > 1 else rows  # the first step warms up
    return LiveRun(
        steps=follower.steps,
        median_step_ms=follower.median_step_ms(),
        steps_per_s=follower.steps_per_s(),
        dataloader_share=follower.dataloader_share(),
        series=series,
        breakdown=_breakdown(steady),
        breakdown_ms=PhaseValues.from_dict({p: sum(v[f"step/{p}_ms"] for _, v in steady) / len(steady) for p in PHASES}) if steady else None,
    )


def _breakdown(rows: list[tuple[int, dict[str, Any]]]) -> PhaseValues | None:
    total = sum(values["step/time_ms"] for _, values in rows)
    if total <= 0:
        return None
    return PhaseValues.from_dict({phase: sum(values[f"step/{phase}_ms"] for _, values in rows) / total for phase in PHASES})
