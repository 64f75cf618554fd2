"""A profiler trace as the vendored viewer (speedscope) reads it: cut to a window, one track per
host thread or device stream, properly nested, the track that matters first.

speedscope reads Chrome trace JSON, but not Kineto's as torch.profiler writes it: a thread named
in the metadata without any event of its own stops its import ("Could not find events for
key"), ranges that end a rounding error after their parent are reported and dropped, and every
event's `args` become part of its frame's name (so no two `aten::mm` calls aggregate). So the
viewer is handed a copy, made from perfdoctor's own trace reader (every format it reads, gz or
not, ns or us, truncated input): complete events only, names without args, each track nested
(a child that outlasts its parent is clipped to it), and every track under one root frame that
spans the window, so that all tracks share the window's time axis (speedscope starts each track
at its first event).

Tracks are ordered: the track of the event the link is about (`focus`), the training loop's
thread, the other host threads (busiest first), then device streams. speedscope opens the
first one; its thread menu shows the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..trace.categories import Category
from ..trace.model import Trace

# The profiler's own span and overhead rows are not the program's work.
_LEFT_OUT = (Category.TRACE, Category.OVERHEAD)
_DEVICE = (Category.KERNEL, Category.MEMCPY, Category.MEMSET, Category.GPU_USER_ANNOTATION, Category.CUDA_SYNC)


@dataclass(frozen=True)
class Window:
    """The part of a trace to show, in ns on the trace's clock (as perfdoctor's reader reads it)."""

    start_ns: int
    end_ns: int

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True)
class Track:
    pid: int
    tid: int
    device: bool
    label: str
    busy_ns: int


def whole(trace: Trace) -> Window | None:
    """From the first to the last event of the program's own work; None for an empty trace."""
    mask = ~trace.category_mask(*_LEFT_OUT)
    if not mask.any():
        return None
    return Window(int(trace.ts_ns[mask].min()), int(trace.end_ns[mask].max()))


def clamp(trace: Trace, start_ns: int | None, end_ns: int | None) -> Window | None:
    """The requested window within the trace (the whole trace for what is not given)."""
    full = whole(trace)
    if full is None:
        return None
    start = full.start_ns if start_ns is None else max(full.start_ns, int(start_ns))
    end = full.end_ns if end_ns is None else min(full.end_ns, int(end_ns))
    return Window(start, end) if end > start else None


def _tracks(trace: Trace, mask: np.ndarray, focus: str | None) -> list[Track]:
    from ..trace.threads import main_thread

    index = np.flatnonzero(mask)
    if index.size == 0:
        return []
    pairs, inverse = np.unique(np.stack([trace.pid[index], trace.tid[index]], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    busy = np.bincount(inverse, weights=trace.dur_ns[index].astype(np.float64), minlength=len(pairs))
    device_events = np.isin(trace.cat[index], np.array([int(c) for c in _DEVICE], dtype=np.int8))
    device_share = np.bincount(inverse, weights=device_events.astype(np.float64), minlength=len(pairs))
    counts = np.bincount(inverse, minlength=len(pairs))
    main = main_thread(trace)
    focus_pair: tuple[int, int] | None = None
    if focus:
        named = trace.name_mask(lambda name: name == focus)[index]
        if named.any():
            longest = index[named][int(np.argmax(trace.dur_ns[index[named]]))]
            focus_pair = (int(trace.pid[longest]), int(trace.tid[longest]))

    tracks = []
    for k, (pid, tid) in enumerate(pairs.tolist()):
        device = device_share[k] > counts[k] / 2
        tracks.append(Track(int(pid), int(tid), bool(device), _label(trace, int(pid), int(tid), device, main), int(busy[k])))

    def order(track: Track) -> tuple[int, int, int, int]:
        if focus_pair == (track.pid, track.tid):
            rank = 0
        elif main is not None and (track.pid, track.tid) == (main.pid, main.tid):
            rank = 1
        else:
            rank = 3 if track.device else 2
        return (rank, -track.busy_ns if rank == 2 else 0, track.pid if track.device else 0, track.tid if track.device else 0)

    return sorted(tracks, key=order)


def _label(trace: Trace, pid: int, tid: int, device: bool, main: Any) -> str:
    thread = trace.thread_name(pid, tid)
    process = trace.metadata.process_labels.get(pid) or trace.metadata.process_names.get(pid)
    if device:
        where = process or f"device {trace.describe_id(pid)}"
        stream = thread or f"stream {trace.describe_id(tid)}"
        return f"{where} · {stream}"
    role = "training loop" if main is not None and (pid, tid) == (main.pid, main.tid) else "thread"
    name = thread or f"thread {trace.describe_id(tid)}"
    return f"host · {role} · {name} (pid {trace.describe_id(pid)})"


def viewer_document(trace: Trace, window: Window, focus: str | None = None, title: str = "") -> dict[str, Any]:
    """A Chrome trace document (`traceEvents` in us, from the window's start) for speedscope."""
    ts, end = trace.ts_ns, trace.end_ns
    mask = (ts < window.end_ns) & (end > window.start_ns) & ~trace.category_mask(*_LEFT_OUT)
    # A zero-length event at the window's start edge overlaps nothing.
    mask &= ~((trace.dur_ns == 0) & ((ts < window.start_ns) | (ts >= window.end_ns)))
    tracks = _tracks(trace, mask, focus)
    root = title or "window"
    events: list[dict[str, Any]] = []
    for number, track in enumerate(tracks, start=1):
        # speedscope keys tracks by zero-padded "pid:tid" and opens the first: number them in order.
        events.append({"ph": "M", "name": "process_name", "pid": number, "tid": number, "args": {"name": f"{number}"}})
        events.append({"ph": "M", "name": "thread_name", "pid": number, "tid": number, "args": {"name": track.label}})
        on_track = np.flatnonzero(mask & (trace.pid == track.pid) & (trace.tid == track.tid))
        starts = np.maximum(ts[on_track], window.start_ns) - window.start_ns
        ends = np.minimum(end[on_track], window.end_ns) - window.start_ns
        # Clipped to the window, a range that began before it starts with what it overlapped:
        # order again, longest first at equal starts, so that the enclosing range opens first.
        order = np.lexsort((starts - ends, starts))
        on_track, starts, ends = on_track[order], starts[order], ends[order]
        # Begin/end pairs written in nesting order: speedscope sorts each kind by time, keeping
        # the given order for ties, so a range and its last child that end together close
        # child first (from "X" events it would close the parent first and drop the child).
        stack: list[tuple[int, str]] = [(window.duration_ns, root)]  # open ranges: end (ns from the start), name
        events.append({"ph": "B", "name": root, "ts": 0.0, "pid": number, "tid": number})
        for i, start, stop in zip(on_track.tolist(), starts.tolist(), ends.tolist()):
            while len(stack) > 1 and stack[-1][0] <= start:
                closed, name = stack.pop()
                events.append({"ph": "E", "name": name, "ts": closed / 1e3, "pid": number, "tid": number})
            stop = min(stop, stack[-1][0])  # outlasts its parent by a rounding error (or overlaps it): clipped
            if stop <= start:
                continue
            name = trace.name(i)
            stack.append((stop, name))
            events.append({"ph": "B", "name": name, "ts": start / 1e3, "pid": number, "tid": number})
        while stack:
            closed, name = stack.pop()
            events.append({"ph": "E", "name": name, "ts": closed / 1e3, "pid": number, "tid": number})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
