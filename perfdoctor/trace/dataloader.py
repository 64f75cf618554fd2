"""The training loop's waits for batches, as ``torch.utils.data.DataLoader`` records them.

Every ``next()`` on a DataLoader's iterator is a ``record_function`` range named
``enumerate(DataLoader)#<iterator class>.__next__`` (PyTorch 1.8 to today; older versions
wrote it as a ``cpu_op``/``Operator``, later ones as a ``user_annotation``). The iterator
class says how batches are made: ``_SingleProcessDataLoaderIter`` loads them in the training
process itself (``num_workers=0``), ``_MultiProcessingDataLoaderIter`` receives them from
worker processes (``num_workers`` of at least 1; the trace does not say how many). A subclass
of either (a framework's own iterator) says neither.

A wait is a top-level such range on the main thread (a ``__next__`` inside another, as some
wrappers nest them, is part of the outer wait), counted for the step window it starts in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from perfdoctor.trace.model import Trace
from perfdoctor.trace.nesting import top_level
from perfdoctor.trace.ranges import DATALOADER_PREFIX, host_ranges
from perfdoctor.trace.steps import StepWindow, window_of
from perfdoctor.trace.threads import main_thread, on_thread

SINGLE_PROCESS = "_SingleProcessDataLoaderIter"
MULTI_PROCESS = "_MultiProcessingDataLoaderIter"
_ITERATOR = re.compile(r"^enumerate\(DataLoader\)#(?P<iterator>[A-Za-z_][\w.]*?)\.__next__$")


@dataclass(frozen=True)
class LoaderWaits:
    """One iterator class's waits on the main thread, in trace order."""

    iterator: str | None  # the iterator class (None: a DataLoader range not named like __next__)
    step: np.ndarray  # per wait: index of the step window it starts in (-1: outside every window)
    duration_ns: np.ndarray

    @property
    def num_workers(self) -> int | None:
        """0 for the single-process iterator; None when the trace cannot tell (at least 1 for
        the multi-process one)."""
        return 0 if self.iterator == SINGLE_PROCESS else None

    @property
    def multiprocess(self) -> bool:
        return self.iterator == MULTI_PROCESS


def iterator_of(name: str) -> str | None:
    """The iterator class of a DataLoader range's name, None if it names none."""
    match = _ITERATOR.match(name)
    return match.group("iterator") if match else None


def loader_waits(trace: Trace, windows: list[StepWindow]) -> list[LoaderWaits]:
    """The main thread's DataLoader waits, one entry per iterator class (most waited on first)."""
    main = main_thread(trace)
    if main is None:
        return []
    ranges = host_ranges(trace) & on_thread(trace, main) & trace.name_mask(lambda n: n.startswith(DATALOADER_PREFIX))
    waits = np.flatnonzero(top_level(trace, ranges))
    if waits.size == 0:
        return []
    step = window_of(trace.ts_ns[waits], windows)
    classes = [iterator_of(trace.names[i]) for i in trace.name_id[waits].tolist()]
    found = []
    for iterator in dict.fromkeys(classes):
        mine = np.array([c == iterator for c in classes], dtype=bool)
        found.append(LoaderWaits(iterator, step[mine], trace.dur_ns[waits[mine]]))
    return sorted(found, key=lambda w: -int(w.duration_ns[w.step >= 0].sum()))
