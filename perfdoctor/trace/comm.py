"""Collective communication per step: how long, how much hidden behind compute, what kind.

- ``device_comm_ns``: union of the step's communication kernels (NCCL; see
  :data:`perfdoctor.trace.gpu.COMM_KERNEL`), attributed to the step that launched them.
- ``overlapped_ns``: the part of that time during which some compute (non-communication)
  kernel ran on the same device, whatever step launched it; ``exposed_ns`` is the rest: time
  in which the device only communicated (what communication costs the step).
- ``host_comm_ns``: union of the host-side collective ranges started in the step: CPU ops and
  annotations named ``nccl:*``, ``gloo:*``, ``mpi:*``, ``ucc:*`` or ``c10d::*`` (for CPU-only
  gloo jobs, this is all of it).
- ``collectives``: count by type of the outermost host-side collective ranges (``c10d::allreduce_``
  around ``nccl:all_reduce`` is one all_reduce). A trace with communication kernels but no
  host-side ranges is counted from the kernels instead. The type comes from the name:
  all_reduce, reduce_scatter, all_gather, all_to_all, broadcast, barrier, send_recv, reduce,
  gather, scatter, else other (``_allgather_base``, ``allgather_into_tensor_coalesced``... are
  all_gather).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from perfdoctor.trace import intervals as iv
from perfdoctor.trace.categories import Category
from perfdoctor.trace.gpu import comm_kernel_mask, devices
from perfdoctor.trace.model import Trace
from perfdoctor.trace.nesting import top_level
from perfdoctor.trace.steps import StepWindow, step_of_events, step_windows, window_of

COLLECTIVE_PREFIXES = ("nccl:", "gloo:", "mpi:", "ucc:", "c10d::")
_TYPES = (
    ("all_reduce", re.compile(r"all_?reduce")),
    ("reduce_scatter", re.compile(r"reduce_?scatter")),
    ("all_gather", re.compile(r"all_?gather")),
    ("all_to_all", re.compile(r"all_?to_?all")),
    ("broadcast", re.compile(r"broadcast")),
    ("barrier", re.compile(r"barrier")),
    ("send_recv", re.compile(r"send|recv")),
    ("reduce", re.compile(r"reduce")),
    ("gather", re.compile(r"gather")),
    ("scatter", re.compile(r"scatter")),
)


@dataclass(frozen=True)
class CommStepStats:
    step: StepWindow
    device_comm_ns: int
    overlapped_ns: int
    exposed_ns: int
    host_comm_ns: int
    collectives: dict[str, int] = field(default_factory=dict)

    @property
    def overlap_share(self) -> float:
        """Share of device communication hidden behind compute kernels."""
        return self.overlapped_ns / self.device_comm_ns if self.device_comm_ns else 0.0


def collective_type(name: str) -> str:
    """all_reduce, broadcast, all_gather... for a collective op or kernel name."""
    lowered = name.lower()
    for prefix in COLLECTIVE_PREFIXES:
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix):]
            break
    for kind, pattern in _TYPES:
        if pattern.search(lowered):
            return kind
    return "other"


def host_collective_mask(trace: Trace) -> np.ndarray:
    """Outermost host-side collective ranges (see the module docstring)."""
    ranges = trace.category_mask(Category.CPU_OP, Category.USER_ANNOTATION) & trace.name_mask(
        lambda n: n.lower().startswith(COLLECTIVE_PREFIXES)
    )
    return top_level(trace, ranges)


def comm_steps(trace: Trace, windows: list[StepWindow] | None = None, device: int | None = None) -> list[CommStepStats]:
    """Per step, collective communication on the device and the host (module docstring)."""
    windows = step_windows(trace) if windows is None else windows
    n = len(windows)
    if n == 0:
        return []
    found = devices(trace)
    device = found[0] if device is None and found else device
    step = step_of_events(trace, windows)
    kernels = trace.category_mask(Category.KERNEL) & (trace.device == device)
    comm = comm_kernel_mask(trace) & kernels
    compute = kernels & ~comm

    comm_index = np.flatnonzero(comm & (step >= 0))
    c_start = trace.ts_ns[comm_index]
    c_end = c_start + trace.dur_ns[comm_index]
    c_step = step[comm_index]
    device_ns = iv.grouped_total(c_start, c_end, c_step, n)
    compute_set = iv.union(trace.ts_ns[compute], trace.ts_ns[compute] + trace.dur_ns[compute])
    piece_start, piece_end, owner = iv.intersect_each(c_start, c_end, compute_set)
    overlapped = iv.grouped_total(piece_start, piece_end, c_step[owner], n)

    host = host_collective_mask(trace)
    host_step = np.where(host, window_of(trace.ts_ns, windows), -1)
    host_index = np.flatnonzero(host_step >= 0)
    host_ns = iv.grouped_total(
        trace.ts_ns[host_index], trace.ts_ns[host_index] + trace.dur_ns[host_index], host_step[host_index], n
    )
    counted, counted_step = (host_index, host_step[host_index]) if host.any() else (comm_index, c_step)
    kinds = {int(i): collective_type(trace.names[int(i)]) for i in np.unique(trace.name_id[counted])}
    counts: list[dict[str, int]] = [{} for _ in range(n)]
    for name_id, k in zip(trace.name_id[counted].tolist(), counted_step.tolist()):
        kind = kinds[name_id]
        counts[k][kind] = counts[k].get(kind, 0) + 1

    return [
        CommStepStats(
            step=window,
            device_comm_ns=int(device_ns[k]),
            overlapped_ns=int(overlapped[k]),
            exposed_ns=int(device_ns[k] - overlapped[k]),
            host_comm_ns=int(host_ns[k]),
            collectives=dict(sorted(counts[k].items())),
        )
        for k, window in enumerate(windows)
    ]
