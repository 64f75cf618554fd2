"""What :func:`read_trace` returns: columns of complete events plus the trace's metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfdoctor.trace.categories import Category

#: The event columns of a Trace, with their dtypes, in the order they are documented.
COLUMNS: dict[str, type] = {
    "name_id": np.int32,  # index into Trace.names
    "cat": np.int8,  # a Category
    "ts_ns": np.int64,  # start, ns on the trace's own clock
    "dur_ns": np.int64,
    "pid": np.int64,  # string pids/tids are mapped to ids <= STRING_ID_BASE (see Trace.string_ids)
    "tid": np.int64,
    "device": np.int16,  # GPU index, -1 for host events
    "stream": np.int32,  # CUDA stream, -1 for host events
    "correlation": np.int64,  # links a runtime/driver call to the device work it launched, -1 if none
    "external_id": np.int64,  # links a CPU op to its runtime calls and kernels, -1 if none
    "input_dims_id": np.int32,  # index into Trace.input_dims ("Input Dims" as written), -1 if not recorded
    "nbytes": np.int64,  # bytes moved by a memcpy/memset, -1 otherwise
    "flops": np.float64,  # floating-point operations of an op profiled with_flops=True, -1 otherwise
}

#: String pids/tids ("Spans", "stream 7") get ids at or below this, far from any real pid or tid.
STRING_ID_BASE = -(1 << 48)


@dataclass
class SkippedInput:
    """What the reader could not use, when it could use the rest."""

    events: int = 0  # events dropped (wrong field types, negative durations...)
    truncated: bool = False  # the input ended (or broke) before the JSON did; all before it was kept
    reasons: dict[str, int] = field(default_factory=dict)  # human-readable reason -> how many times
    first_at: dict[str, int] = field(default_factory=dict)  # reason -> byte offset of its first case

    def add(self, reason: str, count: int = 1, *, events: bool = True, at: int | None = None) -> None:
        if count <= 0:
            return
        self.reasons[reason] = self.reasons.get(reason, 0) + count
        if at is not None and at >= 0 and reason not in self.first_at:
            self.first_at[reason] = at
        if events:
            self.events += count

    def __bool__(self) -> bool:
        return bool(self.events or self.truncated or self.reasons)

    def summary(self) -> str:
        """One line for the user, e.g. "skipped 3 events: negative dur (3)"."""
        parts = [self._describe(reason, count) for reason, count in self.reasons.items()]
        head = f"skipped {self.events} event{'s' if self.events != 1 else ''}" if self.events else "partial input"
        return f"{head}: {'; '.join(parts)}" if parts else head

    def _describe(self, reason: str, count: int) -> str:
        at = self.first_at.get(reason)
        where = "" if at is None else (f" at byte {at}" if count == 1 else f", first at byte {at}")
        return f"{reason} ({count}{where})" if count > 1 else f"{reason}{where}"


@dataclass
class TraceMetadata:
    """The small top-level blocks of a trace and the names from its "M" events."""

    schema_version: int | None = None
    device_properties: list[dict[str, Any]] = field(default_factory=list)
    distributed_info: dict[str, Any] | None = None
    base_time_ns: int | None = None
    trace_name: str | None = None
    display_time_unit: str | None = None
    record_shapes: bool = False  # ops carry "Input Dims" (record_shapes=True)
    thread_names: dict[tuple[int, int], str] = field(default_factory=dict)
    process_names: dict[int, str] = field(default_factory=dict)
    process_labels: dict[int, str] = field(default_factory=dict)  # e.g. {0: "GPU 0", 1234: "CPU"}
    extra: dict[str, Any] = field(default_factory=dict)  # any other top-level key

    @property
    def rank(self) -> int | None:
        value = (self.distributed_info or {}).get("rank")
        return value if isinstance(value, int) else None

    @property
    def world_size(self) -> int | None:
        value = (self.distributed_info or {}).get("world_size")
        return value if isinstance(value, int) else None

    @property
    def backend(self) -> str | None:
        value = (self.distributed_info or {}).get("backend")
        return value if isinstance(value, str) else None


@dataclass(eq=False)
class MemoryEvents:
    """The trace's "[memory]" instant events (torch.profiler with profile_memory=True), in time
    order: each an allocation (bytes > 0) or a free (bytes < 0) at an address."""

    ts_ns: np.ndarray
    bytes: np.ndarray
    addr: np.ndarray
    device_type: np.ndarray  # 0 CPU, 1 CUDA
    device_id: np.ndarray
    tid: np.ndarray

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])


@dataclass(eq=False)
class Trace:
    """Complete ("X") events of one trace file as numpy columns, sorted by start time.

    Events that start together are ordered longest first, so an enclosing range precedes
    what it encloses. All columns have one entry per event; see :data:`COLUMNS`.
    """

    path: Path
    names: list[str]
    input_dims: list[str]
    name_id: np.ndarray
    cat: np.ndarray
    ts_ns: np.ndarray
    dur_ns: np.ndarray
    pid: np.ndarray
    tid: np.ndarray
    device: np.ndarray
    stream: np.ndarray
    correlation: np.ndarray
    external_id: np.ndarray
    input_dims_id: np.ndarray
    nbytes: np.ndarray
    flops: np.ndarray
    metadata: TraceMetadata = field(default_factory=TraceMetadata)
    skipped: SkippedInput = field(default_factory=SkippedInput)
    string_ids: dict[int, str] = field(default_factory=dict)  # id -> the string pid/tid it stands for
    # Derived indexes shared by the analyses (main thread, op nesting...), built on first use.
    derived: dict[Any, Any] = field(default_factory=dict, repr=False)
    memory: MemoryEvents | None = None  # "[memory]" events, when the profiler recorded them

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])

    @property
    def end_ns(self) -> np.ndarray:
        return self.ts_ns + self.dur_ns

    def name_mask(self, predicate: Callable[[str], bool]) -> np.ndarray:
        """Events whose name satisfies predicate (evaluated once per distinct name)."""
        if not self.names:
            return np.zeros(len(self), dtype=bool)
        table = np.fromiter((bool(predicate(n)) for n in self.names), dtype=bool, count=len(self.names))
        return table[self.name_id]

    def category_mask(self, *categories: Category) -> np.ndarray:
        return np.isin(self.cat, np.array([int(c) for c in categories], dtype=np.int8))

    def name(self, index: int) -> str:
        return self.names[int(self.name_id[index])]

    def describe_id(self, value: int) -> str:
        """A pid or tid as the trace wrote it."""
        return self.string_ids.get(int(value), str(int(value)))

    def thread_name(self, pid: int, tid: int) -> str | None:
        return self.metadata.thread_names.get((int(pid), int(tid)))

    def memory_bytes(self) -> int:
        """Bytes held by the event columns."""
        return sum(getattr(self, column).nbytes for column in COLUMNS)
