"""Interval sets and nesting, against brute force on small integer timelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from perfdoctor.trace import intervals as iv
from perfdoctor.trace.model import Trace
from perfdoctor.trace.nesting import parents, self_time, top_level

HORIZON = 60
spans = st.lists(st.tuples(st.integers(0, HORIZON), st.integers(0, 15)), max_size=25)


def _set(pairs):
    starts = np.array([s for s, _ in pairs], dtype=np.int64)
    ends = np.array([s + d for s, d in pairs], dtype=np.int64)
    return starts, ends


def _cells(pairs) -> np.ndarray:
    cells = np.zeros(HORIZON + 20, dtype=bool)
    for s, d in pairs:
        cells[s:s + d] = True
    return cells


def _cells_of(intervals) -> np.ndarray:
    return _cells([(int(s), int(e - s)) for s, e in zip(*intervals)])


@settings(max_examples=150, deadline=None)
@given(spans, spans)
def test_set_operations_match_brute_force(a, b):
    ua, ub = iv.union(*_set(a)), iv.union(*_set(b))
    assert np.array_equal(_cells_of(ua), _cells(a))
    assert (ua[0][1:] > ua[1][:-1]).all()  # disjoint, sorted, gaps between
    assert iv.total(ua) == _cells(a).sum()
    assert np.array_equal(_cells_of(iv.intersect(ua, ub)), _cells(a) & _cells(b))
    assert np.array_equal(_cells_of(iv.subtract(ua, ub)), _cells(a) & ~_cells(b))
    assert np.array_equal(_cells_of(iv.merge(ua, ub)), _cells(a) | _cells(b))
    windows = np.array([[0, 10], [5, 30], [29, 80], [40, 40]])
    measured = iv.measure_within(ua, windows[:, 0], windows[:, 1])
    assert measured.tolist() == [int(_cells(a)[lo:hi].sum()) for lo, hi in windows]


@settings(max_examples=100, deadline=None)
@given(spans, st.lists(st.integers(0, 3), min_size=25, max_size=25))
def test_grouped_total_and_intersect_each(a, groups):
    starts, ends = _set(a)
    group = np.array(groups[: starts.size], dtype=np.int64)
    got = iv.grouped_total(starts, ends, group, 4)
    for g in range(4):
        assert got[g] == _cells([p for p, k in zip(a, group) if k == g]).sum()
    other = iv.union(np.array([3, 20, 41]), np.array([9, 33, 50]))
    ps, pe, owner = iv.intersect_each(starts, ends, other)
    for i, (s, d) in enumerate(a):
        expected = _cells([(s, d)]) & _cells_of(other)
        got_cells = _cells([(int(x), int(y - x)) for x, y, o in zip(ps, pe, owner) if o == i])
        assert np.array_equal(got_cells, expected)


def _trace(rows) -> Trace:
    """rows: (start, dur, tid), already in (start, longest first) order."""
    n = len(rows)
    z = np.zeros(n, dtype=np.int64)
    return Trace(
        path=Path("t"), names=["x"], input_dims=[],
        name_id=np.zeros(n, np.int32), cat=np.ones(n, np.int8),
        ts_ns=np.array([r[0] for r in rows], np.int64), dur_ns=np.array([r[1] for r in rows], np.int64),
        pid=z.copy(), tid=np.array([r[2] for r in rows], np.int64),
        device=np.full(n, -1, np.int16), stream=np.full(n, -1, np.int32), correlation=z - 1, external_id=z - 1,
        input_dims_id=np.full(n, -1, np.int32), nbytes=z - 1, flops=np.full(n, -1.0),
    )


def _brute_parent(rows, i, slack):
    s, d, t = rows[i]
    for j in range(i - 1, -1, -1):
        sj, dj, tj = rows[j]
        if tj == t and (sj + dj >= s + d or (s < sj + dj and s + d - (sj + dj) <= slack)):
            return j
    return -1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 20), st.integers(0, 2)), max_size=40),
       st.sampled_from([0, 2]))
def test_parents_match_brute_force(rows, slack):
    rows = sorted(rows, key=lambda r: (r[0], -r[1]))
    trace = _trace(rows)
    mask = np.ones(len(rows), dtype=bool)
    got = parents(trace, mask, slack_ns=slack)
    assert got.tolist() == [_brute_parent(rows, i, slack) for i in range(len(rows))]
    assert (top_level(trace, mask, slack) == (got < 0)).all()


def test_self_time_of_nested_ops():
    # a [0,100) > b [10,40) > c [15,20); a > d [50,60); e [200,210) alone
    rows = [(0, 100, 0), (10, 30, 0), (15, 5, 0), (50, 10, 0), (200, 10, 0)]
    trace = _trace(rows)
    mask = np.ones(5, dtype=bool)
    assert self_time(trace, mask).tolist() == [100 - 30 - 10, 30 - 5, 5, 10, 10]
