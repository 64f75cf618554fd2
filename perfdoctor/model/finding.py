"""A finding: one piece of advice, with the measurements that earned it and what it could save."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .numbers import Share

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")  # worst first
# How far the measurements behind a finding can be trusted: "high" unless something measured in
# the same run (other processes taking the CPUs, an unstable probe) makes its timings uncertain,
# which `confidence_reason` then says.
Confidence = Literal["high", "medium", "low"]


class TraceLocation(msgspec.Struct, kw_only=True):
    """A place in a profiler trace that a finding rests on: the trace view opens there
    (`perfdoctor view`, the TensorBoard tab), the track holding `op` first."""

    label: str  # what is there, for people: "aten::item, the longest sync (3.20 ms) in step 7"
    trace: str  # the trace file, as the report names it (relative to the run directory)
    start_ns: int  # the window to show, ns on the trace's clock (the trace's us x 1000)
    end_ns: int
    step: int | None = None  # N of the ProfilerStep#N the place is in
    op: str | None = None  # the event to look for, by name
    rank: int | None = None


class Finding(msgspec.Struct, kw_only=True):
    id: str  # stable: ids are never renamed
    severity: Severity
    title: str
    evidence: dict[str, Any]  # the measured numbers that fired it, named with their units
    estimated_saving: Share  # fraction of step time, 0..1
    advice: str
    fix: str  # a code snippet
    docs: str  # where to read more
    area: str = ""
    confidence: Confidence = "high"
    confidence_reason: str = ""  # why it is not "high": what was measured that makes it uncertain
    # Where in the trace the evidence is (a sync, a pageable copy, a long DataLoader wait, a
    # step of the slow rank); empty when the finding does not rest on particular events.
    locations: list[TraceLocation] = msgspec.field(default_factory=list)
