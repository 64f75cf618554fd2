"""The report's `profiler` section: the window torch.profiler traced and what became of it."""

from __future__ import annotations

import msgspec

from .numbers import Count, NonNegative


class ProfilerWindow(msgspec.Struct, kw_only=True):
    start: Count  # 0-based step
    steps: Count


class StoodAside(msgspec.Struct, kw_only=True):
    at_step: int | None = None
    reason: str | None = None


class ProfilerSection(msgspec.Struct, kw_only=True):
    enabled: bool = True
    window: ProfilerWindow | None = None
    profiled_steps: list[Count] = msgspec.field(default_factory=list)
    traces: list[str] = msgspec.field(default_factory=list)  # relative to the run directory
    export_s: NonNegative | None = None
    stood_aside: StoodAside | None = None  # the script started its own profiler
