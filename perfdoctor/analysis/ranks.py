"""Distributed runs: each rank's compact summary, and the merge of all of them into the job's view.

Each rank summarises itself where it ran (`raw/summary.rankN.json`: a few kilobytes, whatever
the size of its trace); the merge reads only summaries, so its cost grows with the number of
ranks, not with their traces.

A rank's `local_ms` is the part of its step that does not wait on the others: the step less its
backward pass, plus the backward compute DDP itself measured (the rest of backward is waiting for
gradients to be all-reduced). The slowest rank by local time is the one the others wait for.
"""

from __future__ import annotations

import statistics
from typing import Any

from ..model.ddp import DdpRecord, DdpSection, RankRow, RankSummary, Straggler
from ..model.steps import PHASES
from .memory import rank_memory
from .rundata import RunData
from .steps import steady_steps

MAX_SERIES = 2000  # per-rank per-step series are thinned to about this many points
LOGGED_TIMES = ("avg_forward_compute_time", "avg_backward_compute_time", "avg_backward_comm_time", "avg_backward_compute_comm_overlap_time")


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ddp_logged(ddp_raw: DdpRecord | None) -> dict[str, Any]:
    """What DDP's own logger measured for the (first) DDP model, times in ms."""
    for instance in ddp_raw.ddp if ddp_raw else []:
        logged = instance.logged or {}
        if logged:
            out = dict(logged)
            for key in LOGGED_TIMES:
                value = logged.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                    out[key.replace("_time", "_ms")] = value / 1e6
            return out
    return {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rank_summary(data: RunData, ddp_raw: DdpRecord | None, rank: int | None, node: str | None) -> RankSummary:
    series = data.series
    chosen, _ = steady_steps(series) if len(series) else ([], "")
    logged = ddp_logged(ddp_raw)
    backward_compute = _number(logged.get("avg_backward_compute_ms"))
    comm_ms = _number(logged.get("avg_backward_comm_ms"))
    overlap = _number(logged.get("avg_backward_compute_comm_overlap_ms")) or 0.0
    exposed_ms = None if comm_ms is None else max(0.0, comm_ms - overlap)
    local: list[float] = []
    for i in range(len(series)):
        backward = series.phases_ms["backward"][i]
        kept = min(backward, backward_compute) if backward_compute is not None else 0.0
        local.append(series.duration_ms[i] - backward + kept)
    stride = max(1, -(-len(series) // MAX_SERIES))
    synced = ddp_raw.synced_forwards if ddp_raw else []
    unsynced = ddp_raw.unsynced_forwards if ddp_raw else []
    steady_synced = [synced[i] for i in chosen if i < len(synced)]
    steps = data.steps
    contention = data.host.contention if data.host else None
    return RankSummary(
        rank=rank,
        node=node,
        status=data.run.status,
        exit_code=data.run.exit_code,
        steps=steps.count,
        step_p50_ms=steps.p50_ms,
        step_mean_ms=steps.mean_ms,
        breakdown_ms=steps.breakdown_ms,
        local_p50_ms=_median([local[i] for i in chosen]),
        backward_compute_ms=backward_compute,
        series_stride=stride,
        duration_ms=[round(v, 3) for v in series.duration_ms[::stride]],
        local_ms=[round(v, 3) for v in local[::stride]],
        synced_forwards_max=max(steady_synced) if steady_synced else None,
        synced_forwards_median=_median([float(v) for v in steady_synced]),
        unsynced_forwards_total=sum(unsynced),
        ddp=ddp_raw.ddp if ddp_raw else [],
        data_parallel=ddp_raw.data_parallel if ddp_raw else [],
        process_group=ddp_raw.process_group if ddp_raw else None,
        logged=logged,
        comm_ms=comm_ms,
        exposed_comm_ms=exposed_ms,
        trace_comm=data.trace.comm if data.trace is not None else None,
        memory=rank_memory(data.memory, rank),
        cpu_wait_ms_per_step=contention.main_wait_any_ms_per_step if contention else None,
        machine_shared=contention.shared if contention else None,
        slowest_step=data.trace.places.slowest_step if data.trace is not None else None,
    )


def slowest_step_share(summaries: list[RankSummary], index: int) -> float | None:
    """In what share of steps (after the first) the rank at `index` had the longest local time:
    a real straggler is slowest nearly every step, a rank that merely drew the noise is not."""
    series = [s.local_ms for s in summaries]
    strides = {s.series_stride for s in summaries}
    length = min((len(values) for values in series), default=0)
    if len(strides) != 1 or length < 3:
        return None
    wins = sum(1 for i in range(1, length) if max(range(len(series)), key=lambda r: series[r][i]) == index)
    return wins / (length - 1)


def _comm_of(summary: RankSummary) -> tuple[float | None, float | None]:
    """(communication ms, exposed ms) per backward pass, from DDP's logger or else the trace."""
    if summary.comm_ms is not None:
        return summary.comm_ms, summary.exposed_comm_ms
    trace = summary.trace_comm
    return (trace.comm_ms, trace.exposed_ms) if trace else (None, None)


def merge_ranks(summaries: list[RankSummary], world_size: int | None = None) -> DdpSection:
    """The job's view from every rank's summary: per-rank table, the straggler, communication."""
    # Rows by rank; traces whose rank is unknown last, by file (never numbered by position).
    ranks = sorted(summaries, key=lambda s: (s.rank is None, s.rank or 0, s.trace_file or ""))
    first = ranks[0] if ranks else None
    table = []
    for summary in ranks:
        breakdown = summary.breakdown_ms
        comm_ms, exposed_ms = _comm_of(summary)
        table.append(
            RankRow(
                rank=summary.rank,
                node=summary.node,
                status=summary.status,
                steps=summary.steps,
                step_p50_ms=summary.step_p50_ms,
                local_p50_ms=summary.local_p50_ms,
                **{f"{phase}_ms": breakdown.get(phase) if breakdown else None for phase in PHASES},
                comm_ms=comm_ms,
                exposed_comm_ms=exposed_ms,
                cpu_wait_ms_per_step=summary.cpu_wait_ms_per_step,
                machine_shared=summary.machine_shared,
                trace_file=summary.trace_file,
                rank_from=summary.rank_from,
                partial=summary.partial,
            )
        )
    # (local ms, row index): rows are told apart by position, as several may have an unknown rank.
    locals_ = [(row.local_p50_ms, k) for k, row in enumerate(table) if row.local_p50_ms is not None]
    straggler = None
    if len(locals_) >= 2:
        slowest_ms, slowest = max(locals_, key=lambda item: (item[0], item[1]))
        others = [ms for ms, k in locals_ if k != slowest]
        typical = statistics.median(others)
        row = table[slowest]
        other_waits = [r.cpu_wait_ms_per_step for k, r in enumerate(table) if k != slowest and r.cpu_wait_ms_per_step is not None]
        own_wait = row.cpu_wait_ms_per_step
        straggler = Straggler(
            rank=row.rank,
            local_p50_ms=slowest_ms,
            others_local_p50_ms=typical,
            others_wait_ms_per_step=max(0.0, slowest_ms - typical),
            step_p50_ms=row.step_p50_ms,
            slowest_step_share=slowest_step_share(ranks, slowest),
            extra_cpu_wait_ms=max(0.0, own_wait - statistics.median(other_waits)) if own_wait is not None and other_waits else None,
            trace_step=ranks[slowest].slowest_step,
            trace_file=row.trace_file,
            partial=row.partial,
        )
    logged = first.logged if first else {}
    # A rank's communication time includes waiting for slower ranks: the rank that waits least
    # (the slowest one) shows what the all-reduce itself costs.
    measured = [(row.exposed_comm_ms, row.comm_ms, row.rank) for row in table if row.exposed_comm_ms is not None]
    exposed_ms, comm_ms, comm_rank = min(measured, key=lambda m: m[0]) if measured else (None, None, None)
    trace_comm = first.trace_comm if first else None
    group = first.process_group if first else None
    backend = (group.backend if group else None) or logged.get("backend_name")
    return DdpSection(
        backend=str(backend) if backend is not None else None,
        world_size=world_size or (group.world_size if group else None) or len(ranks),
        ranks_reported=len(ranks),
        ranks=table,
        straggler=straggler,
        comm_ms_per_backward=comm_ms if comm_ms is not None else (trace_comm.comm_ms if trace_comm else None),
        exposed_comm_ms_per_backward=exposed_ms if exposed_ms is not None else (trace_comm.exposed_ms if trace_comm else None),
        comm_source=f"DDP logger, rank {comm_rank}" if comm_ms is not None else ("trace" if trace_comm else None),
        collectives_per_step=trace_comm.collectives_per_step if trace_comm else None,
        instances=first.ddp if first else [],
        data_parallel=first.data_parallel if first else [],
        synced_forwards_per_step_max=max((s.synced_forwards_max or 0 for s in ranks), default=0),
        synced_forwards_per_step_median=first.synced_forwards_median if first else None,
        unsynced_forwards_total=sum(s.unsynced_forwards_total for s in ranks),
        logged=logged,
    )
