"""Model FLOPs utilisation: the FLOPs a profiled step did, over what the device could do in that time.

Peaks are NVIDIA's dense (no 2:4 sparsity) numbers in TFLOPS, from the product datasheets and
architecture whitepapers: FP32 on the CUDA cores, TF32 and FP16/BF16 on the Tensor Cores with FP32
accumulation (what PyTorch uses). A device this table does not know, or a precision it leaves
empty, gives no MFU rather than a wrong one.

FLOPs per step come from the trace's ``flops`` column when the profiler wrote one (ops profiled
with ``with_flops=True`` in PyTorch versions that export it). Recent versions keep FLOPs out of the
exported trace, so otherwise they are counted from the ops' input shapes (``record_shapes=True``):
every ``aten::mm``/``addmm``/``bmm``/``baddbmm`` (forward and backward matmuls are separate ops),
and each convolution as three times its forward FLOPs (forward, input gradient, weight gradient),
read from ``aten::convolution_backward``, whose inputs carry the output's size. Convolutions
without a backward (inference), attention kernels and elementwise work are not counted: the MFU
is then a lower bound, and the section says what was counted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ... import jsonfile
from ...model.gpu import Mfu, Precision
from ...trace import Trace
from ...trace.ranges import operator_mask
from ...trace.steps import StepWindow, window_of


@dataclass(frozen=True)
class PeakTflops:
    """Dense peak TFLOPS of one device model; None where the device has no such path."""

    model: str
    fp32: float | None
    tf32: float | None
    fp16: float | None
    bf16: float | None


def _peak(model: str, fp32: float | None, tf32: float | None, fp16: float | None, bf16: float | None) -> PeakTflops:
    return PeakTflops(model, fp32, tf32, fp16, bf16)


# (pattern on the lower-cased device name, peaks); the first match wins, so variants come first.
PEAK_TABLE: tuple[tuple[re.Pattern[str], PeakTflops], ...] = tuple(
    (re.compile(pattern), peak)
    for pattern, peak in (
        # Blackwell (HGX B200 per GPU: 2.2 PF TF32 and 4.5 PF FP16/BF16 with sparsity; FP32 not given)
        (r"\bb200\b", _peak("B200", None, 1100.0, 2250.0, 2250.0)),
        # Hopper (H100/H200 datasheets: SXM, PCIe, NVL; GH200 has the H100 SXM's tensor cores)
        (r"h200.*nvl", _peak("H200 NVL", 60.0, 417.5, 835.5, 835.5)),
        (r"\bh200\b", _peak("H200 SXM", 66.9, 494.7, 989.4, 989.4)),
        (r"gh200", _peak("GH200", 66.9, 494.7, 989.4, 989.4)),
        (r"h100.*nvl", _peak("H100 NVL", 60.0, 417.5, 835.5, 835.5)),
        (r"h100.*(pcie|hbm2e)", _peak("H100 PCIe", 51.2, 378.0, 756.0, 756.0)),
        (r"h100.*(sxm|hbm3)", _peak("H100 SXM", 66.9, 494.7, 989.4, 989.4)),
        # Ada (L4, L40, L40S datasheets; Ada whitepaper for the RTX 4090)
        (r"\bl40s\b", _peak("L40S", 91.6, 183.0, 362.05, 362.05)),
        (r"\bl40\b", _peak("L40", 90.5, 90.5, 181.05, 181.05)),
        (r"\bl4\b", _peak("L4", 30.3, 60.0, 121.0, 121.0)),
        (r"rtx 4090(?! d)", _peak("GeForce RTX 4090", 82.6, 82.6, 165.2, 165.2)),
        # Ampere (A100, A10, A30, A40, RTX A6000 datasheets; GA102 whitepaper for the RTX 3090).
        # A100 40/80 GB, SXM4 and PCIe share the same peaks (PG509 is an SXM4 board).
        (r"\ba100\b", _peak("A100", 19.5, 156.0, 312.0, 312.0)),
        # A10G (AWS only, no NVIDIA datasheet): as published in AWS/Baseten's A10 vs A10G comparison.
        (r"\ba10g\b", _peak("A10G", 35.0, 35.0, 70.0, 70.0)),
        (r"\ba10\b", _peak("A10", 31.2, 62.5, 125.0, 125.0)),
        (r"\ba30\b", _peak("A30", 10.3, 82.0, 165.0, 165.0)),
        (r"\ba40\b", _peak("A40", 37.4, 74.8, 149.7, 149.7)),
        (r"rtx a6000", _peak("RTX A6000", 38.7, 77.4, 154.8, 154.8)),
        (r"rtx 3090(?! ti)", _peak("GeForce RTX 3090", 35.6, 35.6, 71.0, 71.0)),
        # Turing and Volta (T4 and V100 datasheets): FP16 Tensor Cores only
        (r"\bt4\b", _peak("T4", 8.1, None, 65.0, None)),
        (r"v100s", _peak("V100S PCIe", 16.4, None, 130.0, None)),
        (r"v100.*pcie", _peak("V100 PCIe", 14.0, None, 112.0, None)),
        (r"v100.*(sxm|dgxs)", _peak("V100 SXM2", 15.7, None, 125.0, None)),
    )
)

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def peak_for(device_name: str | None) -> PeakTflops | None:
    """The table's entry for a device name as CUDA or NVML reports it, None when unknown."""
    if not device_name:
        return None
    name = device_name.lower()
    for pattern, peak in PEAK_TABLE:
        if pattern.search(name):
            return peak
    return None


