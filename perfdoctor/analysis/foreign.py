"""RunData from traces perfdoctor did not record: one `*.pt.trace.json[.gz]` per rank, from any
PyTorch version. Steps are the traces' ProfilerStep windows (or the whole trace), split into
phases by the trace analysis; with several ranks, each rank is summarised and merged as for a
distributed run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PerfdoctorError
from ..model.environment import Cuda, CudaDevice, DistributedInfo, Environment, compute_capability
from ..model.run import RunInfo
from ..model.steps import PHASES
from ..trace.errors import shown
from .rundata import RunData, StepSeries, TraceSummary
from .steps import step_stats

if TYPE_CHECKING:
    from ..trace import Trace


def load_traces(files: list[Path], skipped: list[str] | None = None) -> RunData:
    """RunData from trace files (as listed by perfdoctor.inputs); `skipped`: directory entries
    that were not usable files, for the notes. Every trace left out, and every trace read only in
    part, is named in the notes."""
    from ..trace import TraceError, read_trace

    loaded: list[tuple[Path, Trace]] = []
    unreadable = list(skipped or [])
    for path in files:
        try:
            loaded.append((path, read_trace(path)))
        except TraceError as error:  # its message names the file
            if len(files) == 1 and not skipped:
                raise PerfdoctorError(str(error)) from None
            unreadable.append(str(error))
    if not loaded:
        raise PerfdoctorError(f"no readable trace among {len(unreadable)}: " + "; ".join(unreadable))
    ranked = sorted(((rank_of(trace, i), path, trace) for i, (path, trace) in enumerate(loaded)), key=lambda item: item[0])
    per_rank = [(rank, data_from_trace(path, trace)) for rank, path, trace in ranked]
    data = per_rank[0][1]
    partial = [f"{shown(path)} ({trace.skipped.summary()})" for _, path, trace in ranked if trace.skipped]
    if len(unreadable) > 1:
        data.notes.append(f"Skipped {len(unreadable)} unreadable trace{'s' if len(unreadable) > 1 else ''}: " + "; ".join(unreadable))
    elif unreadable:
        data.notes.append(f"Skipped an unreadable trace: {unreadable[0]}")
    if len(loaded) > 1 and partial:
        data.notes.append(f"Read {len(partial)} of {len(loaded)} traces only in part: " + "; ".join(partial))
    if len(per_rank) > 1:
        from .ranks import merge_ranks, rank_summary

        summaries = [rank_summary(rank_data, None, rank, None) for rank, rank_data in per_rank]
        world = max(trace.metadata.world_size or 0 for _, _, trace in ranked)
        data.ddp = merge_ranks(summaries, world or len(per_rank))
        data.run.ranks = world or len(per_rank)
        data.notes.append(f"{len(per_rank)} traces read, one per rank; the sections above show rank {per_rank[0][0]}.")
    return data


def rank_of(trace: Trace, fallback: int) -> int:
    rank = trace.metadata.rank
    return rank if rank is not None else fallback


def data_from_trace(path: Path, trace: Trace) -> RunData:
    from ..trace.steps import step_windows
    from .trace_summary import step_breakdowns, summarize_trace

    summary = summarize_trace(trace, TraceSummary(files=[shown(path)], windows=0))
    windows = step_windows(trace)
    series = StepSeries(mode="trace")
    for step in step_breakdowns(trace):
        series.duration_ms.append(step.duration_ns / 1e6)
        for phase in PHASES:
            series.phases_ms[phase].append(getattr(step, f"{phase}_ns") / 1e6)
        series.profiled.append(True)
        series.batches.append(0)
    for part in series.other_parts_ms:
        series.other_parts_ms[part] = [0.0] * len(series)
    stats = step_stats(series)
    stats.source = "trace"
    stats.other_parts = None  # a trace cannot tell the loss from other loop work
    notes = []
    if windows and windows[0].synthetic:
        notes.append("The trace has no ProfilerStep ranges: the whole trace is treated as one step.")
    if summary.skipped:
        notes.append("Parts of the trace were unusable and skipped: " + "; ".join(summary.skipped))
    from .gpu import gpu_section

    environment = environment_from_trace(trace)
    return RunData(
        run=RunInfo(script=shown(Path(path.name)), status="completed", source="trace", ranks=1),
        environment=environment,
        steps=stats,
        series=series,
        trace=summary,
        gpu=gpu_section(trace, environment=environment),
        notes=notes,
    )


def environment_from_trace(trace: Trace) -> Environment:
    metadata = trace.metadata
    environment = Environment()
    if metadata.device_properties:
        environment.cuda = Cuda(
            available=True,
            devices=[
                CudaDevice(
                    index=device.get("id"),
                    name=device.get("name"),
                    capability=compute_capability(device.get("computeMajor"), device.get("computeMinor")),
                    total_memory_bytes=device.get("totalGlobalMem"),
                )
                for device in metadata.device_properties
            ],
        )
    if metadata.distributed_info:
        environment.distributed = DistributedInfo(rank=metadata.rank, world_size=metadata.world_size, backend=metadata.backend)
    return environment
