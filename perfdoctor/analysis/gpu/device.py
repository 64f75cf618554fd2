"""Which device the section describes, as the trace, the settings snapshot and NVML name it, and
its memory peaks (torch's allocator and NVML)."""

from __future__ import annotations

from ...model.environment import CudaDevice, Environment, compute_capability
from ...model.gpu import GpuDevice, GpuMemory, NvmlDevice, NvmlSummary
from ...trace import Trace


def trace_device(trace: Trace, index: int) -> GpuDevice:
    """The device as the trace's deviceProperties describe it (only its index when they do not).
    An AMD GPU's computeMajor/Minor are its GCN architecture, not a CUDA compute capability:
    left out (see perfdoctor.trace.vendor)."""
    from ...trace.vendor import trace_vendor

    vendor = trace_vendor(trace)
    for props in trace.metadata.device_properties:
        if props.get("id") == index:
            return GpuDevice(
                index=index,
                name=props.get("name"),
                capability=None if vendor == "amd" else compute_capability(props.get("computeMajor"), props.get("computeMinor")),
                total_memory_bytes=props.get("totalGlobalMem"),
                sms=props.get("numSms"),
                vendor=vendor,
            )
    return GpuDevice(index=index, vendor=vendor)


def settings_device(environment: Environment, index: int | None) -> CudaDevice | None:
    """The settings snapshot's device with this index (None: the current device), else its first."""
    cuda = environment.cuda
    listed = (cuda.devices if cuda else None) or []
    wanted = cuda.current_device if index is None and cuda else index
    for device in listed:
        if device.index == wanted:
            return device
    return listed[0] if listed else None


def complete_from_settings(device: GpuDevice, environment: Environment) -> GpuDevice:
    """Fill what a trace without deviceProperties leaves out from the settings snapshot."""
    fallback = settings_device(environment, device.index)
    if fallback is not None:
        device.name = device.name or fallback.name
        device.capability = device.capability or fallback.capability
        device.total_memory_bytes = device.total_memory_bytes or fallback.total_memory_bytes
    device.tensor_cores = device.capability[0] >= 7 if device.capability else None
    return device


def nvml_device(nvml: NvmlSummary | None, device: GpuDevice) -> NvmlDevice | None:
    """The sampled device that is this one: the only one this process used, else by index.

    NVML numbers devices by PCI bus and ignores CUDA_VISIBLE_DEVICES, so an index match is a
    guess; the process's own memory on a device (matched by pid) is what decides when NVML sees it.
    """
    sampled = nvml.sampled() if nvml else []
    if len(sampled) == 1:
        return sampled[0]
    return next((d for d in sampled if d.index == device.index), sampled[0] if sampled else None)


def device_memory(environment: Environment, nvml: NvmlSummary | None, device: GpuDevice) -> GpuMemory:
    cuda = environment.cuda
    peaks = {p.index: p for p in (cuda.memory_peaks if cuda else None) or []}
    torch_peak = peaks.get(device.index) or (next(iter(peaks.values())) if len(peaks) == 1 else None)
    sampled = nvml_device(nvml, device)
    total = device.total_memory_bytes or (sampled.memory_total_bytes if sampled else None)
    result = GpuMemory(
        total_bytes=total,
        torch_peak_allocated_bytes=torch_peak.allocated_bytes if torch_peak else None,
        torch_peak_reserved_bytes=torch_peak.reserved_bytes if torch_peak else None,
        nvml_process_peak_bytes=sampled.process_memory_peak_bytes if sampled else None,
        nvml_device_used_peak_bytes=sampled.memory_used_peak_bytes if sampled else None,
        peak_share=None,
    )
    measured = [
        value
        for value in (
            result.torch_peak_allocated_bytes,
            result.torch_peak_reserved_bytes,
            result.nvml_process_peak_bytes,
            result.nvml_device_used_peak_bytes,
        )
        if value
    ]
    result.peak_share = round(max(measured) / total, 4) if total and measured else None
    return result
