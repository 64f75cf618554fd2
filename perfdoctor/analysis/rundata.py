"""RunData: everything one run measured, typed, as the rules and the renderers read it.

Built from `RUN/raw` and the traces alone (see `load.py`), or from foreign traces. Times are in
milliseconds and shares are fractions (0..1) unless a name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PHASES = ("dataloader", "forward", "backward", "optimizer", "other")
# Parts of "other" the step clock times on their own: work between a batch arriving and the
# forward (per-sample work in the loop) and between forward and backward (the loss).
OTHER_PARTS = ("before_forward", "loss")


@dataclass
class RunInfo:
    script: str | None = None
    module: str | None = None
    argv: list[str] = field(default_factory=list)
    exit_code: int | None = None
    status: str = "completed"
    started: str | None = None
    duration_s: float | None = None
    ranks: int = 1
    error: dict[str, str] | None = None
    max_steps: int | None = None
    collector_errors: dict[str, str] = field(default_factory=dict)
    source: str = "run"  # "run": perfdoctor ran it; "trace": read from foreign traces


@dataclass
class StepSeries:
    """One entry per step, in step order (durations exclude perfdoctor's own overhead)."""

    duration_ms: list[float] = field(default_factory=list)
    phases_ms: dict[str, list[float]] = field(default_factory=lambda: {phase: [] for phase in PHASES})
    other_parts_ms: dict[str, list[float]] = field(default_factory=lambda: {part: [] for part in OTHER_PARTS})
    batches: list[int] = field(default_factory=list)
    profiled: list[bool] = field(default_factory=list)
    mode: str | None = None  # "optimizer", "batch", or None (no step seen)

    def __len__(self) -> int:
        return len(self.duration_ms)


@dataclass
class StepStats:
    count: int = 0
    profiled: int = 0
    measured: int = 0  # the steady-state steps the statistics below come from
    excluded: str = ""  # which steps were left out of the statistics, and why
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    breakdown: dict[str, float] | None = None  # fractions of step time, summing to 1
    breakdown_ms: dict[str, float] | None = None  # mean ms per step
    other_parts: dict[str, float] | None = None  # OTHER_PARTS as fractions of step time
    source: str = "step clock"


@dataclass
class EpochStats:
    first_batch_ms: float | None
    iter_ms: float
    batches: int
    wait_ms: float
    end_ms: float


@dataclass
class LoaderSummary:
    loader_id: int
    args: dict[str, Any]
    dataset: dict[str, Any]
    batches: int
    wait_total_ms: float
    epoch_start_wait_ms: float  # the part of wait_total_ms spent on each epoch's first batch
    wait_p50_ms: float | None
    wait_p95_ms: float | None
    epochs: list[EpochStats]
    cores_busy_in_waits: float | None = None  # all cores' busy share while long waits ran
    ready_wait_ms: float = 0.0  # waits for batches already delivered by workers: receiving cost

    @property
    def num_workers(self) -> int:
        return int(self.args.get("num_workers") or 0)


@dataclass
class HostSummary:
    samples: int
    interval_s: float
    logical_cores: int | None
    usable_cores: int | None
    process_cpu_mean: float | None  # percent of one core (200 = two cores busy)
    children_cpu_mean: float | None  # DataLoader workers and other children, same unit
    system_cpu_mean: float | None  # percent of all cores
    system_cpu_p90: float | None
    saturated_share: float | None  # share of samples with every usable core >= the busy bar
    rss_peak_bytes: int | None
    children_rss_peak_bytes: int | None
    threads_max: int | None
    involuntary_switches_per_s: float | None
    timeline: dict[str, list[float]] = field(default_factory=dict)  # t_s, system_cpu, process_cpu, rss_mb


@dataclass
class OperatorStat:
    name: str
    calls: int
    self_ms: float
    total_ms: float
    input_dims: str | None = None


@dataclass
class TraceSummary:
    files: list[str]
    windows: int
    top_operators: list[OperatorStat] = field(default_factory=list)
    ops_per_step: float | None = None
    median_op_us: float | None = None
    small_op_share: float | None = None  # share of step time in ops shorter than the small-op bar
    gap_share: float | None = None  # share of step time on the main thread outside any op
    step_ms: float | None = None  # mean profiled step, as the trace measured it
    breakdown: dict[str, float] | None = None  # trace-derived, for runs perfdoctor did not record
    comm: dict[str, Any] | None = None  # collectives per step: comm_ms, exposed_ms, collectives_per_step
    named_op_ms: dict[str, float] = field(default_factory=dict)  # ms per step in ops some rules ask about
    skipped: list[str] = field(default_factory=list)


@dataclass
class RunData:
    run: RunInfo
    environment: dict[str, Any]
    steps: StepStats
    series: StepSeries
    dataloaders: list[LoaderSummary] = field(default_factory=list)
    host: HostSummary | None = None
    trace: TraceSummary | None = None
    gpu: dict[str, Any] | None = None
    ddp: dict[str, Any] | None = None
    profiler: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        return self.environment
