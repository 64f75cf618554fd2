"""RunData from traces perfdoctor did not record: one `*.pt.trace.json[.gz]` per rank, from any
PyTorch version. Steps are the traces' ProfilerStep windows (or the whole trace), keeping their
own numbers, split into phases by the trace analysis; with several ranks, each rank is
summarised and merged as for a distributed run.

One step time for every share: the step statistics leave the first profiled step out as
warm-up (analysis/steps.py), and the trace summary, the GPU section and the DataLoader
evidence are taken over those same measured steps, so every share in the report is a share of
one mean step (`steps.time_ms.mean`; docs/contracts.md).

Which rank a trace is: its `distributedInfo` rank, else a rank in its file name (or its
folder's), else unknown. Ranks are never numbered by file order (rank_from_name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PerfdoctorError
from ..model.environment import Cuda, CudaDevice, DistributedInfo, Environment, compute_capability
from ..model.run import RunInfo
from ..model.steps import PHASES
from ..trace.errors import shown
from .rundata import RunData, StepSeries, TraceSummary
from .steps import steady_steps, step_stats

if TYPE_CHECKING:
    from ..trace import Trace
    from ..trace.steps import StepWindow

# "rank10", "rank-3", "_rank_2_", "Rank.4", HTA's "rank-0.Apr_03_18_51_38.1102.pt.trace.json",
# torchtitan's "rank0_trace.json": "rank" not preceded by a letter or digit, an optional
# separator, then the number (a longer run of digits is not cut short).
_RANK_IN_NAME = re.compile(r"(?<![A-Za-z0-9])rank[-_.]?(\d+)(?!\d)", re.IGNORECASE)


@dataclass
class RankedTrace:
    """A trace, and which rank it is by what evidence."""

    path: Path
    trace: Trace
    rank: int | None
    rank_from: str | None  # "distributedInfo", "file name", "folder name"; None: unknown

    @property
    def label(self) -> str:
        return f"rank {self.rank}" if self.rank is not None else f"{shown(self.path.name)} (rank unknown)"


def rank_from_name(path: Path) -> tuple[int | None, str | None]:
    """The rank a trace's file name (else its folder's name) gives, and which of them gave it;
    (None, None) when neither names exactly one rank."""
    for part, where in ((path.name, "file name"), (path.parent.name, "folder name")):
        found = {int(number) for number in _RANK_IN_NAME.findall(part)}
        if len(found) == 1:
            return found.pop(), where
    return None, None


def rank_of(path: Path, trace: Trace) -> RankedTrace:
    rank = trace.metadata.rank
    if rank is not None and rank >= 0:
        return RankedTrace(path, trace, rank, "distributedInfo")
    named, where = rank_from_name(path)
    return RankedTrace(path, trace, named, where)


def load_traces(files: list[Path], skipped: list[str] | None = None) -> RunData:
    """RunData from trace files (as listed by perfdoctor.inputs); `skipped`: directory entries
    that were not usable files, for the notes. Every trace left out, and every trace read only in
    part, is named in the notes."""
    from ..trace import TraceError, read_trace

    loaded: list[RankedTrace] = []
    unreadable = list(skipped or [])
    for path in files:
        try:
            loaded.append(rank_of(path, read_trace(path)))
        except TraceError as error:  # its message names the file
            if len(files) == 1 and not skipped:
                raise PerfdoctorError(str(error)) from None
            unreadable.append(str(error))
    if not loaded:
        raise PerfdoctorError(f"no readable trace among {len(unreadable)}: " + "; ".join(unreadable))
    ranked = sorted(loaded, key=lambda r: (r.rank is None, r.rank if r.rank is not None else 0, r.path.name))
    per_rank = [(entry, data_from_trace(entry.path, entry.trace)) for entry in ranked]
    data = per_rank[0][1]
    if len(unreadable) > 1:
        data.notes.append(f"Skipped {len(unreadable)} unreadable trace{'s' if len(unreadable) > 1 else ''}: " + "; ".join(unreadable))
    elif unreadable:
        data.notes.append(f"Skipped an unreadable trace: {unreadable[0]}")
    if len(per_rank) > 1:
        _merge(data, per_rank)
    return data


def _merge(data: RunData, per_rank: list[tuple[RankedTrace, RunData]]) -> None:
    from .ranks import merge_ranks, rank_summary

    partial = [entry for entry, _ in per_rank if entry.trace.skipped]
    if partial:
        data.notes.append(
            f"Read {len(partial)} of {len(per_rank)} traces only in part, so their ranks' numbers cover what was usable: "
            + "; ".join(f"{entry.label}: {shown(entry.path)} ({entry.trace.skipped.summary()})" for entry in partial)
        )
    summaries = []
    for entry, rank_data in per_rank:
        summary = rank_summary(rank_data, None, entry.rank, None)
        summary.trace_file = shown(entry.path.name)
        summary.rank_from = entry.rank_from
        summary.partial = entry.trace.skipped.summary() if entry.trace.skipped else None
        summaries.append(summary)
    # The job has at least as many ranks as any distributedInfo says, as traces were read, and
    # one more than the highest rank seen (a directory may hold only some ranks' traces).
    known = [entry.rank for entry, _ in per_rank if entry.rank is not None]
    world = max([entry.trace.metadata.world_size or 0 for entry, _ in per_rank] + [len(per_rank), max(known, default=-1) + 1])
    data.ddp = merge_ranks(summaries, world)
    data.ddp.backend = data.ddp.backend or next((e.trace.metadata.backend for e, _ in per_rank if e.trace.metadata.backend), None)
    data.run.ranks = world
    unknown = [shown(entry.path.name) for entry, _ in per_rank if entry.rank is None]
    if unknown:
        data.notes.append(
            f"The rank of {len(unknown)} trace{'s' if len(unknown) > 1 else ''} is unknown (no distributedInfo, no rank in "
            "the file or folder name): shown by file name, never numbered by file order: " + ", ".join(unknown)
        )
    by_name = [entry for entry, _ in per_rank if entry.rank_from in ("file name", "folder name")]
    if by_name:
        data.notes.append(
            "Ranks taken from the traces' file or folder names (they have no distributedInfo): "
            + ", ".join(f"{shown(entry.path.name)} is rank {entry.rank}" for entry in by_name)
        )
    for entry, _ in per_rank:
        named, _where = rank_from_name(entry.path)
        if entry.rank_from == "distributedInfo" and named is not None and named != entry.rank:
            data.notes.append(f"{shown(entry.path.name)} is rank {entry.rank} by its distributedInfo, although its name says rank {named}.")
    counts: dict[int, int] = {}
    for entry, _ in per_rank:
        if entry.rank is not None:
            counts[entry.rank] = counts.get(entry.rank, 0) + 1
    for rank, count in sorted(counts.items()):
        if count > 1:
            data.notes.append(f"{count} traces are rank {rank}: each has its own row in the per-rank table.")
    first = per_rank[0][0]
    data.notes.append(f"{len(per_rank)} traces read, one per rank; the sections above show {first.label} ({shown(first.path.name)}).")


def data_from_trace(path: Path, trace: Trace) -> RunData:
    from ..trace.steps import step_windows
    from ..trace.vendor import trace_vendor
    from .gpu import gpu_section
    from .trace_loaders import loaders_from_trace
    from .trace_summary import step_breakdowns, summarize_trace

    windows = step_windows(trace)
    series = StepSeries(mode="trace")
    for step in step_breakdowns(trace):
        series.duration_ms.append(step.duration_ns / 1e6)
        for phase in PHASES:
            series.phases_ms[phase].append(getattr(step, f"{phase}_ns") / 1e6)
        series.profiled.append(True)
        series.batches.append(0)
    series.numbers = [window.number for window in windows]
    for part in series.other_parts_ms:
        series.other_parts_ms[part] = [0.0] * len(series)
    stats = step_stats(series)
    stats.source = "trace"
    stats.other_parts = None  # a trace cannot tell the loss from other loop work
    chosen = steady_steps(series)[0] if len(series) else []
    measured = [windows[i] for i in chosen]
    stats.excluded = _excluded(windows, chosen)
    summary = summarize_trace(trace, TraceSummary(files=[shown(path)], windows=0), measured)
    notes = []
    if windows and windows[0].synthetic:
        notes.append("The trace has no ProfilerStep ranges: the whole trace is treated as one step.")
    if summary.skipped:
        notes.append("Parts of the trace were unusable and skipped: " + "; ".join(summary.skipped))
    if trace_vendor(trace) == "amd":
        notes.append(
            "An AMD GPU (ROCm): its deviceProperties give a GCN architecture, not a CUDA compute capability, so the "
            "rules that depend on one (tf32-disabled, amp-not-enabled, channels-last) do not judge it; and ROCm's "
            "copies do not say whether host memory was pinned, so pageable copies cannot be found."
        )
    environment = environment_from_trace(trace)
    return RunData(
        run=RunInfo(script=shown(Path(path.name)), status="completed", source="trace", ranks=1),
        environment=environment,
        steps=stats,
        series=series,
        dataloaders=loaders_from_trace(trace, windows),
        trace=summary,
        gpu=gpu_section(trace, environment=environment, measured=measured),
        notes=notes,
    )


def _excluded(windows: list[StepWindow], chosen: list[int]) -> str:
    """Which of the trace's steps the statistics leave out, named by the trace's own numbers."""
    if not windows or windows[0].synthetic:
        return "one step: the whole trace"
    left_out = [windows[i].number for i in range(len(windows)) if i not in set(chosen)]
    if not left_out:
        if len(windows) == 1:
            return "the only profiled step used"
        return f"all {len(windows)} profiled steps used (too few to leave out the first as warm-up)"
    shown_out = ", ".join(f"ProfilerStep#{number}" for number in left_out)
    return f"the first profiled step ({shown_out}) left out as warm-up"


def environment_from_trace(trace: Trace) -> Environment:
    from ..trace.vendor import trace_vendor

    metadata = trace.metadata
    environment = Environment()
    amd = trace_vendor(trace) == "amd"  # computeMajor/Minor are then a GCN architecture, not a capability
    if metadata.device_properties:
        environment.cuda = Cuda(
            available=True,
            devices=[
                CudaDevice(
                    index=device.get("id"),
                    name=device.get("name"),
                    capability=None if amd else compute_capability(device.get("computeMajor"), device.get("computeMinor")),
                    total_memory_bytes=device.get("totalGlobalMem"),
                )
                for device in metadata.device_properties
            ],
        )
    if metadata.distributed_info:
        environment.distributed = DistributedInfo(rank=metadata.rank, world_size=metadata.world_size, backend=metadata.backend)
    return environment
