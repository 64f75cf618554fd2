"""Convolution input shapes per profiled step (``aten::convolution``'s input dims): whether they
stay the same, which is what makes cuDNN's autotuner (benchmark=True) pay off."""

from __future__ import annotations

import numpy as np

from ...model.gpu import ConvShapes
from ...trace import Trace
from ...trace.steps import StepWindow, window_of


def conv_shapes(trace: Trace, windows: list[StepWindow]) -> ConvShapes | None:
    convs = np.flatnonzero(trace.name_mask(lambda name: name == "aten::convolution"))
    if convs.size == 0:
        return None
    step = window_of(trace.ts_ns[convs], windows)
    convs, step = convs[step >= 0], step[step >= 0]
    if convs.size == 0:
        return None
    known = trace.input_dims_id[convs] >= 0
    per_step = [sorted(trace.input_dims[d] for d in trace.input_dims_id[convs[known & (step == k)]]) for k in range(len(windows))]
    static = None
    if known.all() and len(windows) >= 2:
        static = all(shapes == per_step[0] for shapes in per_step[1:])
    return ConvShapes(
        ops_per_step=round(convs.size / len(windows), 2),
        shapes_recorded=bool(known.all()),
        static_shapes=static,
        distinct_shapes=len({shape for shapes in per_step for shape in shapes}) if known.any() else None,
    )
