"""Links between events: device work -> the host call that launched it -> the CPU op around it.

Kineto gives a runtime/driver call (``cudaLaunchKernel``, ``cudaMemcpyAsync``...) and the
device activity it started the same ``correlation`` id; ``cuda_sync`` events carry the id of
the synchronising call. The CPU op responsible for a host call is the outermost ``cpu_op``
enclosing it on the same thread (the aten op that Python called, e.g. ``aten::item`` rather
than the ``aten::_local_scalar_dense`` inside it); where no op encloses the call, the op with
the call's ``External id`` is used.
"""

from __future__ import annotations

import numpy as np

from perfdoctor.trace.categories import LAUNCH_CATEGORIES, Category
from perfdoctor.trace.model import Trace
from perfdoctor.trace.nesting import parents
from perfdoctor.trace.ranges import operator_mask

_DEVICE_SIDE = (Category.KERNEL, Category.MEMCPY, Category.MEMSET, Category.CUDA_SYNC, Category.GPU_USER_ANNOTATION)


def launcher(trace: Trace) -> np.ndarray:
    """Per event: index of the runtime/driver call with its correlation id (device-side events
    only), -1 when there is none."""
    cached = trace.derived.get("launcher")
    if cached is not None:
        return cached
    result = np.full(len(trace), -1, dtype=np.int64)
    calls = np.flatnonzero(trace.category_mask(*LAUNCH_CATEGORIES) & (trace.correlation >= 0))
    device = np.flatnonzero(trace.category_mask(*_DEVICE_SIDE) & (trace.correlation >= 0))
    if calls.size and device.size:
        order = np.argsort(trace.correlation[calls], kind="stable")
        keys = trace.correlation[calls][order]
        wanted = trace.correlation[device]
        at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        found = keys[at] == wanted
        result[device[found]] = calls[order][at[found]]
    trace.derived["launcher"] = result
    return result


def outermost_op(trace: Trace) -> np.ndarray:
    """Per event: the outermost CPU op enclosing it on its thread (itself for a top-level op),
    -1 for events that no op encloses. Covers CPU ops and runtime/driver calls."""
    cached = trace.derived.get("outermost_op")
    if cached is not None:
        return cached
    ops = operator_mask(trace)
    mask = ops | trace.category_mask(*LAUNCH_CATEGORIES)
    parent = parents(trace, mask)
    # A runtime call never encloses anything we care about; only ops count as ancestors.
    parent = np.where((parent >= 0) & ops[np.maximum(parent, 0)], parent, -1)
    root = np.where(mask, np.arange(len(trace)), -1)
    root = np.where(parent >= 0, parent, root)
    while True:
        up = parent[np.maximum(root, 0)]
        step = (root >= 0) & (up >= 0)
        if not step.any():
            break
        root = np.where(step, up, root)
    root = np.where(ops[np.maximum(root, 0)] & (root >= 0), root, -1)
    trace.derived["outermost_op"] = root
    return root


def responsible_op(trace: Trace, calls: np.ndarray) -> np.ndarray:
    """For host calls (indices), the CPU op that made them: the outermost enclosing op, else the
    op with the same External id; -1 if neither exists."""
    result = outermost_op(trace)[calls]
    missing = np.flatnonzero(result < 0)
    if missing.size:
        ops = np.flatnonzero(operator_mask(trace) & (trace.external_id >= 0))
        if ops.size:
            order = np.argsort(trace.external_id[ops], kind="stable")
            keys = trace.external_id[ops][order]
            wanted = trace.external_id[calls[missing]]
            at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
            found = (keys[at] == wanted) & (wanted >= 0)
            result[missing[found]] = ops[order][at[found]]
    return result
