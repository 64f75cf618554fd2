"""Training steps: the ``ProfilerStep#N`` windows, and which step each device event belongs to.

A step window is the span of the ``ProfilerStep#N`` range on the main thread (see
:func:`perfdoctor.trace.threads.main_thread`); if a number appears more than once the longest
range wins. A trace without ProfilerSteps (a profiler used without ``prof.step()``) is one
synthetic window from its first to its last event, flagged ``synthetic``.

Device work (kernels, copies, memsets, syncs) belongs to the step whose host thread launched it:
its runtime/driver call is found by correlation id, and the step is the window containing that
call's start. Work launched in step N that runs after step N's CPU range ended (the GPU lags the
host) is therefore still step N's. Device events without a launching call (rare; e.g. a
trace with the runtime activity disabled) fall back to the window containing their own start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdoctor.trace.categories import Category
from perfdoctor.trace.links import launcher
from perfdoctor.trace.model import Trace
from perfdoctor.trace.ranges import PROFILER_STEP, profiler_step_mask
from perfdoctor.trace.threads import main_thread, on_thread


@dataclass(frozen=True)
class StepWindow:
    number: int  # N of ProfilerStep#N; 0 for the synthetic whole-trace window
    start_ns: int
    end_ns: int
    synthetic: bool = False  # no ProfilerStep in the trace: the window spans the whole trace

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


def step_windows(trace: Trace) -> list[StepWindow]:
    """The step windows in time order, never overlapping."""
    if "step_windows" in trace.derived:
        return list(trace.derived["step_windows"])
    windows: list[StepWindow] = []
    main = main_thread(trace)
    steps = profiler_step_mask(trace)
    if main is not None and steps.any():
        steps = np.flatnonzero(steps & on_thread(trace, main))
        longest: dict[int, tuple[int, int]] = {}
        for i in steps:
            match = PROFILER_STEP.match(trace.names[trace.name_id[i]])
            number = int(match.group(1)) if match else 0
            start, end = int(trace.ts_ns[i]), int(trace.ts_ns[i] + trace.dur_ns[i])
            if number not in longest or end - start > longest[number][1] - longest[number][0]:
                longest[number] = (start, end)
        ordered = sorted(longest.items(), key=lambda item: item[1])
        for k, (number, (start, end)) in enumerate(ordered):
            if k + 1 < len(ordered):
                end = min(end, ordered[k + 1][1][0])
            if end > start:
                windows.append(StepWindow(number, start, end))
    if not windows and len(trace):
        real = ~trace.category_mask(Category.TRACE, Category.OVERHEAD)
        if not real.any():
            real = np.ones(len(trace), dtype=bool)
        start = int(trace.ts_ns[real].min())
        end = int((trace.ts_ns[real] + trace.dur_ns[real]).max())
        windows.append(StepWindow(0, start, max(end, start + 1), synthetic=True))
    trace.derived["step_windows"] = windows
    return list(windows)


def window_arrays(windows: list[StepWindow]) -> tuple[np.ndarray, np.ndarray]:
    starts = np.fromiter((w.start_ns for w in windows), dtype=np.int64, count=len(windows))
    ends = np.fromiter((w.end_ns for w in windows), dtype=np.int64, count=len(windows))
    return starts, ends


def window_of(times: np.ndarray, windows: list[StepWindow]) -> np.ndarray:
    """Index of the window containing each time, -1 outside every window."""
    starts, ends = window_arrays(windows)
    k = np.searchsorted(starts, times, side="right") - 1
    inside = (k >= 0) & (times < ends[np.maximum(k, 0)])
    return np.where(inside, k, -1)


def launch_time(trace: Trace) -> np.ndarray:
    """Per event: the start of the host call that launched it (device events), else its own start."""
    cached = trace.derived.get("launch_time")
    if cached is None:
        source = launcher(trace)
        cached = np.where(source >= 0, trace.ts_ns[np.maximum(source, 0)], trace.ts_ns)
        trace.derived["launch_time"] = cached
    return cached


def step_of_events(trace: Trace, windows: list[StepWindow]) -> np.ndarray:
    """Per event, the index into windows of the step it belongs to (by launch time), or -1."""
    return window_of(launch_time(trace), windows)
