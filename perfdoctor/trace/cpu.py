"""Host-side analysis: where each step's time goes on the training loop's thread, which
operators cost the most, and whether the loop is bound by per-op host overhead.

Step breakdown
    Each step window (see :mod:`perfdoctor.trace.steps`) is split into ``dataloader``,
    ``optimizer``, ``backward``, ``forward`` and ``other``, in that order of precedence: time
    covered by several phases counts once, for the first. Each phase is the union of its
    ranges, so nested and overlapping ranges never count twice, and the five sum to the step.

    - dataloader: ``enumerate(DataLoader)#...`` ranges, and user annotations whose name says
      data loading (``data_load``, ``dataloader``).
    - optimizer: ``Optimizer.step#...`` and ``Optimizer.zero_grad#...`` ranges, and user
      annotations naming the optimizer (``## optimizer ##``).
    - backward: ``autograd::engine::evaluate_function: ...`` ranges on any thread of the
      process, and the autograd nodes themselves (``AddmmBackward0``,
      ``torch::autograd::AccumulateGrad``: PyTorch 1.x writes them with no engine range around
      them), every top-level range on the autograd engine's own threads (GPU training runs
      backward there while the main thread waits; see
      :func:`perfdoctor.trace.threads.autograd_threads`), attributed to the main thread's step
      window they fall in, and user annotations naming backward. The
      engine's short pauses between nodes are backward too: a gap between backward ranges is
      filled unless the main thread does something else in it.
    - forward: ``nn.Module`` ranges and user annotations naming forward (e.g.
      ``DistributedDataParallel.forward``); and, between the phases above, the span from the
      first to the last top-level operator on the main thread (the model's Python code runs
      between its ops). Python frames (``with_stack``) and other user annotations are not
      used: they may cover a whole step. So torch ops in the loop outside the model (say, a
      normalisation before ``model(x)``) count as forward; pure-Python work outside any op
      before the first op or after the last one of a region does not.
    - other: the rest (e.g. Python work in the loop before the first op, logging).

    The main thread is the one holding the ProfilerStep ranges (else the busiest host
    thread); "operators" are CPU ops other than the well-known annotation names (see
    :mod:`perfdoctor.trace.ranges`).

Operators
    Self time is an op's duration minus that of the ops directly inside it on the same
    thread (all host threads count). Ops count for a step when they start inside it.

Host overhead
    Per step: the top-level CPU ops of the main thread (the aten ops Python called), their
    median duration, the time in tiny ops, and the main thread's time covered by no op outside
    data loading and backward: Python and interpreter overhead. An op is tiny when it took less
    than ``short_op_ns`` per operator call it made (itself and the ops nested in it): a backward
    node or a composite op that dispatches five 3 µs kernels is as dispatch-bound as one 3 µs op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from perfdoctor.trace import intervals as iv
from perfdoctor.trace.categories import Category
from perfdoctor.trace.model import Trace
from perfdoctor.trace.nesting import self_time, top_level
from perfdoctor.trace.ranges import (
    DATALOADER_PREFIX,
    OPTIMIZER_PREFIXES,
    host_ranges,
    op_parents,
    backward_mask,
    operator_mask,
    profiler_step_mask,
)
from perfdoctor.trace.steps import StepWindow, step_windows, window_arrays, window_of
from perfdoctor.trace.threads import autograd_threads, main_thread, on_thread

PHASES = ("dataloader", "forward", "backward", "optimizer", "other")
SHORT_OP_NS = 10_000  # ops shorter than this are "tiny" for host-overhead evidence

_DATALOADER_ANNOTATION = re.compile(r"data[ _-]?load", re.IGNORECASE)
_OPTIMIZER_ANNOTATION = re.compile(r"optimi[sz]er", re.IGNORECASE)
_BACKWARD_ANNOTATION = re.compile(r"backward", re.IGNORECASE)
_FORWARD_ANNOTATION = re.compile(r"forward", re.IGNORECASE)


@dataclass(frozen=True)
class StepBreakdown:
    """Host time of one step by phase, in ns; the phases sum to the step duration."""

    step: StepWindow
    dataloader_ns: int
    forward_ns: int
    backward_ns: int
    optimizer_ns: int
    other_ns: int

    @property
    def duration_ns(self) -> int:
        return self.step.duration_ns

    def fractions(self) -> dict[str, float]:
        total = max(self.duration_ns, 1)
        return {phase: getattr(self, f"{phase}_ns") / total for phase in PHASES}


@dataclass(frozen=True)
class OperatorStats:
    name: str
    calls: int
    total_ns: int
    self_ns: int
    input_shapes: list[tuple[str, int]] = field(default_factory=list)  # most common "Input Dims", with counts


@dataclass(frozen=True)
class HostOpStats:
    """Evidence for per-op host overhead in one step (main thread)."""

    step: StepWindow
    ops: int  # top-level CPU ops started in the step
    median_op_ns: int
    short_ops: int  # of those, the tiny ones: under short_op_ns per operator call in them
    short_op_ns: int  # time in the tiny ones
    gap_ns: int  # main-thread time in no op, outside data loading and backward
    short_op_threshold_ns: int = SHORT_OP_NS

    @property
    def short_op_share(self) -> float:
        return self.short_op_ns / max(self.step.duration_ns, 1)

    @property
    def gap_share(self) -> float:
        return self.gap_ns / max(self.step.duration_ns, 1)


# ---------------------------------------------------------------------------- phases


def _annotation_mask(trace: Trace, pattern: re.Pattern[str]) -> np.ndarray:
    return trace.category_mask(Category.USER_ANNOTATION) & trace.name_mask(lambda n: pattern.search(n) is not None)


def _intervals(trace: Trace, mask: np.ndarray) -> iv.Intervals:
    return iv.union(trace.ts_ns[mask], trace.ts_ns[mask] + trace.dur_ns[mask])


def _phase_sets(trace: Trace, windows: list[StepWindow]) -> dict[str, iv.Intervals]:
    # Some of the trace's own windows (the measured ones) share the sets of all of them: the
    # phases inside a window do not depend on which other windows are asked about.
    every = step_windows(trace)
    if set(windows) <= set(every):
        windows = every
    key = ("phase_sets", tuple(windows))
    if key not in trace.derived:
        trace.derived[key] = _compute_phase_sets(trace, windows)
    return trace.derived[key]


def _compute_phase_sets(trace: Trace, windows: list[StepWindow]) -> dict[str, iv.Intervals]:
    main = main_thread(trace)
    if main is None:
        return {phase: iv.empty() for phase in PHASES[:-1]}
    main_ranges = on_thread(trace, main) & host_ranges(trace) & ~profiler_step_mask(trace)
    main_ops = on_thread(trace, main) & operator_mask(trace) & (op_parents(trace) < 0)  # top-level ops

    dataloader = main_ranges & (
        trace.name_mask(lambda n: n.startswith(DATALOADER_PREFIX)) | _annotation_mask(trace, _DATALOADER_ANNOTATION)
    )
    optimizer = main_ranges & (
        trace.name_mask(lambda n: n.startswith(OPTIMIZER_PREFIXES)) | _annotation_mask(trace, _OPTIMIZER_ANNOTATION)
    )
    backward = backward_mask(trace) & (trace.pid == main.pid)
    backward |= main_ranges & _annotation_mask(trace, _BACKWARD_ANNOTATION)
    for thread in autograd_threads(trace):
        work = on_thread(trace, thread) & trace.category_mask(Category.CPU_OP, Category.USER_ANNOTATION)
        backward |= top_level(trace, work)

    dl_set = _intervals(trace, dataloader)
    opt_set = iv.subtract(_intervals(trace, optimizer), dl_set)
    higher = iv.merge(dl_set, opt_set)

    # A gap between backward ranges is the engine's own time unless the main thread runs an op
    # (or loads data, or steps the optimizer) in it.
    other_activity = _intervals(trace, (main_ops & ~backward) | dataloader | optimizer)
    bwd = _intervals(trace, backward)
    holes_start, holes_end = iv.gaps(bwd)
    same_step = window_of(holes_start, windows) == window_of(np.maximum(holes_end - 1, holes_start), windows)
    quiet = iv.measure_within(other_activity, holes_start, holes_end) == 0
    fill = same_step & quiet
    bwd = iv.union(np.concatenate([bwd[0], holes_start[fill]]), np.concatenate([bwd[1], holes_end[fill]]))
    bwd_set = iv.subtract(bwd, higher)
    higher = iv.merge(higher, bwd_set)

    # Forward: explicit forward ranges, plus the hull of top-level ops in each free region.
    # Python frames (with_stack) and user annotations around whole steps are not candidates:
    # they would cover everything.
    modules = main_ranges & trace.category_mask(Category.PYTHON_FUNCTION) & trace.name_mask(
        lambda n: n.startswith("nn.Module:")
    )
    candidates = main_ops | modules | (main_ranges & _annotation_mask(trace, _FORWARD_ANNOTATION))
    w_start, w_end = window_arrays(windows)
    regions = _split_at(iv.subtract(iv.union(w_start, w_end), higher), w_start)
    pieces = iv.intersect(_intervals(trace, candidates), regions)
    fwd_set = iv.empty()
    if pieces[0].size:
        region = np.searchsorted(regions[0], pieces[0], side="right") - 1
        lo = np.full(regions[0].size, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(regions[0].size, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, region, pieces[0])
        np.maximum.at(hi, region, pieces[1])
        used = hi > lo
        fwd_set = lo[used], hi[used]
    return {"dataloader": dl_set, "optimizer": opt_set, "backward": bwd_set, "forward": fwd_set}


def _split_at(intervals: iv.Intervals, points: np.ndarray) -> iv.Intervals:
    """Cut intervals at the given points (so none spans a step boundary)."""
    starts, ends = intervals
    if starts.size == 0:
        return intervals
    k = np.searchsorted(starts, points, side="right") - 1
    inside = (k >= 0) & (points > starts[np.maximum(k, 0)]) & (points < ends[np.maximum(k, 0)])
    cut = points[inside]
    return np.sort(np.concatenate([starts, cut])), np.sort(np.concatenate([ends, cut]))


def cpu_breakdown(trace: Trace, windows: list[StepWindow] | None = None) -> list[StepBreakdown]:
    """Per step, the main thread's time by phase (see the module docstring)."""
    windows = step_windows(trace) if windows is None else windows
    if not windows:
        return []
    sets = _phase_sets(trace, windows)
    w_start, w_end = window_arrays(windows)
    measured = {phase: iv.measure_within(sets[phase], w_start, w_end) for phase in PHASES[:-1]}
    result = []
    for k, window in enumerate(windows):
        parts = {phase: int(measured[phase][k]) for phase in PHASES[:-1]}
        parts["other"] = window.duration_ns - sum(parts.values())
        result.append(StepBreakdown(window, **{f"{phase}_ns": value for phase, value in parts.items()}))
    return result


