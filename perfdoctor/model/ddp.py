"""The report's `ddp` section (the job's view, merged from every rank's summary), the rank
summary each rank writes (`raw/summary.rankN.json`, schema `perfdoctor.rank-summary/1`), and the
DDP collector's raw record they are made from.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .finding import TraceLocation
from .memory import RankMemory
from .run import Status
from .steps import PhaseValues

SUMMARY_SCHEMA = "perfdoctor.rank-summary/1"


class ProcessGroup(msgspec.Struct, kw_only=True):
    backend: str | None = None
    world_size: int | None = None
    rank: int | None = None


class DdpInstance(msgspec.Struct, kw_only=True):
    """One DistributedDataParallel model: its arguments, and DDP's own log (`logged`)."""

    module: str | None = None
    find_unused_parameters: bool = False
    static_graph: bool = False
    gradient_as_bucket_view: bool = False
    broadcast_buffers: bool | None = None
    bucket_cap_mb: float | None = None
    device_ids: list[int] = msgspec.field(default_factory=list)
    parameter_devices: list[str] = msgspec.field(default_factory=list)
    parameters: int | None = None
    parameter_bytes: int | None = None
    logged: dict[str, Any] | None = None  # torch's DDP logging data, as torch names it


class DataParallelInstance(msgspec.Struct, kw_only=True):
    module: str | None = None
    device_ids: list[int] = msgspec.field(default_factory=list)


class DdpRecord(msgspec.Struct, kw_only=True):
    """The DDP collector's raw file (`raw/ddp.json`) of one rank."""

    process_group: ProcessGroup | None = None
    ddp: list[DdpInstance] = msgspec.field(default_factory=list)
    data_parallel: list[DataParallelInstance] = msgspec.field(default_factory=list)
    synced_forwards: list[int] = msgspec.field(default_factory=list)  # per step
    unsynced_forwards: list[int] = msgspec.field(default_factory=list)


class TraceComm(msgspec.Struct, kw_only=True):
    """Collectives per profiled step, from a rank's trace."""

    comm_ms: float
    exposed_ms: float | None  # not hidden behind compute (device-side only)
    overlap_share: float | None
    where: str  # "device" or "host"
    collectives_per_step: dict[str, float]


class RankSummary(msgspec.Struct, kw_only=True):
    """What one rank measured, a few kilobytes whatever the size of its trace."""

    schema: str = SUMMARY_SCHEMA
    rank: int | None
    node: str | None
    status: Status
    exit_code: int | None
    steps: int
    step_p50_ms: float | None
    step_mean_ms: float | None
    breakdown_ms: PhaseValues | None
    local_p50_ms: float | None  # the step less the time spent waiting for the other ranks
    backward_compute_ms: float | None
    series_stride: int
    duration_ms: list[float]
    local_ms: list[float]
    synced_forwards_max: int | None
    synced_forwards_median: float | None
    unsynced_forwards_total: int
    ddp: list[DdpInstance]
    data_parallel: list[DataParallelInstance]
    process_group: ProcessGroup | None
    logged: dict[str, Any]
    comm_ms: float | None
    exposed_comm_ms: float | None
    trace_comm: TraceComm | None
    memory: RankMemory | None = None  # peaks and growth (analysis/memory.py)
    # The rank's training thread waiting for a CPU per step (whatever held it: other processes,
    # other ranks), and whether other processes took the machine's CPUs (host.contention).
    cpu_wait_ms_per_step: float | None = None
    machine_shared: bool | None = None
    slowest_step: TraceLocation | None = None  # this rank's slowest profiled step, in its own trace
    # Foreign traces: the rank's file, how its rank is known ("distributedInfo", "file name",
    # "folder name"; None with rank None: unknown), and what of it could not be read.
    trace_file: str | None = None
    rank_from: str | None = None
    partial: str | None = None


class RankRow(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One rank's row; the foreign-trace fields (which have defaults) are left out when unset."""

    rank: int | None
    node: str | None
    status: Status | None
    steps: int | None
    step_p50_ms: float | None
    local_p50_ms: float | None
    dataloader_ms: float | None
    forward_ms: float | None
    backward_ms: float | None
    optimizer_ms: float | None
    other_ms: float | None
    comm_ms: float | None
    exposed_comm_ms: float | None
    cpu_wait_ms_per_step: float | None = None  # its training thread waiting for a CPU, per step
    machine_shared: bool | None = None
    trace_file: str | None = None  # a foreign trace's file (its rank may be unknown: rank None)
    rank_from: str | None = None  # "distributedInfo", "file name", "folder name"; None: unknown
    partial: str | None = None  # the trace was read only in part: what was skipped

    def phase_ms(self, phase: str) -> float | None:
        value: float | None = getattr(self, f"{phase}_ms")
        return value

    def label(self) -> str:
        return rank_label(self.rank, self.trace_file)


def rank_label(rank: int | None, trace_file: str | None) -> str:
    """"rank 3", or for a trace whose rank is unknown, its file."""
    if rank is not None or not trace_file:
        return f"rank {rank}"
    return f"the rank of {trace_file} (rank unknown)"


class Straggler(msgspec.Struct, kw_only=True):
    rank: int | None
    local_p50_ms: float
    others_local_p50_ms: float
    others_wait_ms_per_step: float
    step_p50_ms: float | None
    slowest_step_share: float | None = None  # in what share of steps it was the slowest
    # The straggler's training thread waited this much longer for a CPU per step than the
    # others' (median): the part of its lag that is waiting for a CPU, not more work.
    extra_cpu_wait_ms: float | None = None
    trace_step: TraceLocation | None = None  # its slowest profiled step, in its own trace
    trace_file: str | None = None  # a foreign trace's file: names the rank when its number is unknown
    partial: str | None = None  # its trace was read only in part: what was skipped

    def label(self) -> str:
        return rank_label(self.rank, self.trace_file)


class DdpSection(msgspec.Struct, kw_only=True):
    backend: str | None
    world_size: int
    ranks_reported: int
    ranks: list[RankRow]
    straggler: Straggler | None
    comm_ms_per_backward: float | None
    exposed_comm_ms_per_backward: float | None
    comm_source: str | None
    collectives_per_step: dict[str, float] | None
    instances: list[DdpInstance]
    data_parallel: list[DataParallelInstance]
    synced_forwards_per_step_max: int
    synced_forwards_per_step_median: float | None
    unsynced_forwards_total: int
    logged: dict[str, Any]

    def first_instance(self) -> DdpInstance | None:
        return self.instances[0] if self.instances else None
