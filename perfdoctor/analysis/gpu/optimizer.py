"""The optimizer step on the device: kernels launched inside ``Optimizer.step#`` ranges, and how
many of them are multi-tensor (foreach) or fused kernels."""

from __future__ import annotations

import re

import numpy as np

from ...model.gpu import OptimizerKernels
from ...trace import Trace
from ...trace import intervals as iv
from ...trace.steps import StepWindow, launch_time, window_of
from .units import ms

FOREACH_KERNEL = re.compile(r"multi_tensor_apply|fused_adam|fused_sgd|_fused_|fusedadam", re.IGNORECASE)


def optimizer_kernels(trace: Trace, windows: list[StepWindow], kernels: np.ndarray) -> OptimizerKernels | None:
    ranges = np.flatnonzero(trace.name_mask(lambda name: name.startswith("Optimizer.step#")))
    ranges = ranges[window_of(trace.ts_ns[ranges], windows) >= 0]
    if ranges.size == 0:
        return None
    spans = iv.union(trace.ts_ns[ranges], trace.ts_ns[ranges] + trace.dur_ns[ranges])
    index = np.flatnonzero(kernels)
    launched = launch_time(trace)[index]
    k = np.searchsorted(spans[0], launched, side="right") - 1
    inside = index[(k >= 0) & (launched < spans[1][np.maximum(k, 0)])]
    foreach = trace.name_mask(lambda name: FOREACH_KERNEL.search(name) is not None)[inside]
    n = len(windows)
    return OptimizerKernels(
        host_ms=ms(iv.total(spans) / n),
        kernels=round(inside.size / n, 2),
        kernel_ms=ms(trace.dur_ns[inside].sum() / n),
        foreach_kernels=round(int(foreach.sum()) / n, 2),
        foreach_share=round(float(foreach.mean()), 4) if inside.size else None,
        names=sorted({trace.names[trace.name_id[r]].split("#", 1)[1] for r in ranges}),
    )
