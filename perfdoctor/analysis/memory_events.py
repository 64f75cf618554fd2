"""What a leak is made of, from a trace's memory events (torch.profiler with profile_memory=True):
the operators whose allocations in one profiled step are still not freed when the trace ends.

Each "[memory]" event is an allocation (bytes > 0) or a free (bytes < 0) at an address. An
allocation made in a profiled step, other than the last one, with no free of its address later
in the trace outlived the steps after it: training keeps nothing from one step to the next
(gradients and optimizer state are made in the first steps, before the profiled window), so what
every step leaves behind is what grows. It is charged to the innermost CPU op running on the
allocating thread at that moment, and an op is reported only when every profiled step but the
last left some of its allocations behind; its bytes and allocations per step are the median
step's. The last step's survivors are not counted: whatever it
made may be freed just after the trace ends.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..model.memory import LeakSite
from ..trace.categories import Category
from ..trace.model import Trace
from ..trace.steps import step_windows, window_of

TOP_SITES = 8
MIN_BYTES_PER_STEP = 64 * 1024  # smaller survivors are bookkeeping, not a leak worth naming
WALK_BACK = 64  # ops looked at, at most, to find the one enclosing an event


def _unfreed(ts: np.ndarray, size: np.ndarray, addr: np.ndarray) -> np.ndarray:
    """Mask of allocations never followed by a free of their address."""
    order = np.lexsort((ts, addr))
    a, s = addr[order], size[order]
    freed_next = np.zeros(order.size, dtype=bool)
    freed_next[:-1] = (a[1:] == a[:-1]) & (s[1:] < 0)
    out = np.zeros(order.size, dtype=bool)
    out[order] = (s > 0) & ~freed_next
    return out


def _enclosing_ops(trace: Trace, times: np.ndarray, tids: np.ndarray) -> list[str | None]:
    """The innermost CPU op on the same thread enclosing each time (None outside any)."""
    ops = np.flatnonzero(trace.category_mask(Category.CPU_OP))
    names: list[str | None] = [None] * times.size
    by_thread: dict[int, np.ndarray] = {}
    for tid in np.unique(tids):
        picked = ops[trace.tid[ops] == tid]
        by_thread[int(tid)] = picked[np.argsort(trace.ts_ns[picked], kind="stable")]
    for i, (t, tid) in enumerate(zip(times, tids)):
        candidates = by_thread.get(int(tid))
        if candidates is None or candidates.size == 0:
            continue
        k = int(np.searchsorted(trace.ts_ns[candidates], t, side="right")) - 1
        for j in range(k, max(-1, k - WALK_BACK), -1):
            op = candidates[j]
            if trace.ts_ns[op] + trace.dur_ns[op] >= t:
                names[i] = trace.name(int(op))
                break
    return names


def leak_sites(trace: Trace | None) -> list[LeakSite]:
    memory = trace.memory if trace is not None else None
    if trace is None or memory is None or not len(memory):
        return []
    windows = [w for w in step_windows(trace) if not w.synthetic]
    if len(windows) < 3:  # two steps at least before the last, to see a pattern
        return []
    step = window_of(memory.ts_ns, windows)
    kept = _unfreed(memory.ts_ns, memory.bytes, memory.addr) & (step >= 0) & (step < len(windows) - 1)
    if not kept.any():
        return []
    index = np.flatnonzero(kept)
    ops = _enclosing_ops(trace, memory.ts_ns[index], memory.tid[index])
    counted_steps = len(windows) - 1
    per_site: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, op in zip(index, ops):
        device = f"cuda:{int(memory.device_id[i])}" if memory.device_type[i] == 1 else "cpu"
        per_site[(op or "(outside any op)", device)][int(step[i])].append(int(memory.bytes[i]))
    sites = []
    for (op, device), steps in per_site.items():
        if len(steps) < counted_steps:
            continue  # not every step: a one-off (a lazily made buffer), not a leak
        # The median step: a one-off (a buffer made once, in one of the steps) does not inflate it.
        per_step = float(np.median([sum(sizes) for sizes in steps.values()]))
        count = float(np.median([len(sizes) for sizes in steps.values()]))
        if per_step < MIN_BYTES_PER_STEP:
            continue
        sites.append(LeakSite(op=op, device=device, bytes_per_step=round(per_step, 1), allocations_per_step=round(count, 2)))
    return sorted(sites, key=lambda site: -site.bytes_per_step)[:TOP_SITES]