def peak_tflops(peak: PeakTflops, precision: Precision) -> float | None:
    """Peak for a precision class of the analysis ("fp32", "tf32" or "half"), None if absent."""
    if precision == "half":
        return peak.fp16 or peak.bf16
    return peak.tf32 if precision == "tf32" else peak.fp32


# --- FLOPs per step ----------------------------------------------------------------------------

MATMUL_OPS = {"aten::mm": 0, "aten::addmm": 1, "aten::bmm": 0, "aten::baddbmm": 1}  # name -> first matrix input
CONV_BACKWARD = "aten::convolution_backward"
CONV_PASSES = 3  # forward, input gradient, weight gradient


@dataclass(frozen=True)
class StepFlops:
    per_step: float | None  # mean FLOPs per profiled step; None when nothing could be counted
    source: Literal["trace", "shapes", "none"]  # the flops column, counted from input dims, or nothing
    counted: dict[str, float]  # FLOPs per step by what was counted (op name or "trace")


def _dims(text: str) -> list[list[int]] | None:
    try:
        value = jsonfile.loads(text)
    except jsonfile.UnreadableJSON:
        return None
    return value if isinstance(value, list) else None


def _matmul_flops(dims: list[list[int]], first: int) -> float:
    if len(dims) < first + 2:
        return 0.0
    a, b = dims[first], dims[first + 1]
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        return 0.0
    batch = math.prod(a[:-2]) if len(a) > 2 else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def _conv_flops(dims: list[list[int]]) -> float:
    """Forward FLOPs of a convolution from convolution_backward's (grad_output, input, weight)."""
    if len(dims) < 3:
        return 0.0
    grad_output, _, weight = dims[0], dims[1], dims[2]
    if len(grad_output) < 3 or len(weight) != len(grad_output):
        return 0.0
    # grad_output [N, C_out, *spatial], weight [C_out, C_in / groups, *kernel]
    return 2.0 * math.prod(grad_output) * math.prod(weight[1:])


def step_flops(trace: Trace, windows: list[StepWindow]) -> StepFlops:
    if not windows:
        return StepFlops(None, "none", {})
    n = len(windows)
    in_steps = window_of(trace.ts_ns, windows) >= 0
    ops = operator_mask(trace) & in_steps
    recorded = ops & (trace.flops > 0)
    if recorded.any():
        total = float(trace.flops[recorded].sum())
        return StepFlops(total / n, "trace", {"trace": total / n})
    counted: dict[str, float] = {}
    wanted = trace.name_mask(lambda name: name in MATMUL_OPS or name == CONV_BACKWARD)
    for index in np.flatnonzero(ops & wanted & (trace.input_dims_id >= 0)):
        name = trace.names[trace.name_id[index]]
        dims = _dims(trace.input_dims[trace.input_dims_id[index]])
        if not dims:
            continue
        flops = CONV_PASSES * _conv_flops(dims) if name == CONV_BACKWARD else _matmul_flops(dims, MATMUL_OPS[name])
        if flops:
            counted[name] = counted.get(name, 0.0) + flops / n
    if not counted:
        return StepFlops(None, "none", {})
    return StepFlops(sum(counted.values()), "shapes", counted)


def mfu_section(flops: StepFlops, step_ms: float | None, device_name: str | None, precision: Precision | None) -> Mfu:
    """The report's `gpu.mfu` block; `mfu` is None (with a `reason`) when it cannot be computed."""
    peak = peak_for(device_name)
    result = Mfu(
        mfu=None,
        flops_per_step=flops.per_step,
        flops_source=flops.source,
        flops_counted={name: float(f"{value:.4g}") for name, value in flops.counted.items()},
        achieved_tflops=None,
        peak_tflops=None,
        precision=precision,
        device_model=peak.model if peak else None,
    )
    if flops.per_step is None:
        result.reason = "no FLOPs in the trace and no input shapes of matmuls or convolutions to count them from"
        return result
    if not step_ms:
        result.reason = "no step time"
        return result
    achieved = flops.per_step / (step_ms / 1e3) / 1e12
    result.achieved_tflops = round(achieved, 3)
    if peak is None:
        result.reason = f"device {device_name!r} is not in the peak-FLOPs table"
        return result
    if precision is None:
        result.reason = "no matmul or convolution kernels: the precision in use is unknown"
        return result
    value = peak_tflops(peak, precision)
    if value is None:
        result.reason = f"the {peak.model} table entry has no {precision} peak"
        return result
    result.peak_tflops = value
    result.mfu = float(f"{achieved / value:.4g}")
    return result
