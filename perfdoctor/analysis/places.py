"""Places in a trace that findings rest on: the slowest profiled step, the longest DataLoader
wait, and for each op that synced with the GPU or copied from pageable memory, its longest
occurrence. Rules copy them into their findings' `locations`; the trace view opens there.

A place shows its event with what ran just before and after it (within its step), the event
named so that its track opens first; the label says which step, and where in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..model.finding import TraceLocation

if TYPE_CHECKING:
    from ..trace.model import Trace
    from ..trace.steps import StepWindow


CONTEXT_FACTOR = 3  # a place shows its event with this many times its length either side,
CONTEXT_NS = 2_000_000  # and at least this much (ns), within the event's step


@dataclass
class TracePlaces:
    slowest_step: TraceLocation | None = None
    longest_dataloader_wait: TraceLocation | None = None
    syncs: dict[str, TraceLocation] = field(default_factory=dict)  # responsible op -> its longest sync
    pageable_copies: dict[str, TraceLocation] = field(default_factory=dict)  # op -> its longest pageable copy


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.2f} ms"


def _step_name(window: StepWindow) -> str:
    return "the traced window" if window.synthetic else f"step {window.number}"


def _at(trace: Trace, file: str, window: StepWindow, index: int, label: str, focus: str | None = None,
        rank: int | None = None) -> TraceLocation:
    start, end = int(trace.ts_ns[index]), int(trace.end_ns[index])
    where = f"{_step_name(window)}, {_ms(max(start - window.start_ns, 0))} after it starts"
    # The event and what ran around it, within its step: speedscope opens on the whole window,
    # so a whole step would show a short event as a sliver.
    pad = max(CONTEXT_FACTOR * (end - start), CONTEXT_NS)
    shown = (max(window.start_ns, start - pad), min(window.end_ns, end + pad))
    return TraceLocation(
        label=f"{label} in {where}",
        trace=file,
        start_ns=shown[0],
        end_ns=shown[1],
        step=None if window.synthetic else window.number,
        op=focus or trace.name(index),
        rank=rank,
    )


def trace_places(trace: Trace, file: str, rank: int | None = None) -> TracePlaces:
    from ..trace.categories import Category
    from ..trace.gpu import sync_call_mask
    from ..trace.links import launcher
    from ..trace.ranges import DATALOADER_PREFIX, host_ranges
    from ..trace.steps import step_windows, window_of

    places = TracePlaces()
    windows = step_windows(trace)
    if not windows:
        return places
    slowest = max(windows, key=lambda w: w.duration_ns)
    places.slowest_step = TraceLocation(
        label=f"{_step_name(slowest)}, the slowest profiled step ({_ms(slowest.duration_ns)})",
        trace=file, start_ns=slowest.start_ns, end_ns=slowest.end_ns,
        step=None if slowest.synthetic else slowest.number, rank=rank,
    )
    step_of_start = window_of(trace.ts_ns, windows)

    waits = np.flatnonzero(host_ranges(trace) & trace.name_mask(lambda n: n.startswith(DATALOADER_PREFIX)) & (step_of_start >= 0))
    if waits.size:
        longest = int(waits[np.argmax(trace.dur_ns[waits])])
        places.longest_dataloader_wait = _at(
            trace, file, windows[step_of_start[longest]], longest,
            f"the longest DataLoader wait ({_ms(int(trace.dur_ns[longest]))})", rank=rank,
        )

    source = launcher(trace)
    syncs = np.flatnonzero(sync_call_mask(trace))
    if syncs.size:
        # A cuda_sync event stands for the host call that launched it, where there is one.
        calls = np.where(trace.cat[syncs] == int(Category.CUDA_SYNC), source[syncs], syncs)
        _longest_per_op(trace, file, windows, syncs, calls, "sync", places.syncs, rank, device_side=False)
    memcpy = trace.category_mask(Category.MEMCPY) & trace.name_mask(lambda n: "Pageable" in n and "HtoD" in n)
    copies = np.flatnonzero(memcpy)
    if copies.size:
        _longest_per_op(trace, file, windows, copies, source[copies], "pageable copy", places.pageable_copies, rank, device_side=True)
    return places


def _longest_per_op(trace: Trace, file: str, windows: list[StepWindow], events: np.ndarray, calls: np.ndarray,
                    what: str, into: dict[str, TraceLocation], rank: int | None, device_side: bool) -> None:
    """For each op that issued `events` (through their host `calls`), its longest one."""
    from ..trace.links import responsible_op
    from ..trace.steps import window_of

    ops = np.full(events.size, -1, dtype=np.int64)
    known = calls >= 0
    ops[known] = responsible_op(trace, calls[known])
    # The step is the one the host call ran in (device work runs later than it is launched).
    anchor = np.where(known, calls, events)
    step = window_of(trace.ts_ns[np.maximum(anchor, 0)], windows)
    best: dict[str, int] = {}
    for k in np.flatnonzero(step >= 0).tolist():
        name = trace.name(int(ops[k])) if ops[k] >= 0 else "(no CPU op)"
        if name not in best or trace.dur_ns[events[k]] > trace.dur_ns[events[best[name]]]:
            best[name] = k
    for name, k in best.items():
        event = int(events[k])
        window = windows[int(step[k])]
        label = f"{name}: its longest {what} ({_ms(int(trace.dur_ns[event]))})"
        # A copy is shown on its device stream; a sync on the host thread, under the op.
        focus = trace.name(event) if device_side or ops[k] < 0 else name
        into[name] = _at(trace, file, window, int(anchor[k]) if not device_side else event, label, focus, rank)
