"""Which event encloses which, per thread: parents, top-level events and self time.

Within one thread, events sorted by (start, longest first) are a pre-order walk of the call
tree, so an event's parent is the nearest earlier event on the thread that ends no earlier
than it does. That "previous greater or equal element" is found for all events at once by
pointer jumping: start from the previous event, and while the candidate ends too early, jump
to the candidate's own candidate. Every jump keeps the invariant that nothing between the
candidate and the event could be its parent. Top-level events (found first with a running
maximum of end times) have no parent, so the iterations needed grow with the nesting depth
and the log of the number of siblings, not with the number of events.

A child that overhangs its parent's end by at most ``slack_ns`` (timestamp rounding in some
traces) still counts as nested; its time is clipped to the parent.
"""

from __future__ import annotations

import numpy as np

from perfdoctor.trace.model import Trace

NESTING_SLACK_NS = 1000


def thread_order(trace: Trace, index: np.ndarray) -> np.ndarray:
    """index re-ordered by (pid, tid), keeping start order within each thread."""
    keys = np.lexsort((trace.tid[index], trace.pid[index]))
    return index[keys]


def parents(trace: Trace, mask: np.ndarray, slack_ns: int = NESTING_SLACK_NS) -> np.ndarray:
    """For each event in mask, the index of its innermost enclosing event in mask on the same
    thread (-1 for none); -1 for events outside mask. Length len(trace)."""
    result = np.full(len(trace), -1, dtype=np.int64)
    index = thread_order(trace, np.flatnonzero(mask))
    m = index.size
    if m == 0:
        return result
    start = trace.ts_ns[index]
    end = start + trace.dur_ns[index]
    pid, tid = trace.pid[index], trace.tid[index]
    candidate = np.arange(m, dtype=np.int64) - 1
    new_thread = np.ones(m, dtype=bool)
    new_thread[1:] = (pid[1:] != pid[:-1]) | (tid[1:] != tid[:-1])
    # Top-level events (nothing earlier on the thread reaches their end) have no parent; settling
    # them first keeps the jumping below to the nesting depth instead of the thread's length.
    reach = np.empty(m, dtype=np.int64)
    bounds = np.append(np.flatnonzero(new_thread), m)
    for a, b in zip(bounds[:-1], bounds[1:]):
        np.maximum.accumulate(end[a:b], out=reach[a:b])
    before = np.empty(m, dtype=np.int64)
    before[0] = np.iinfo(np.int64).min
    before[1:] = reach[:-1]
    before[new_thread] = np.iinfo(np.int64).min
    nested = (before >= end) | ((start < before) & (end - before <= slack_ns))
    candidate[~nested] = -1
    active = np.flatnonzero(candidate >= 0)
    while active.size:
        c = candidate[active]
        encloses = (end[c] >= end[active]) | ((start[active] < end[c]) & (end[active] - end[c] <= slack_ns))
        active = active[~encloses]
        candidate[active] = candidate[candidate[active]]
        active = active[candidate[active] >= 0]
    has_parent = candidate >= 0
    result[index[has_parent]] = index[candidate[has_parent]]
    return result


def top_level(trace: Trace, mask: np.ndarray, slack_ns: int = NESTING_SLACK_NS) -> np.ndarray:
    """Events in mask not enclosed by another event in mask on their thread (boolean mask)."""
    return mask & (parents(trace, mask, slack_ns) < 0)


def self_time(trace: Trace, mask: np.ndarray, parent: np.ndarray | None = None) -> np.ndarray:
    """Duration minus the time of direct children (events in mask), per event; 0 outside mask."""
    if parent is None:
        parent = parents(trace, mask)
    children = np.flatnonzero(parent >= 0)
    ends = trace.ts_ns + trace.dur_ns
    parent_of = parent[children]
    child_time = np.minimum(ends[children], ends[parent_of]) - trace.ts_ns[children]
    spent = np.bincount(parent_of, weights=np.maximum(child_time, 0), minlength=len(trace))
    result = np.where(mask, trace.dur_ns - spent.astype(np.int64), 0)
    return np.maximum(result, 0)

