"""The report's `operators` section: what the trace of the profiled steps shows on the host."""

from __future__ import annotations

import msgspec

from .numbers import Count, NonNegative, Share

from .steps import PhaseValues


class OperatorRow(msgspec.Struct, kw_only=True):
    name: str
    calls: Count
    self_ms: NonNegative  # over all profiled steps
    total_ms: NonNegative
    input_dims: str | None = None


class OperatorsSection(msgspec.Struct, kw_only=True):
    trace_files: list[str]
    windows: Count  # profiled steps found in the trace
    step_ms: NonNegative | None
    ops_per_step: NonNegative | None
    median_op_us: NonNegative | None
    small_op_share: Share | None
    gap_share: Share | None
    breakdown: PhaseValues | None  # from the trace, for runs perfdoctor did not record
    skipped: list[str]
    top: list[OperatorRow]

    def __post_init__(self) -> None:
        if self.breakdown is not None:
            self.breakdown.check_shares()
