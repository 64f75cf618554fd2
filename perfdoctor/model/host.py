"""The report's `host` section: CPU use of the process, its workers and every core; memory."""

from __future__ import annotations

import msgspec

from .numbers import Count, NonNegative, Share


class HostTimeline(msgspec.Struct, kw_only=True):
    """Sampled values over the run, a few hundred points at most."""

    t_s: list[float] = msgspec.field(default_factory=list)
    system_cpu: list[float | None] = msgspec.field(default_factory=list)  # percent of all cores
    process_cpu: list[float | None] = msgspec.field(default_factory=list)  # percent of one core
    children_cpu: list[float | None] = msgspec.field(default_factory=list)
    rss_mb: list[float | None] = msgspec.field(default_factory=list)


class HostSummary(msgspec.Struct, kw_only=True):
    samples: Count
    interval_s: NonNegative
    logical_cores: Count | None
    usable_cores: Count | None
    process_cpu_mean: NonNegative | None  # percent of one core (200 = two cores busy)
    children_cpu_mean: NonNegative | None  # DataLoader workers and other children, same unit
    system_cpu_mean: NonNegative | None  # percent of all cores
    system_cpu_p90: NonNegative | None
    saturated_share: Share | None  # share of samples with every usable core >= the busy bar
    rss_peak_bytes: Count | None
    children_rss_peak_bytes: Count | None
    threads_max: Count | None
    involuntary_switches_per_s: float | None
    timeline: HostTimeline = msgspec.field(default_factory=HostTimeline)
