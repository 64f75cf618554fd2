"""The shapes raw data must have before the analysis reads it: each stream record, by its kind,
and each assembled raw file (what `RUN/raw/<name>.json` held before streaming).

The analysis does arithmetic on raw data; a value of the wrong type (a string for a number, a
list for a count), an impossible one (a negative duration, a GPU at 150% utilization) or
columns of different lengths would make it raise or, worse, report nonsense. So raw data is
checked here, at the edge, with msgspec (checked, never converted: the dicts the analysis reads
stay as they were written):

- a stream record that does not have its kind's shape is skipped and counted (`check_records`);
  a record of a kind this perfdoctor does not know is left alone (a newer perfdoctor's);
- an assembled raw file that does not have its shape costs its own section, with a note
  (`analysis/load.py`); assembled from records that passed, it always has it.

Numbers are already finite and within 64 bits when they get here: the decoders refuse `NaN`,
`1e400` and integers of hundreds of digits (see jsonfile.py and lines.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ..model.ddp import DataParallelInstance, DdpInstance, ProcessGroup
from ..model.gpu import OptimizerConfig
from ..model.numbers import Count, NonNegative, Positive, Share
from .assemble import HOST_COLUMNS, MEMORY_COLUMNS, STEP_COLUMNS

Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]  # NVML's utilization
Cores = Annotated[list[NonNegative], msgspec.Meta(min_length=1)]  # every core's CPU percent


class Shape(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """A raw shape: fields not named here are allowed (a newer perfdoctor's) and left unchecked."""


def _same_length(owner: Shape, names: tuple[str, ...], reference: str, required: tuple[str, ...] = ()) -> None:
    """Columns `names` of `owner` hold one value per entry of `reference` (an empty column is
    absent: an older writer's); those in `required` must be there whenever `reference` is not empty."""
    count = len(getattr(owner, reference))
    for name in names:
        column = getattr(owner, name, None)
        if column is None:  # a column this shape does not describe
            continue
        if (column or (count and name in required)) and len(column) != count:
            raise ValueError(f"{name} has {len(column)} values for {count} {reference} values")


# --- run ------------------------------------------------------------------------------------------


class RawError(Shape, kw_only=True):
    type: str | None = None
    message: str | None = None


class RawRun(Shape, kw_only=True):
    """The run record: `start`, `session`, `end` and `outcome` are each a part of it."""

    script: str | None = None
    module: str | None = None
    argv: list[str] = msgspec.field(default_factory=list)
    exit_code: int | None = None
    status: str | None = None
    started: str | None = None
    duration_s: NonNegative | None = None
    world_size: Positive | None = None
    max_steps: Positive | None = None
    error: RawError | None = None
    notes: list[str] = msgspec.field(default_factory=list)
    collector_errors: dict[str, str] = msgspec.field(default_factory=dict)


# --- steps ----------------------------------------------------------------------------------------

class StepColumns(Shape, kw_only=True):
    start_ns: list[Count] = msgspec.field(default_factory=list)
    end_ns: list[Count] = msgspec.field(default_factory=list)
    dataloader_ns: list[Count] = msgspec.field(default_factory=list)
    forward_ns: list[Count] = msgspec.field(default_factory=list)
    backward_ns: list[Count] = msgspec.field(default_factory=list)
    optimizer_ns: list[Count] = msgspec.field(default_factory=list)
    overhead_ns: list[Count] = msgspec.field(default_factory=list)
    before_forward_ns: list[Count] = msgspec.field(default_factory=list)
    loss_ns: list[Count] = msgspec.field(default_factory=list)
    batches: list[Count] = msgspec.field(default_factory=list)


class StepChunk(StepColumns, kw_only=True):
    """Consecutive steps from index `first`: every column written holds one value per step."""

    first: Count | None = None

    def __post_init__(self) -> None:
        _same_length(self, STEP_COLUMNS, "start_ns", required=("end_ns",))


StepMode = Literal["optimizer", "backward", "batch"]  # collect/stepclock.py MODE_*


class RawSteps(StepColumns, kw_only=True):
    mode: StepMode | None = None
    optimizers: list[OptimizerConfig] = msgspec.field(default_factory=list)
    origin_unix_s: NonNegative | None = None


# --- dataloader -----------------------------------------------------------------------------------


class EpochState(Shape, kw_only=True):
    start_ns: int | None = None
    iter_ns: Count = 0
    first_batch_ns: Count | None = None
    batches: Count = 0
    wait_ns: Count = 0
    end_ns: Count = 0


class EpochRecord(EpochState, kw_only=True):
    loader: Count
    index: Count


class LoaderRecord(Shape, kw_only=True):
    id: Count
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    dataset: dict[str, Any] = msgspec.field(default_factory=dict)


class WaitsRecord(Shape, kw_only=True):
    loader: Count
    ns: list[Count] = msgspec.field(default_factory=list)


class TotalsRecord(Shape, kw_only=True):
    loader: Count
    ready_wait_ns: Count = 0
    unknown_wait_ns: Count = 0
    job_run_ns: Count | None = None  # the job's producing threads while long waits ran
    job_wait_ns: Count | None = None
    job_demand_ns: Count | None = None  # streams from before it was measured lack it
    wall_ns: Count | None = None
    busy_ticks: Count = 0  # older streams: the machine's busy ticks
    total_ticks: Count = 0


class Ticks(Shape, kw_only=True):
    job_run_ns: Count | None = None
    job_wait_ns: Count | None = None
    job_demand_ns: Count | None = None
    wall_ns: Count | None = None
    busy_ticks: Count = 0
    total_ticks: Count = 0

    def __post_init__(self) -> None:
        if self.busy_ticks > self.total_ticks:
            raise ValueError(f"{self.busy_ticks} busy ticks of {self.total_ticks}")


class RawLoader(LoaderRecord, kw_only=True):
    epochs: list[EpochState] = msgspec.field(default_factory=list)
    batch_wait_ns: list[Count] = msgspec.field(default_factory=list)
    ready_wait_ns: Count = 0
    unknown_wait_ns: Count = 0
    cpu_in_long_waits: Ticks | None = None


class RawDataLoader(Shape, kw_only=True):
    loaders: list[RawLoader] = msgspec.field(default_factory=list)


# --- host -----------------------------------------------------------------------------------------

HOST_TIMELINE = ("step", "process_cpu", "children_cpu", "system_cpu", "core_cpu", "rss")  # always sampled


class HostMeta(Shape, kw_only=True):
    interval_s: NonNegative | None = None
    logical_cores: Count | None = None
    physical_cores: Count | None = None
    memory_limit_bytes: Count | None = None
    memory_limit_source: str | None = None
    cpu_sources: dict[str, Any] | None = None


class HostSample(Shape, kw_only=True):
    t_ns: Count
    step: Count
    process_cpu: NonNegative | None = None
    children_cpu: NonNegative | None = None
    children: Count | None = None
    system_cpu: NonNegative | None = None
    core_cpu: Cores
    rss: Count
    children_rss: Count | None = None
    threads: Count | None = None
    ctx_switches_involuntary: Count | None = None
    memory_used_bytes: Count | None = None
    # the job's CPU against everyone else's (collect/cpu.py); absent where a source is missing
    tree_processes: Count | None = None
    tree_cpu: NonNegative | None = None
    others_cpu: NonNegative | None = None
    top_others: list[tuple[str, NonNegative]] | None = None
    tree_threads: Count | None = None
    tree_run_ms: NonNegative | None = None
    tree_wait_ms: NonNegative | None = None
    main_run_ms: NonNegative | None = None
    main_wait_ms: NonNegative | None = None
    throttled_periods: Count | None = None
    throttled_ms: NonNegative | None = None
    pressure_some: Share | None = None
    cgroup_pressure_some: Share | None = None


class HostColumns(Shape, kw_only=True):
    t_ns: list[Count] = msgspec.field(default_factory=list)
    step: list[Count] = msgspec.field(default_factory=list)
    process_cpu: list[NonNegative | None] = msgspec.field(default_factory=list)
    children_cpu: list[NonNegative | None] = msgspec.field(default_factory=list)
    children: list[Count | None] = msgspec.field(default_factory=list)
    system_cpu: list[NonNegative | None] = msgspec.field(default_factory=list)
    core_cpu: list[Cores] = msgspec.field(default_factory=list)
    rss: list[Count] = msgspec.field(default_factory=list)
    children_rss: list[Count | None] = msgspec.field(default_factory=list)
    threads: list[Count | None] = msgspec.field(default_factory=list)
    ctx_switches_involuntary: list[Count | None] = msgspec.field(default_factory=list)
    memory_used_bytes: list[Count | None] = msgspec.field(default_factory=list)
    tree_processes: list[Count | None] = msgspec.field(default_factory=list)
    tree_cpu: list[NonNegative | None] = msgspec.field(default_factory=list)
    others_cpu: list[NonNegative | None] = msgspec.field(default_factory=list)
    top_others: list[list[tuple[str, NonNegative]] | None] = msgspec.field(default_factory=list)
    tree_threads: list[Count | None] = msgspec.field(default_factory=list)
    tree_run_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    tree_wait_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    main_run_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    main_wait_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    throttled_periods: list[Count | None] = msgspec.field(default_factory=list)
    throttled_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    pressure_some: list[Share | None] = msgspec.field(default_factory=list)
    cgroup_pressure_some: list[Share | None] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _same_length(self, HOST_COLUMNS[1:], "t_ns", required=HOST_TIMELINE)


class RawHost(HostMeta, kw_only=True):
    samples: HostColumns | None = None
    error: str | None = None


# --- gpu (NVML) -----------------------------------------------------------------------------------


class GpuDeviceInfo(Shape, kw_only=True):
    index: Count
    name: str | None = None
    uuid: str | None = None
    memory_total_bytes: Count | None = None
    power_limit_w: NonNegative | None = None
    sm_clock_max_mhz: NonNegative | None = None


class GpuMeta(Shape, kw_only=True):
    interval_s: NonNegative | None = None
    pid: int | None = None
    driver_version: str | None = None
    devices: list[GpuDeviceInfo] = msgspec.field(default_factory=list)


class GpuReading(Shape, kw_only=True):
    index: Count
    utilization_gpu: Percent | None = None
    utilization_memory: Percent | None = None
    memory_used_bytes: Count | None = None
    sm_clock_mhz: NonNegative | None = None
    memory_clock_mhz: NonNegative | None = None
    power_w: NonNegative | None = None
    temperature_c: float | None = None
    throttle_reasons: list[str] | None = None
    pcie_rx_bytes_per_s: NonNegative | None = None
    pcie_tx_bytes_per_s: NonNegative | None = None
    process_memory_bytes: Count | None = None


class GpuSample(Shape, kw_only=True):
    t_ns: Count
    step: Count
    devices: list[GpuReading] = msgspec.field(default_factory=list)


class Unsupported(Shape, kw_only=True):
    index: Count
    what: list[str] = msgspec.field(default_factory=list)


class GpuColumns(Shape, kw_only=True):
    utilization_gpu: list[Percent | None] = msgspec.field(default_factory=list)
    utilization_memory: list[Percent | None] = msgspec.field(default_factory=list)
    memory_used_bytes: list[Count | None] = msgspec.field(default_factory=list)
    sm_clock_mhz: list[NonNegative | None] = msgspec.field(default_factory=list)
    memory_clock_mhz: list[NonNegative | None] = msgspec.field(default_factory=list)
    power_w: list[NonNegative | None] = msgspec.field(default_factory=list)
    temperature_c: list[float | None] = msgspec.field(default_factory=list)
    throttle_reasons: list[list[str] | None] = msgspec.field(default_factory=list)
    pcie_rx_bytes_per_s: list[NonNegative | None] = msgspec.field(default_factory=list)
    pcie_tx_bytes_per_s: list[NonNegative | None] = msgspec.field(default_factory=list)
    process_memory_bytes: list[Count | None] = msgspec.field(default_factory=list)


class RawGpuDevice(GpuDeviceInfo, kw_only=True):
    unsupported: list[str] = msgspec.field(default_factory=list)
    samples: GpuColumns = msgspec.field(default_factory=GpuColumns)


class RawGpu(Shape, kw_only=True):
    available: bool = False
    reason: str | None = None
    interval_s: NonNegative | None = None
    pid: int | None = None
    driver_version: str | None = None
    t_ns: list[Count] = msgspec.field(default_factory=list)
    step: list[Count] = msgspec.field(default_factory=list)
    devices: list[RawGpuDevice] = msgspec.field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        _same_length(self, ("step",), "t_ns", required=("step",))


# --- memory -------------------------------------------------------------------------------------


class MemoryMeta(Shape, kw_only=True):
    limit_bytes: Count | None = None
    limit_source: str | None = None
    budget_share: NonNegative | None = None
    samples_per_age: NonNegative | None = None
    pid: Count | None = None


Bytes = list[Count | None]  # None where a value was not read


class MemoryChunk(Shape, kw_only=True):
    """Consecutive samples from index `first`: every column written holds one value per sample."""

    first: Count | None = None
    step: list[Count] = msgspec.field(default_factory=list)
    t_ns: list[Count] = msgspec.field(default_factory=list)
    rss: Bytes = msgspec.field(default_factory=list)
    children_rss: Bytes = msgspec.field(default_factory=list)
    children: Bytes = msgspec.field(default_factory=list)
    cuda_allocated: Bytes = msgspec.field(default_factory=list)
    cuda_reserved: Bytes = msgspec.field(default_factory=list)
    cuda_peak_allocated: Bytes = msgspec.field(default_factory=list)
    cuda_peak_reserved: Bytes = msgspec.field(default_factory=list)
    cuda_alloc_retries: Bytes = msgspec.field(default_factory=list)
    cuda_inactive_split: Bytes = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _same_length(self, MEMORY_COLUMNS, "step", required=("t_ns",))


class CudaDevice(Shape, kw_only=True):
    device: Count | None = None
    name: str | None = None
    total_bytes: Count | None = None
    memory_fraction: Share | None = None
    limit_bytes: Count | None = None
    peaks_per_window: bool | None = None
    alloc_conf: str | None = None


class OomRecord(Shape, kw_only=True):
    kind: str | None = None
    step: Count | None = None
    t_ns: Count | None = None
    error_type: str | None = None
    message: str | None = None
    phase: str | None = None
    module_type: str | None = None
    module_path: str | None = None
    source: str | None = None
    rss_bytes: Count | None = None
    cuda: dict[str, Any] | None = None


class Cost(Shape, kw_only=True):
    ns: Count
    samples: Count


# --- profiler, ddp, settings ----------------------------------------------------------------------


class Window(Shape, kw_only=True):
    start: Count
    steps: Count


class Output(Shape, kw_only=True):
    folder: str
    worker: str


class TraceRecord(Shape, kw_only=True):
    path: str
    export_s: NonNegative | None = None


class Export(Shape, kw_only=True):
    status: str | None = None
    reason: str | None = None


class StoodAside(Shape, kw_only=True):
    at_step: Count | None = None
    reason: str | None = None


class DdpInstanceRecord(DdpInstance, kw_only=True):
    index: Count


class Logged(Shape, kw_only=True):
    index: Count
    logged: dict[str, Any] | None = None


class Forwards(Shape, kw_only=True):
    first: Count | None = None
    synced: list[Count] = msgspec.field(default_factory=list)
    unsynced: list[Count] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _same_length(self, ("unsynced",), "synced", required=("unsynced",))


class RawSettings(Shape, kw_only=True):
    taken_at: str | None = None  # the blocks are checked one by one (analysis/load.py)


# --- by stream and record kind --------------------------------------------------------------------


def _record(kind: str, shape: Any, **siblings: Any) -> type[msgspec.Struct]:
    """The shape of a record `{kind: ...}` (with optional sibling keys)."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [(kind, shape)]
    fields += [(name, value, None) for name, value in siblings.items()]
    return msgspec.defstruct(kind, fields, kw_only=True)


RECORDS: dict[str, dict[str, type[msgspec.Struct]]] = {
    "run": {kind: _record(kind, RawRun) for kind in ("start", "session", "end", "outcome")},
    "steps": {
        "steps": _record("steps", StepChunk), "mode": _record("mode", StepMode | None),
        "optimizer": _record("optimizer", OptimizerConfig), "origin_unix_s": _record("origin_unix_s", NonNegative),
    },
    "dataloader": {
        "loader": _record("loader", LoaderRecord), "epoch": _record("epoch", EpochRecord),
        "waits": _record("waits", WaitsRecord), "totals": _record("totals", TotalsRecord),
    },
    "host": {"meta": _record("meta", HostMeta), "sample": _record("sample", HostSample), "error": _record("error", str | None)},
    "gpu": {
        "unavailable": _record("unavailable", str), "meta": _record("meta", GpuMeta), "sample": _record("sample", GpuSample),
        "unsupported": _record("unsupported", Unsupported), "error": _record("error", str | None),
    },
    "profiler": {
        "window": _record("window", Window, output=Output | None), "profiled": _record("profiled", Count),
        "trace": _record("trace", TraceRecord), "export": _record("export", Export | None),
        "stood_aside": _record("stood_aside", StoodAside | None),
    },
    "ddp": {
        "process_group": _record("process_group", ProcessGroup | None), "ddp": _record("ddp", DdpInstanceRecord),
        "logged": _record("logged", Logged), "data_parallel": _record("data_parallel", DataParallelInstance),
        "forwards": _record("forwards", Forwards),
    },
    "settings": {"settings": _record("settings", dict[str, Any]), "update": _record("update", dict[str, Any])},
    "memory": {
        "meta": _record("meta", MemoryMeta), "samples": _record("samples", MemoryChunk), "cuda": _record("cuda", CudaDevice),
        "oom": _record("oom", OomRecord), "cost": _record("cost", Cost), "error": _record("error", str | None),
    },
}

# Assembled raw files (and the files of runs from before streaming). The profiler's and DDP's
# are the report model's own sections, typed in analysis/load.py; settings are typed block by block.
SECTIONS: dict[str, type] = {
    "run": RawRun, "steps": RawSteps, "dataloader": RawDataLoader, "host": RawHost, "gpu": RawGpu,
    "settings": RawSettings,
}


def record_error(stream: str, record: dict[str, Any]) -> str | None:
    """Why a record of `stream` does not have its kind's shape; None when it does (or when its
    kind is not one this perfdoctor knows)."""
    for kind, shape in RECORDS.get(stream, {}).items():
        if kind in record:
            try:
                msgspec.convert({key: record[key] for key in shape.__struct_fields__ if key in record}, shape)
            except msgspec.ValidationError as error:
                return f"{kind}: {' '.join(str(error).split())}"
    return None


def check_records(stream: str, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of `stream` that have their kind's shape, and why each other one does not."""
    kept: list[dict[str, Any]] = []
    rejected: list[str] = []
    for record in records:
        error = record_error(stream, record)
        if error is None:
            kept.append(record)
        else:
            rejected.append(error)
    return kept, rejected
