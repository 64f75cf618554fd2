"""The report's `operators` section: what the trace of the profiled steps shows on the host."""

from __future__ import annotations

import msgspec

from .steps import PhaseValues


class OperatorRow(msgspec.Struct, kw_only=True):
    name: str
    calls: int
    self_ms: float  # over all profiled steps
    total_ms: float
    input_dims: str | None = None


class OperatorsSection(msgspec.Struct, kw_only=True):
    trace_files: list[str]
    windows: int  # profiled steps found in the trace
    step_ms: float | None
    ops_per_step: float | None
    median_op_us: float | None
    small_op_share: float | None
    gap_share: float | None
    breakdown: PhaseValues | None  # from the trace, for runs perfdoctor did not record
    skipped: list[str]
    top: list[OperatorRow]
