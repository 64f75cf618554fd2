"""Whose GPU recorded the trace: NVIDIA (CUDA, CUPTI) or AMD (ROCm, roctracer/rocprofiler).

Kineto writes both in the same shape (``kernel``, ``gpu_memcpy``, ``cuda_runtime``...), so the
vendor shows only in names: the runtime calls (``cudaLaunchKernel`` against ``hipLaunchKernel``,
``hipExtModuleLaunchKernel``, ``hipMemcpyWithStream``) and the devices' names in
``deviceProperties`` ("AMD Instinct MI300X", "AMD Radeon Graphics"). It matters for what the
device properties mean: on ROCm, ``computeMajor``/``computeMinor`` are the GCN architecture
(9.0 for an MI250's gfx90a), not a CUDA compute capability, and copies do not say whether host
memory was pinned.
"""

from __future__ import annotations

from typing import Literal

from perfdoctor.trace.categories import LAUNCH_CATEGORIES
from perfdoctor.trace.model import Trace

Vendor = Literal["nvidia", "amd"]
_AMD_NAMES = ("amd", "radeon", "instinct")


def device_vendor(properties: dict[str, object]) -> Vendor | None:
    """The vendor one deviceProperties entry names, if it names one."""
    name = properties.get("name")
    if isinstance(name, str):
        lowered = name.lower()
        if any(word in lowered for word in _AMD_NAMES):
            return "amd"
        if any(word in lowered for word in ("nvidia", "tesla", "geforce", "quadro", "rtx")):
            return "nvidia"
    return None


def trace_vendor(trace: Trace) -> Vendor | None:
    """"amd" when the trace's runtime calls are HIP's or its devices are AMD's, "nvidia" when
    they are CUDA's; None for a trace with neither (a CPU-only trace)."""
    if "vendor" in trace.derived:
        vendor: Vendor | None = trace.derived["vendor"]
        return vendor
    calls = trace.category_mask(*LAUNCH_CATEGORIES)
    called = {trace.names[i] for i in set(trace.name_id[calls].tolist())}
    vendor = None
    if any(name.startswith("hip") for name in called):
        vendor = "amd"
    elif any(name.startswith("cu") for name in called):
        vendor = "nvidia"
    else:
        named = {device_vendor(props) for props in trace.metadata.device_properties} - {None}
        vendor = named.pop() if len(named) == 1 else None
    trace.derived["vendor"] = vendor
    return vendor
