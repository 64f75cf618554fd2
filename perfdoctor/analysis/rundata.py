"""RunData: everything one run measured, typed, as the rules read it and the report is made of.

Built from `RUN/raw` and the traces alone (see `load.py`), or from foreign traces (`foreign.py`).
The sections the report carries as they are (environment, host, profiler, gpu, ddp) are the
report's own types (perfdoctor.model); the rest is the analysis's full-resolution view, which
the JSON renderer rounds and thins into the report. Times are in milliseconds and shares are
fractions (0..1) unless a name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..model.dataloader import EpochStats
from ..model.ddp import DdpSection, TraceComm
from ..model.environment import Environment
from ..model.gpu import GpuSection
from ..model.host import HostSummary
from ..model.memory import MemorySection
from ..model.operators import OperatorRow
from ..model.profiler import ProfilerSection
from ..model.run import RunInfo
from ..model.steps import OTHER_PARTS, PHASES, OtherParts, PhaseValues
from .places import TracePlaces

__all__ = [
    "EpochStats", "HostSummary", "LoaderSummary", "OperatorRow", "RunData", "RunInfo", "StepSeries", "StepStats",
    "TraceSummary",
]


@dataclass
class StepSeries:
    """One entry per step, in step order (durations exclude perfdoctor's own overhead)."""

    duration_ms: list[float] = field(default_factory=list)
    # The steps' own numbers where they have them (a trace's ProfilerStep#N); empty: 0, 1, 2...
    numbers: list[int] = field(default_factory=list)
    phases_ms: dict[str, list[float]] = field(default_factory=lambda: {phase: [] for phase in PHASES})
    other_parts_ms: dict[str, list[float]] = field(default_factory=lambda: {part: [] for part in OTHER_PARTS})
    batches: list[int] = field(default_factory=list)
    profiled: list[bool] = field(default_factory=list)
    mode: Literal["optimizer", "batch", "trace"] | None = None  # None: no step seen

    def __len__(self) -> int:
        return len(self.duration_ms)

    def number(self, index: int) -> int:
        """The step's own number (its index when the series has none)."""
        return self.numbers[index] if len(self.numbers) == len(self.duration_ms) else index


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
    breakdown: PhaseValues | None = None  # fractions of step time, summing to 1
    breakdown_ms: PhaseValues | None = None  # mean ms per step
    other_parts: OtherParts | None = None  # OTHER_PARTS as fractions of step time
    source: str = "step clock"


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
    # The job's producing threads (the thread in next(), the workers) asked for this share of the
    # usable cores while long waits ran: running, or runnable and waiting for a CPU.
    cores_busy_in_waits: float | None = None
    # They filled the cores while the step waited on this loader, so more workers cannot help:
    # one fact, decided once in analysis/dataloader.py (`cores_saturated`), read by every rule.
    cores_saturated: bool = False
    job_cores_in_waits: float | None = None  # the same in cores
    job_cpu_wait_share_in_waits: float | None = None  # of that, the share spent waiting for a CPU
    ready_wait_ms: float = 0.0  # waits for batches already delivered by workers: receiving cost
    # "probe": perfdoctor's DataLoader probe measured it (arguments, epochs, busy cores); "trace":
    # read from a foreign trace's DataLoader ranges, which show the waits and the iterator class
    # only: no arguments but what the class implies, no epochs, no busy-core evidence.
    source: str = "probe"
    iterator: str | None = None  # the iterator class a trace names (_SingleProcessDataLoaderIter...)

    @property
    def num_workers(self) -> int:
        return int(self.args.get("num_workers") or 0)

    @property
    def num_workers_known(self) -> bool:
        """False for a trace's multi-process (or unknown) iterator: it has workers, how many is unknown."""
        return self.source != "trace" or "num_workers" in self.args

    @property
    def batch_size(self) -> int | None:
        value = self.args.get("batch_size")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def pins_memory(self) -> bool:
        return bool(self.args.get("pin_memory"))

    @property
    def persistent_workers(self) -> bool:
        return bool(self.args.get("persistent_workers"))


@dataclass
class TraceSummary:
    files: list[str]
    windows: int
    top_operators: list[OperatorRow] = field(default_factory=list)
    ops_per_step: float | None = None
    median_op_us: float | None = None
    small_op_share: float | None = None  # share of step time in ops shorter than the small-op bar
    gap_share: float | None = None  # share of step time on the main thread outside any op
    step_ms: float | None = None  # mean profiled step, as the trace measured it
    breakdown: PhaseValues | None = None  # trace-derived, for runs perfdoctor did not record
    comm: TraceComm | None = None  # collectives per step
    named_op_ms: dict[str, float] = field(default_factory=dict)  # ms per step in ops some rules ask about
    skipped: list[str] = field(default_factory=list)
    places: TracePlaces = field(default_factory=TracePlaces)  # where in the trace findings can point


@dataclass
class RunData:
    run: RunInfo
    environment: Environment
    steps: StepStats
    series: StepSeries
    dataloaders: list[LoaderSummary] = field(default_factory=list)
    host: HostSummary | None = None
    trace: TraceSummary | None = None
    gpu: GpuSection | None = None
    ddp: DdpSection | None = None
    profiler: ProfilerSection | None = None
    notes: list[str] = field(default_factory=list)
    memory: MemorySection | None = None
