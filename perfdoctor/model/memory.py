"""The report's `memory` section: memory over the whole run, sampled at step ends (the resident
memory of the process and its DataLoader workers, and torch's CUDA allocator), the limits the job
runs under, the trend of each series, an out-of-memory end, and, under torch.distributed, each
rank's memory. None for a run without memory samples (foreign traces, a run from before them).
"""

from __future__ import annotations

from typing import Literal

import msgspec

TrendSubject = Literal["host_process", "host_workers", "gpu_allocated", "gpu_reserved"]
OomKind = Literal["cuda", "host", "host_killed"]


class MemoryTrend(msgspec.Struct, kw_only=True):
    """One series' trend over the steady steps (see perfdoctor/analysis/trend.py)."""

    subject: TrendSubject
    from_step: int  # the window fitted (after warm-up)
    to_step: int
    points: int
    bytes_per_step: float  # Theil-Sen slope
    bytes_per_step_low: float  # its 95% interval
    bytes_per_step_high: float
    late_bytes_per_step: float | None  # the slope over the window's last third
    projected_bytes_per_step: float  # the rate projections use (the late slope when lower)
    bytes_per_hour: float | None  # at this run's pace (wall time per step, pauses included)
    growth_bytes: float  # over the window
    noise_bytes: float
    drawdown_bytes: float
    level_bytes: float  # at the end of the window (the median of its last points)
    fitted_end_bytes: float | None = None  # the fitted line at the window's last step
    growing: bool
    reason: str
    limit_bytes: int | None = None
    headroom_bytes: int | None = None  # what was left below the limit at the end of the run
    seconds_to_limit: float | None = None  # from the end of the run, at the projected rate
    limit_at_step: int | None = None  # the step at which the limit would be reached


class MemorySeries(msgspec.Struct, kw_only=True):
    """Samples for charts, a few hundred at most; MiB."""

    step: list[int] = msgspec.field(default_factory=list)
    t_s: list[float] = msgspec.field(default_factory=list)
    process_rss_mb: list[float | None] = msgspec.field(default_factory=list)
    workers_rss_mb: list[float | None] = msgspec.field(default_factory=list)
    gpu_allocated_mb: list[float | None] = msgspec.field(default_factory=list)
    gpu_reserved_mb: list[float | None] = msgspec.field(default_factory=list)
    gpu_peak_allocated_mb: list[float | None] = msgspec.field(default_factory=list)  # since the previous sample


class GpuAllocator(msgspec.Struct, kw_only=True):
    """torch's caching allocator on the device the script used."""

    device: int
    name: str | None
    total_bytes: int
    limit_bytes: int  # total x set_per_process_memory_fraction
    peak_allocated_bytes: int | None  # over the run, from the per-sample peaks
    peak_reserved_bytes: int | None
    allocated_bytes: int | None  # at the last sample
    reserved_bytes: int | None
    reserved_unused_bytes: int | None  # reserved - allocated at the sample with the most reserved
    inactive_split_peak_bytes: int | None  # cached blocks split and partly used: fragmentation
    alloc_retries: int | None  # cudaMalloc failed, the cache was freed and the allocation retried
    alloc_conf: str | None  # PYTORCH_CUDA_ALLOC_CONF
    expandable_segments: bool
    peaks_per_window: bool  # peaks are per stretch of steps (else the run's)


class OomEvent(msgspec.Struct, kw_only=True):
    """How the run ran out of memory: a CUDA or host allocation error raised in the script, or
    the kernel's OOM killer."""

    kind: OomKind
    step: int | None  # the step in progress (0-based)
    phase: str | None  # dataloader, forward, backward, optimizer, other
    module_type: str | None = None  # the innermost nn.Module whose forward was running
    module_path: str | None = None
    source: str | None = None  # the innermost line outside torch
    error_type: str | None = None
    message: str | None = None
    allocated_bytes: int | None = None
    reserved_bytes: int | None = None
    peak_allocated_bytes: int | None = None  # since the script's last reset
    peak_reserved_bytes: int | None = None
    total_bytes: int | None = None
    alloc_retries: int | None = None
    summary: str | None = None  # torch.cuda.memory_summary() at the error
    rss_bytes: int | None = None
    used_bytes: int | None = None  # host memory in use at the last sample (killed runs)
    limit_bytes: int | None = None
    limit_source: str | None = None
    oom_kills: int | None = None  # the cgroup's oom_kill count rose by this much


class RankMemory(msgspec.Struct, kw_only=True):
    rank: int | None
    host_rss_peak_bytes: int | None
    gpu_peak_allocated_bytes: int | None
    gpu_peak_reserved_bytes: int | None
    gpu_limit_bytes: int | None = None
    host_bytes_per_step: float | None = None  # the process's trend, when it was fitted
    gpu_bytes_per_step: float | None = None


class LeakSite(msgspec.Struct, kw_only=True):
    """An operator whose allocations in the profiled steps were never freed (the trace's memory
    events): what a leak is made of."""

    op: str
    device: str  # "cpu" or "cuda:N"
    bytes_per_step: float
    allocations_per_step: float


class ExpectedLength(msgspec.Struct, kw_only=True):
    steps: int
    source: str  # how it was found, e.g. "--epochs 10 x 469 batches per epoch"


class MemorySection(msgspec.Struct, kw_only=True):
    samples: int
    sample_cost_share: float | None  # what sampling cost, as a share of the run (its budget)
    host_limit_bytes: int | None
    host_limit_source: Literal["cgroup", "ram"] | None
    host_used_bytes: int | None  # in use against that limit at the last host sample
    process_rss_peak_bytes: int | None
    workers_rss_peak_bytes: int | None
    seconds_per_step: float | None  # wall time per step over the fitted window
    gpu: GpuAllocator | None = None
    trends: list[MemoryTrend] = msgspec.field(default_factory=list)
    expected: ExpectedLength | None = None
    oom: OomEvent | None = None
    leak_sites: list[LeakSite] = msgspec.field(default_factory=list)
    ranks: list[RankMemory] = msgspec.field(default_factory=list)
    series: MemorySeries = msgspec.field(default_factory=MemorySeries)

    def trend(self, subject: TrendSubject) -> MemoryTrend | None:
        return next((t for t in self.trends if t.subject == subject), None)

    def growing(self) -> list[MemoryTrend]:
        return [t for t in self.trends if t.growing]
