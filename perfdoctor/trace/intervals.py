"""Interval sets on a timeline, vectorised with numpy.

An interval set is a pair of int64 arrays ``(starts, ends)``, sorted, disjoint and non-empty
(``starts[i] < ends[i] < starts[i + 1]``): what :func:`union` returns. Half-open intervals.
"""

from __future__ import annotations

import numpy as np

Intervals = tuple[np.ndarray, np.ndarray]

_EMPTY = np.empty(0, dtype=np.int64)


def empty() -> Intervals:
    return _EMPTY, _EMPTY


def union(starts: np.ndarray, ends: np.ndarray) -> Intervals:
    """The union of possibly overlapping, unsorted intervals as a disjoint sorted set."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    keep = ends > starts
    if not keep.all():
        starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return empty()
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    # A new interval begins where the start lies beyond everything before it.
    begins = np.empty(starts.size, dtype=bool)
    begins[0] = True
    begins[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(begins)
    last = np.append(first[1:] - 1, starts.size - 1)
    return starts[first], reach[last]


def total(intervals: Intervals) -> int:
    starts, ends = intervals
    return int((ends - starts).sum())


def _combine(a: Intervals, b: Intervals, keep_a: bool, keep_b: bool, need_both: bool) -> Intervals:
    """Sweep over the boundaries of two disjoint sets, keeping the parts where the coverage
    condition holds (a and b / a and not b)."""
    points = np.concatenate([a[0], a[1], b[0], b[1]])
    if points.size == 0:
        return empty()
    delta_a = np.concatenate([np.ones(a[0].size, np.int64), -np.ones(a[1].size, np.int64),
                              np.zeros(b[0].size + b[1].size, np.int64)])
    delta_b = np.concatenate([np.zeros(a[0].size + a[1].size, np.int64), np.ones(b[0].size, np.int64),
                              -np.ones(b[1].size, np.int64)])
    order = np.argsort(points, kind="stable")
    points, delta_a, delta_b = points[order], delta_a[order], delta_b[order]
    # Coverage after each boundary; boundaries at the same time are applied together.
    in_a = np.cumsum(delta_a)
    in_b = np.cumsum(delta_b)
    last_of_time = np.append(points[1:] != points[:-1], True)
    points, in_a, in_b = points[last_of_time], in_a[last_of_time], in_b[last_of_time]
    inside = (in_a > 0) & (in_b > 0) if need_both else ((in_a > 0) == keep_a) & ((in_b > 0) == keep_b)
    seg_start = points[:-1][inside[:-1]]
    seg_end = points[1:][inside[:-1]]
    if seg_start.size == 0:
        return empty()
    return union(seg_start, seg_end)


def intersect(a: Intervals, b: Intervals) -> Intervals:
    return _combine(a, b, True, True, need_both=True)


def subtract(a: Intervals, b: Intervals) -> Intervals:
    """The parts of a not covered by b."""
    if b[0].size == 0 or a[0].size == 0:
        return a
    return _combine(a, b, True, False, need_both=False)


def merge(*sets: Intervals) -> Intervals:
    """Union of several disjoint sets."""
    return union(np.concatenate([s[0] for s in sets]), np.concatenate([s[1] for s in sets]))


def measure_within(intervals: Intervals, win_start: np.ndarray, win_end: np.ndarray) -> np.ndarray:
    """For each window [win_start[i], win_end[i]), the length of the set inside it."""
    starts, ends = intervals
    win_start = np.asarray(win_start, dtype=np.int64)
    win_end = np.asarray(win_end, dtype=np.int64)
    if starts.size == 0:
        return np.zeros(win_start.size, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(ends - starts)])

    def covered_before(t: np.ndarray) -> np.ndarray:
        # Length of the set in (-inf, t).
        k = np.searchsorted(starts, t, side="right")  # intervals starting at or before t
        partial = np.where(k > 0, np.minimum(ends[np.maximum(k - 1, 0)], t) - starts[np.maximum(k - 1, 0)], 0)
        return cum[np.maximum(k - 1, 0)] * (k > 0) + np.maximum(partial, 0)

    return np.maximum(covered_before(win_end) - covered_before(win_start), 0)


def clip(intervals: Intervals, start: int, end: int) -> Intervals:
    """The part of a set inside [start, end)."""
    starts, ends = intervals
    lo = np.searchsorted(ends, start, side="right")
    hi = np.searchsorted(starts, end, side="left")
    s, e = np.maximum(starts[lo:hi], start), np.minimum(ends[lo:hi], end)
    keep = e > s
    return s[keep], e[keep]


def gaps(intervals: Intervals) -> Intervals:
    """The holes between consecutive intervals of a set."""
    starts, ends = intervals
    return ends[:-1], starts[1:]


def grouped_total(starts: np.ndarray, ends: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group g in [0, n_groups): the length of the union of the intervals in that group.

    Groups are laid end to end on one shifted timeline so that a single union serves all.
    """
    keep = (groups >= 0) & (groups < n_groups) & (ends > starts)
    starts, ends, groups = starts[keep], ends[keep], groups[keep].astype(np.int64)
    if starts.size == 0:
        return np.zeros(n_groups, dtype=np.int64)
    base = int(starts.min())
    span = int(ends.max()) - base + 1
    offset = groups * span - base
    merged_start, merged_end = union(starts + offset, ends + offset)
    group_of = merged_start // span
    return np.bincount(group_of, weights=(merged_end - merged_start).astype(np.float64), minlength=n_groups)[
        :n_groups
    ].astype(np.int64)


def intersect_each(
    starts: np.ndarray, ends: np.ndarray, intervals: Intervals
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersect every interval [starts[i], ends[i]) with a disjoint set.

    Returns the pieces (starts, ends) and, for each piece, the index i it came from.
    """
    set_starts, set_ends = intervals
    lo = np.searchsorted(set_ends, starts, side="right")
    hi = np.searchsorted(set_starts, ends, side="left")
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(starts.size), counts)
    if owner.size == 0:
        return _EMPTY, _EMPTY, owner
    first_of_owner = np.repeat(np.cumsum(counts) - counts, counts)
    j = np.repeat(lo, counts) + (np.arange(owner.size) - first_of_owner)
    piece_start = np.maximum(set_starts[j], starts[owner])
    piece_end = np.minimum(set_ends[j], ends[owner])
    keep = piece_end > piece_start
    return piece_start[keep], piece_end[keep], owner[keep]
