"""Matmul and convolution kernels, told apart by name and sorted by precision.

``half`` (FP16/BF16/FP8), ``tf32`` and ``fp32`` (CUDA cores); cuDNN's NCHW<->NHWC layout
transforms are counted on their own. AMD's GEMMs (Tensile/hipBLASLt ``Cijk_*``) carry their
precision in a type letter (``TENSILE_GEMM``); MIOpen's convolutions are matched by name too. Names are all a trace offers (dtypes would need the ops'
``Input type``, which the trace reader does not keep).
"""

from __future__ import annotations

import re

import numpy as np

from ...model.gpu import PRECISIONS, KernelClasses, Precision
from ...trace import Trace
from .units import ms

GEMM_KERNEL = re.compile(r"gemm|gemv|wgmma|nvjet|splitkreduce|flash_fwd|flash_bwd|fmha|^Cijk_", re.IGNORECASE)
CONV_KERNEL = re.compile(
    r"conv(?!ert)|scudnn|winograd|fprop|dgrad|wgrad|implicit_gemm|implicit_convolve|fft2d|gcgemm"
    r"|igemm_(?:fwd|bwd|wrw)",  # MIOpen's implicit-GEMM convolutions on AMD
    re.IGNORECASE,
)
# AMD's rocBLAS/hipBLASLt GEMMs come from Tensile, named Cijk_<A index>_<B index>_<data type>...:
# the type letter says the inputs' precision (H half, B bfloat16, F8/B8 fp8, I8 int8, X xfloat32,
# S single, D double), and "_MX" after a single-precision type says it ran in xfloat32 (TF32).
TENSILE_GEMM = re.compile(r"^Cijk_[A-Za-z]+_[A-Za-z]+_(?P<type>4xi8|I8|F8|B8|[SDCZHBXI])[A-Z0-9]*(?P<xf32>_MX)?")
_TENSILE_PRECISION: dict[str, Precision] = {"H": "half", "B": "half", "F8": "half", "B8": "half", "I8": "half", "4xi8": "half", "X": "tf32"}
LAYOUT_KERNEL = re.compile(r"nchwtonhwc|nhwctonchw|nchw2nhwc|nhwc2nchw", re.IGNORECASE)
# Helpers that cuDNN runs around convolutions, and batch norm: not the matmul/conv work itself.
CONV_HELPER = re.compile(r"bn_fw|bn_bw|batch_norm|reduce_wgrad|computeoffsets|elementwise", re.IGNORECASE)
HALF_KERNEL = re.compile(r"f16|bf16|fp16|h884|h1688|h16816|hmma|half|bfloat16|e4m3|e5m2|fp8|nvjet_[hb]", re.IGNORECASE)
TF32_KERNEL = re.compile(r"tf32|tfloat32|s1688|s16816|tensor16x8x8|nvjet_t", re.IGNORECASE)
AMP_OPS = ("aten::_amp_foreach_non_finite_check_and_unscale_", "aten::_amp_update_scale_")


def kernel_kind(name: str) -> str | None:
    """"conv", "matmul", "layout" (an NCHW<->NHWC transform) or None for other kernels."""
    if LAYOUT_KERNEL.search(name):
        return "layout"
    if CONV_HELPER.search(name):
        return None
    if CONV_KERNEL.search(name):
        return "conv"
    if GEMM_KERNEL.search(name):
        return "matmul"
    return None


def kernel_precision(name: str) -> Precision:
    tensile = TENSILE_GEMM.match(name)
    if tensile:
        return "tf32" if tensile.group("xf32") else _TENSILE_PRECISION.get(tensile.group("type"), "fp32")
    if HALF_KERNEL.search(name):
        return "half"
    if TF32_KERNEL.search(name):
        return "tf32"
    return "fp32"


def kernel_classes(trace: Trace, kernels: np.ndarray, step: np.ndarray, n: int) -> KernelClasses:
    """Per profiled step: matmul and convolution time by precision, and layout transforms."""
    kinds = np.array([kernel_kind(name) or "" for name in trace.names], dtype=object)
    precisions = np.array([kernel_precision(name) for name in trace.names], dtype=object)
    index = np.flatnonzero(kernels & (step >= 0))
    kind, precision, duration = kinds[trace.name_id[index]], precisions[trace.name_id[index]], trace.dur_ns[index]
    times = {
        (k, p): ms(duration[(kind == k) & (precision == p)].sum() / n) for k in ("matmul", "conv") for p in PRECISIONS
    }
    layout = kind == "layout"
    totals = {p: times["matmul", p] + times["conv", p] for p in PRECISIONS}
    best: Precision = max(PRECISIONS, key=totals.__getitem__)
    dominant = best if any(totals.values()) else None
    return KernelClasses(
        matmul_half_ms=times["matmul", "half"],
        matmul_tf32_ms=times["matmul", "tf32"],
        matmul_fp32_ms=times["matmul", "fp32"],
        conv_half_ms=times["conv", "half"],
        conv_tf32_ms=times["conv", "tf32"],
        conv_fp32_ms=times["conv", "fp32"],
        layout_transform_ms=ms(duration[layout].sum() / n),
        layout_transforms=round(int(layout.sum()) / n, 2),
        dominant_precision=dominant,
        amp_scaler_ops=bool(trace.name_mask(lambda name: name in AMP_OPS).any()),
    )
