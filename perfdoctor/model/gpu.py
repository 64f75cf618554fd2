"""The report's `gpu` section: the busiest device's work in the profiled steps (from the trace),
what NVML sampled over the run, peak memory, and the MFU. None for a run that never used a GPU.

Device times are means per profiled step, in ms; see perfdoctor/analysis/gpu/ for how each is
measured.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from .numbers import Count, NonNegative, Share

Precision = Literal["half", "tf32", "fp32"]
PRECISIONS: tuple[Precision, ...] = ("half", "tf32", "fp32")


class GpuDevice(msgspec.Struct, kw_only=True):
    index: int | None = None
    name: str | None = None
    capability: tuple[int, int] | None = None  # compute capability (major, minor)
    total_memory_bytes: int | None = None
    sms: int | None | UnsetType = UNSET  # from the trace's deviceProperties only
    tensor_cores: bool | None = None  # compute capability 7.0 or newer
    vendor: Literal["nvidia", "amd"] | None = None  # from a trace's runtime calls or device names


class GpuSteps(msgspec.Struct, kw_only=True):
    """Means per measured step, from the trace: the profiled steps the report's step statistics
    use (a foreign trace's first, warm-up step left out), so that `step_ms` is the report's one
    step time for shares (docs/contracts.md)."""

    profiled: int  # profiled steps (rows of `per_step`)
    synthetic: bool  # no ProfilerStep ranges: the whole trace is one step
    step_ms: float
    device_lag_ms: float  # how long the last step's device work ran past its window
    kernel_ms: float
    comm_ms: float
    memcpy_ms: float
    memcpy_htod_ms: float
    memcpy_dtoh_ms: float
    memcpy_dtod_ms: float
    memset_ms: float
    busy_ms: float
    idle_ms: float
    idle_host_wait_ms: float
    idle_after_sync_ms: float
    idle_launch_gaps_ms: float
    idle_host_stalls_ms: float
    idle_other_ms: float
    kernels: float
    short_kernel_share: float
    short_kernel_us: float
    median_kernel_us: float | None
    tensor_core_share: float
    syncs: float
    sync_ms: float
    pageable_copies: float
    pageable_htod_copies: float
    pageable_htod_ms: float
    pageable_bytes: int
    measured: int | None = None  # the steps these means are over (None: a report from before it was said)


class GpuStepRow(msgspec.Struct, kw_only=True):
    step: Count
    step_ms: NonNegative
    kernel_ms: NonNegative
    utilization: Share
    idle_ms: float
    idle_host_wait_ms: float
    kernels: int
    syncs: int
    pageable_copies: int


class OpCause(msgspec.Struct, kw_only=True):
    """A host op that caused something on the device (a sync, a pageable copy), per step."""

    op: str
    per_step: float
    ms_per_step: float


class StallOp(msgspec.Struct, kw_only=True):
    """A host op running while the device waited 1 ms or more."""

    op: str
    ms_per_step: float


class KernelClasses(msgspec.Struct, kw_only=True):
    """Matmul and convolution kernel time per step by precision, and layout transforms."""

    matmul_half_ms: float
    matmul_tf32_ms: float
    matmul_fp32_ms: float
    conv_half_ms: float
    conv_tf32_ms: float
    conv_fp32_ms: float
    layout_transform_ms: float
    layout_transforms: float
    dominant_precision: Precision | None
    amp_scaler_ops: bool  # a GradScaler's ops ran

    def matmul_ms(self, precision: Precision) -> float:
        value: float = getattr(self, f"matmul_{precision}_ms")
        return value

    def conv_ms(self, precision: Precision | None = None) -> float:
        if precision is None:
            return sum(self.conv_ms(p) for p in PRECISIONS)
        value: float = getattr(self, f"conv_{precision}_ms")
        return value

    def precision_ms(self, precision: Precision) -> float:
        """Matmul and convolution time at one precision."""
        return self.matmul_ms(precision) + self.conv_ms(precision)


class ConvShapes(msgspec.Struct, kw_only=True):
    ops_per_step: float
    shapes_recorded: bool
    static_shapes: bool | None  # None: shapes not recorded, or a single profiled step
    distinct_shapes: int | None


class OptimizerKernels(msgspec.Struct, kw_only=True):
    """Kernels launched inside Optimizer.step, per step."""

    host_ms: float
    kernels: float
    kernel_ms: float
    foreach_kernels: float
    foreach_share: float | None
    names: list[str]


class OptimizerConfig(msgspec.Struct, kw_only=True):
    """An optimizer as the step clock saw it."""

    type: str | None = None
    foreach: bool | None = None
    fused: bool | None = None
    parameters: int | None = None
    devices: list[str] = msgspec.field(default_factory=list)


class OtherDevice(msgspec.Struct, kw_only=True):
    index: int
    utilization: Share


class GpuMemory(msgspec.Struct, kw_only=True):
    total_bytes: Count | None
    torch_peak_allocated_bytes: Count | None
    torch_peak_reserved_bytes: Count | None
    nvml_process_peak_bytes: Count | None
    nvml_device_used_peak_bytes: Count | None
    peak_share: NonNegative | None  # the largest peak over the total

    @classmethod
    def unknown(cls) -> GpuMemory:
        return cls(
            total_bytes=None, torch_peak_allocated_bytes=None, torch_peak_reserved_bytes=None,
            nvml_process_peak_bytes=None, nvml_device_used_peak_bytes=None, peak_share=None,
        )


class NvmlDevice(msgspec.Struct, kw_only=True):
    """Means and peaks of one device's NVML samples over the steady part of the run."""

    index: int | None
    name: str | None
    utilization_mean_percent: float | None
    utilization_peak_percent: float | None
    memory_utilization_mean_percent: float | None
    memory_used_peak_bytes: int | None
    memory_total_bytes: int | None
    process_memory_peak_bytes: int | None
    sm_clock_mean_mhz: float | None
    sm_clock_max_mhz: float | None
    memory_clock_mean_mhz: float | None
    power_mean_w: float | None
    power_peak_w: float | None
    power_limit_w: float | None
    temperature_peak_c: float | None
    throttle_reasons: dict[str, float]  # reason -> share of samples
    pcie_rx_mean_bytes_per_s: float | None
    pcie_tx_mean_bytes_per_s: float | None


class NvmlSummary(msgspec.Struct, kw_only=True):
    """{"available": false, "reason"} when NVML could not be used; else the sampled devices."""

    available: bool
    reason: str | None | UnsetType = UNSET
    samples: int | UnsetType = UNSET
    interval_s: float | None | UnsetType = UNSET
    driver_version: str | None | UnsetType = UNSET
    used_by_this_process: list[int] | UnsetType = UNSET
    devices: list[NvmlDevice] | UnsetType = UNSET

    def sampled(self) -> list[NvmlDevice]:
        return [] if isinstance(self.devices, UnsetType) else self.devices


class Mfu(msgspec.Struct, kw_only=True):
    """Model FLOPs utilisation; `mfu` is None, with a `reason`, when it cannot be computed."""

    mfu: float | None
    flops_per_step: float | None
    flops_source: Literal["trace", "shapes", "none"]
    flops_counted: dict[str, float]
    achieved_tflops: float | None
    peak_tflops: float | None
    precision: Precision | None
    device_model: str | None
    reason: str | UnsetType = UNSET


class GpuSection(msgspec.Struct, kw_only=True):
    device: GpuDevice
    utilization: Share | None  # kernel time / profiled step time (trace), else NVML's mean / 100
    utilization_source: Literal["trace", "nvml"] | None
    peak_memory_bytes: Count | None  # torch's max reserved, else NVML's peak for this process
    steps: GpuSteps | None  # None without a GPU trace
    per_step: list[GpuStepRow] = msgspec.field(default_factory=list)
    sync_causes: list[OpCause] = msgspec.field(default_factory=list)
    pageable_causes: list[OpCause] = msgspec.field(default_factory=list)
    stall_ops: list[StallOp] = msgspec.field(default_factory=list)
    kernels: KernelClasses | None = None
    conv: ConvShapes | None = None
    optimizer: OptimizerKernels | None = None
    optimizers: list[OptimizerConfig] | None = None  # the step clock's, on CUDA
    other_devices: list[OtherDevice] = msgspec.field(default_factory=list)
    memory: GpuMemory
    nvml: NvmlSummary | None
    mfu: Mfu | None

    def capability(self) -> tuple[int, int] | None:
        return self.device.capability

    def device_name(self) -> str:
        return self.device.name or "the GPU"

    def trace_steps(self) -> GpuSteps | None:
        """The profiled steps' device numbers, when the run had a GPU trace with a step time."""
        return self.steps if self.steps is not None and self.steps.step_ms else None
