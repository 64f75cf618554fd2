"""Why the device waited for the host, per gap on its timeline.

Idle waiting for the host is split three ways: *after a sync* (a blocking host sync returned
inside the gap: the host waited for the device to drain, then had to launch new work from
nothing), *launch gaps* (shorter than ``LAUNCH_GAP_NS``: the host launching kernel after kernel
more slowly than they run) and *host stalls* (longer gaps: data loading, Python work, CPU ops).
For stalls, the top-level host ranges on the training thread that overlap them are the evidence
of what the host was doing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ...model.gpu import StallOp
from ...trace import Trace
from ...trace import intervals as iv
from ...trace.nesting import top_level
from ...trace.ranges import DATALOADER_PREFIX, operator_mask
from ...trace.steps import launch_time
from ...trace.threads import main_thread, on_thread
from .units import ms

LAUNCH_GAP_NS = 1_000_000  # host-wait gaps shorter than this are launch overhead; longer ones are stalls
TOP_STALL_OPS = 8


@dataclass(frozen=True)
class IdleSplit:
    """Host-wait idle per step (ns arrays of length n), and the stall gaps themselves."""

    after_sync: np.ndarray
    launch: np.ndarray
    stall: np.ndarray
    stalls: tuple[np.ndarray, np.ndarray]  # (starts, ends) of the stall gaps


def idle_split(trace: Trace, activity: np.ndarray, step: np.ndarray, n: int, syncs: np.ndarray) -> IdleSplit:
    """Per step: host-wait idle after syncs, in launch gaps and in stalls; the stall intervals.

    A gap in which a blocking sync returned was caused by it only as far as the host, had it not
    waited, could have queued the next work earlier: up to the time it was blocked. The rest of
    such a gap is launch gap or stall, by its length, like any other.
    """
    empty = np.empty(0, np.int64)
    index = np.flatnonzero(activity)
    if index.size < 2:
        zeros = np.zeros(n, dtype=np.int64)
        return IdleSplit(zeros, zeros, zeros, (empty, empty))
    start, end = trace.ts_ns[index], trace.ts_ns[index] + trace.dur_ns[index]
    order = np.argsort(start, kind="stable")
    index, start, end = index[order], start[order], end[order]
    reach = np.maximum.accumulate(end)
    gap_start, gap_end, nxt = reach[:-1], start[1:], index[1:]
    waiting = (gap_end > gap_start) & (launch_time(trace)[nxt] > gap_start) & (step[nxt] >= 0)
    sync_index = np.flatnonzero(syncs)
    sync_end = trace.ts_ns[sync_index] + trace.dur_ns[sync_index]
    by_end = np.argsort(sync_end, kind="stable")
    sync_end, blocked = sync_end[by_end], trace.dur_ns[sync_index][by_end]
    lo = np.searchsorted(sync_end, gap_start, side="left")
    hi = np.searchsorted(sync_end, gap_end, side="right")
    after_sync = np.zeros(gap_start.size, dtype=np.int64)
    for k in np.flatnonzero(waiting & (hi > lo)):
        after_sync[k] = min(int(gap_end[k] - gap_start[k]), int(blocked[lo[k]:hi[k]].max()))
    rest = np.where(waiting, gap_end - gap_start - after_sync, 0)
    launch = (rest > 0) & (rest < LAUNCH_GAP_NS)
    stall = rest >= LAUNCH_GAP_NS
    owner = step[nxt]

    def per_step(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(owner[mask], weights=values[mask].astype(np.float64), minlength=n)[:n].astype(np.int64)

    return IdleSplit(
        after_sync=per_step(after_sync, waiting),
        launch=per_step(rest, launch),
        stall=per_step(rest, stall),
        stalls=(gap_end[stall] - rest[stall], gap_end[stall]),
    )


def stall_ops(trace: Trace, stalls: tuple[np.ndarray, np.ndarray], n: int) -> list[StallOp]:
    """The training thread's top-level host ranges overlapping the device's stall gaps."""
    gaps = iv.union(*stalls)
    total = iv.total(gaps)
    main = main_thread(trace)
    if total == 0 or main is None:
        return []
    # Operators, not phase annotations ("## forward ##") that span whole parts of the step.
    loading = trace.name_mask(lambda name: name.startswith(DATALOADER_PREFIX))
    mask = (operator_mask(trace) | loading) & on_thread(trace, main)
    ranges = np.flatnonzero(top_level(trace, mask))
    starts, ends = trace.ts_ns[ranges], trace.ts_ns[ranges] + trace.dur_ns[ranges]
    piece_start, piece_end, owner = iv.intersect_each(starts, ends, gaps)
    overlap: Counter[str] = Counter()
    for k, length in zip(owner.tolist(), (piece_end - piece_start).tolist()):
        overlap[trace.names[trace.name_id[ranges[k]]]] += length
    covered = iv.total(iv.intersect(gaps, iv.union(starts, ends)))
    if total > covered:
        overlap["(Python, outside any op)"] += total - covered
    return [StallOp(op=op, ms_per_step=ms(ns / n)) for op, ns in overlap.most_common(TOP_STALL_OPS)]
