"""Which host thread runs the training loop, and which run the autograd engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdoctor.trace.model import Trace
from perfdoctor.trace.nesting import top_level
from perfdoctor.trace.ranges import backward_mask, host_ranges, profiler_step_mask


@dataclass(frozen=True)
class ThreadId:
    pid: int
    tid: int


def _on(trace: Trace, thread: ThreadId) -> np.ndarray:
    return (trace.pid == thread.pid) & (trace.tid == thread.tid)


def on_thread(trace: Trace, thread: ThreadId) -> np.ndarray:
    key = ("on_thread", thread)
    cached = trace.derived.get(key)
    if cached is None:
        cached = trace.derived[key] = _on(trace, thread)
    return cached


def main_thread(trace: Trace) -> ThreadId | None:
    """The training loop's thread: the one holding the ProfilerStep annotations, else the host
    thread with the most time in top-level ranges. None for a trace without host ranges."""
    if "main_thread" in trace.derived:
        return trace.derived["main_thread"]
    steps = profiler_step_mask(trace)
    candidates = steps if steps.any() else top_level(trace, host_ranges(trace))
    result = None
    if candidates.any():
        pid, tid = trace.pid[candidates], trace.tid[candidates]
        pairs, inverse = np.unique(np.stack([pid, tid], axis=1), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        count = np.bincount(inverse)
        busy = np.bincount(inverse, weights=trace.dur_ns[candidates].astype(np.float64))
        # Most ProfilerSteps (or ranges), then most time.
        best = np.lexsort((busy, count))[-1] if steps.any() else int(np.argmax(busy))
        result = ThreadId(int(pairs[best][0]), int(pairs[best][1]))
    trace.derived["main_thread"] = result
    return result


def autograd_threads(trace: Trace) -> list[ThreadId]:
    """Threads of the main process, other than the main one, that run autograd engine work: GPU
    backward runs on the engine's device threads while the main thread waits in backward().
    Recognised by the engine's ranges (``autograd::engine::evaluate_function: ...``) or, in
    PyTorch 1.x traces that have none, by the graph nodes themselves (``...Backward``,
    ``torch::autograd::AccumulateGrad``)."""
    if "autograd_threads" in trace.derived:
        return trace.derived["autograd_threads"]
    main = main_thread(trace)
    backward = backward_mask(trace)
    threads: list[ThreadId] = []
    if backward.any():
        pairs = np.unique(np.stack([trace.pid[backward], trace.tid[backward]], axis=1), axis=0)
        threads = [ThreadId(int(p), int(t)) for p, t in pairs if ThreadId(int(p), int(t)) != main]
        if main is not None:
            threads = [t for t in threads if t.pid == main.pid]
    trace.derived["autograd_threads"] = threads
    return threads