# ---------------------------------------------------------------------------- operators


def top_operators(trace: Trace, windows: list[StepWindow] | None = None, limit: int = 20) -> list[OperatorStats]:
    """CPU ops started in the windows, by total self time, largest first."""
    windows = step_windows(trace) if windows is None else windows
    ops = operator_mask(trace)
    in_windows = ops & (window_of(trace.ts_ns, windows) >= 0)
    if not in_windows.any():
        return []
    own = self_time(trace, ops, op_parents(trace))
    names = trace.name_id[in_windows]
    n_names = len(trace.names)
    calls = np.bincount(names, minlength=n_names)
    total = np.bincount(names, weights=trace.dur_ns[in_windows].astype(np.float64), minlength=n_names)
    selfs = np.bincount(names, weights=own[in_windows].astype(np.float64), minlength=n_names)
    best = [i for i in np.lexsort((-total, -selfs)) if calls[i] > 0][:limit]
    shapes = _common_shapes(trace, in_windows, best)
    return [
        OperatorStats(trace.names[i], int(calls[i]), int(total[i]), int(selfs[i]), shapes.get(int(i), []))
        for i in best
    ]


def _common_shapes(
    trace: Trace, mask: np.ndarray, name_ids: list[int], per_op: int = 3
) -> dict[int, list[tuple[str, int]]]:
    """For each op name id, its most frequent "Input Dims" among the events in mask."""
    dims = trace.input_dims_id[mask].astype(np.int64)
    names = trace.name_id[mask].astype(np.int64)
    wanted = np.isin(names, name_ids) & (dims >= 0)
    if not wanted.any():
        return {}
    width = len(trace.input_dims) + 1
    keys, counts = np.unique(names[wanted] * width + dims[wanted], return_counts=True)
    result: dict[int, list[tuple[str, int]]] = {}
    for key, count in sorted(zip(keys.tolist(), counts.tolist()), key=lambda item: (item[0] // width, -item[1])):
        entries = result.setdefault(key // width, [])
        if len(entries) < per_op:
            entries.append((trace.input_dims[key % width], count))
    return result


# ---------------------------------------------------------------------------- host overhead


def calls_inside(trace: Trace) -> np.ndarray:
    """Per event: the operator calls in the tree of ops it heads (itself and every op nested in
    it, on its thread); 1 for events that are no operator's top."""
    parent = op_parents(trace)
    root = np.where(parent >= 0, parent, np.arange(len(parent)))
    while True:  # pointer jumping: each pass doubles the depth covered
        jumped = root[root]
        if np.array_equal(jumped, root):
            break
        root = jumped
    counts = np.bincount(root[operator_mask(trace)], minlength=len(parent))
    return np.maximum(counts, 1)


def host_op_stats(
    trace: Trace, windows: list[StepWindow] | None = None, short_op_ns: int = SHORT_OP_NS
) -> list[HostOpStats]:
    """Per step, the main thread's op count, durations and uncovered time (module docstring)."""
    windows = step_windows(trace) if windows is None else windows
    main = main_thread(trace)
    if not windows or main is None:
        return []
    # Nesting is per thread, so the main thread's top-level ops are the top-level ops on it.
    ops = operator_mask(trace) & (op_parents(trace) < 0) & on_thread(trace, main)
    which = window_of(trace.ts_ns, windows)
    ops &= which >= 0
    step_of_op = which[ops]
    durations = trace.dur_ns[ops]
    per_call = durations / calls_inside(trace)[ops]
    sets = _phase_sets(trace, windows)
    busy = iv.merge(_intervals(trace, ops), sets["dataloader"], sets["backward"])
    w_start, w_end = window_arrays(windows)
    covered = iv.measure_within(busy, w_start, w_end)
    order = np.argsort(step_of_op, kind="stable")
    step_sorted, dur_sorted, per_call_sorted = step_of_op[order], durations[order], per_call[order]
    bounds = np.searchsorted(step_sorted, np.arange(len(windows) + 1))
    result = []
    for k, window in enumerate(windows):
        own = dur_sorted[bounds[k]:bounds[k + 1]]
        short = per_call_sorted[bounds[k]:bounds[k + 1]] < short_op_ns
        result.append(
            HostOpStats(
                step=window,
                ops=int(own.size),
                median_op_ns=int(np.median(own)) if own.size else 0,
                short_ops=int(short.sum()),
                short_op_ns=int(own[short].sum()),
                gap_ns=int(max(window.duration_ns - covered[k], 0)),
                short_op_threshold_ns=short_op_ns,
            )
        )
    return result
