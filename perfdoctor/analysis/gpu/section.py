"""The report's `gpu` section: what the device did in the profiled steps (from the trace), what
NVML saw over the run, the peak memory torch recorded, and the MFU.

Device-side numbers are per step means over the *measured* steps, for the busiest device in the
trace; see :mod:`perfdoctor.trace.gpu` for how busy, idle and waiting-for-the-host are measured.
The measured steps are the profiled steps the report's statistics use (a foreign trace's first,
warm-up step is left out as the step statistics leave it out: see analysis/foreign.py), so that
`steps.step_ms` here is the same mean step every share in the report is taken of
(docs/contracts.md, "One step time for every share"); `per_step` lists every profiled step.
Utilization over the measured steps is kernel time over their time plus the device's lag (how
long the last step's work ran past its window: a GPU-bound run's device runs behind the host)
less its lead (how long earlier steps' work ran into the first measured window).

The section is None for a run that never used a GPU. Its shape is documented in docs/contracts.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...model.environment import Environment
from ...model.gpu import GpuDevice, GpuMemory, GpuSection, GpuStepRow, GpuSteps, OpCause, OptimizerConfig, OtherDevice
from ...trace import Trace
from ...trace.categories import Category
from ...trace.gpu import GpuStepStats, devices, gpu_steps, sync_call_mask
from ...trace.steps import StepWindow, launch_time, step_of_events, step_windows
from .device import complete_from_settings, device_memory, nvml_device, settings_device, trace_device
from .convolution import conv_shapes
from .idle import idle_split, stall_ops
from .kernels import kernel_classes
from .mfu import StepFlops, mfu_section, step_flops
from .nvml import summarize_nvml
from .optimizer import optimizer_kernels
from .units import ms

TOP_CAUSES = 8


@dataclass
class TraceGpu:
    """The parts of the section one trace gives, and the FLOPs its steps did."""

    section: GpuSection
    flops: StepFlops


def _causes(steps: list[GpuStepStats], attribute: str, n: int) -> list[OpCause]:
    counts: Counter[str] = Counter()
    times: Counter[str] = Counter()
    for step in steps:
        for cause in getattr(step, attribute):
            counts[cause.op] += cause.count
            times[cause.op] += cause.total_ns
    ranked = sorted(counts, key=lambda op: (-counts[op], -times[op], op))[:TOP_CAUSES]
    return [OpCause(op=op, per_step=round(counts[op] / n, 2), ms_per_step=ms(times[op] / n)) for op in ranked]


def trace_gpu(trace: Trace, measured: list[StepWindow] | None = None) -> TraceGpu | None:
    """The device part of the section, from one trace; None when the trace has no device work.

    `measured`: the step windows the means are over (default: every one); `per_step` lists all."""
    every = step_windows(trace)
    found = devices(trace)
    if not every or not found:
        return None
    windows = [w for w in measured if w in every] if measured is not None else every
    windows = windows or every
    device = found[0]
    all_steps = gpu_steps(trace, every, device)
    chosen = [k for k, w in enumerate(every) if w in windows]
    steps = [all_steps[k] for k in chosen]
    n = len(steps)
    on_device = trace.device == device
    kernels = trace.category_mask(Category.KERNEL) & on_device
    activity = trace.category_mask(Category.KERNEL, Category.MEMCPY, Category.MEMSET) & on_device
    step = step_of_events(trace, windows)
    syncs = sync_call_mask(trace) & ((trace.device < 0) | on_device)
    split = idle_split(trace, activity, step, n, syncs)
    htod_pageable = trace.category_mask(Category.MEMCPY) & on_device & trace.name_mask(
        lambda name: "HtoD" in name and "Pageable" in name
    )
    pageable_htod = np.bincount(step[htod_pageable & (step >= 0)], minlength=n)[:n]
    pageable_htod_ns = np.bincount(
        step[htod_pageable & (step >= 0)], weights=trace.dur_ns[htod_pageable & (step >= 0)].astype(np.float64), minlength=n
    )[:n]
    durations = np.array([s.kernel_sum_ns for s in steps])
    kernel_index = np.flatnonzero(kernels & (step >= 0))

    def mean(values: Sequence[float] | np.ndarray) -> float:
        return float(np.mean(values)) if n else 0.0

    total_ns = sum(s.step.duration_ns for s in steps)
    # When the device runs behind the host, the last step's work ends after its window: count
    # that lag in the span, or a GPU-bound run would show more kernel time than time.
    launched = activity & (step >= 0)
    lag_ns = max(0, int((trace.ts_ns[launched] + trace.dur_ns[launched]).max()) - windows[-1].end_ns) if launched.any() else 0
    # Likewise the steps before the measured ones (a warm-up step left out): their work running
    # into the first measured window is not time the measured steps' work could have used.
    earlier = activity & (launch_time(trace) < windows[0].start_ns)
    lead_ns = 0
    if earlier.any():
        lead_ns = min(total_ns, max(0, int((trace.ts_ns[earlier] + trace.dur_ns[earlier]).max()) - windows[0].start_ns))
    host_wait = np.array([s.idle_host_wait_ns for s in steps])
    measured_idle = split.after_sync + split.launch + split.stall
    # The trace library caps host-wait idle at the step's idle time; scale the split the same way.
    scale = np.where(measured_idle > host_wait, host_wait / np.maximum(measured_idle, 1), 1.0)
    summary = GpuSteps(
        profiled=len(every),
        measured=n,
        synthetic=bool(windows[0].synthetic),
        step_ms=ms(total_ns / n),
        device_lag_ms=ms(lag_ns),
        kernel_ms=ms(mean([s.kernel_ns for s in steps])),
        comm_ms=ms(mean([s.comm_ns for s in steps])),
        memcpy_ms=ms(mean([s.memcpy.total_ns for s in steps])),
        memcpy_htod_ms=ms(mean([s.memcpy.htod_ns for s in steps])),
        memcpy_dtoh_ms=ms(mean([s.memcpy.dtoh_ns for s in steps])),
        memcpy_dtod_ms=ms(mean([s.memcpy.dtod_ns for s in steps])),
        memset_ms=ms(mean([s.memset_ns for s in steps])),
        busy_ms=ms(mean([s.busy_ns for s in steps])),
        idle_ms=ms(mean([s.idle_ns for s in steps])),
        idle_host_wait_ms=ms(mean(host_wait)),
        idle_after_sync_ms=ms(mean(split.after_sync * scale)),
        idle_launch_gaps_ms=ms(mean(split.launch * scale)),
        idle_host_stalls_ms=ms(mean(split.stall * scale)),
        idle_other_ms=ms(mean([s.idle_other_ns for s in steps])),
        kernels=round(mean([s.kernels for s in steps]), 2),
        short_kernel_share=round(sum(s.short_kernels for s in steps) / max(1, sum(s.kernels for s in steps)), 4),
        short_kernel_us=steps[0].short_kernel_threshold_ns / 1e3,
        median_kernel_us=round(float(np.median(trace.dur_ns[kernel_index])) / 1e3, 3) if kernel_index.size else None,
        tensor_core_share=round(sum(s.tensor_core_ns for s in steps) / max(1, int(durations.sum())), 4),
        syncs=round(mean([s.syncs for s in steps]), 2),
        sync_ms=ms(mean([s.sync_ns for s in steps])),
        pageable_copies=round(mean([s.pageable_copies for s in steps]), 2),
        pageable_htod_copies=round(mean(pageable_htod), 2),
        pageable_htod_ms=ms(mean(pageable_htod_ns)),
        pageable_bytes=round(mean([s.pageable_bytes for s in steps])),
    )
    section = GpuSection(
        device=trace_device(trace, device),
        utilization=round(min(1.0, sum(s.kernel_ns for s in steps) / max(1, total_ns + lag_ns - lead_ns)), 4),
        utilization_source="trace",
        peak_memory_bytes=None,
        steps=summary,
        per_step=[
            GpuStepRow(
                step=s.step.number,
                step_ms=ms(s.step.duration_ns),
                kernel_ms=ms(s.kernel_ns),
                utilization=round(s.utilization, 4),
                idle_ms=ms(s.idle_ns),
                idle_host_wait_ms=ms(s.idle_host_wait_ns),
                kernels=s.kernels,
                syncs=s.syncs,
                pageable_copies=s.pageable_copies,
            )
            for s in all_steps
        ],
        sync_causes=_causes(steps, "sync_causes", n),
        pageable_causes=_causes(steps, "pageable_causes", n),
        stall_ops=stall_ops(trace, split.stalls, n),
        kernels=kernel_classes(trace, kernels, step, n),
        conv=conv_shapes(trace, windows),
        optimizer=optimizer_kernels(trace, windows, kernels),
        other_devices=[
            OtherDevice(index=d, utilization=round(min(1.0, sum(s.kernel_ns for s in others) / max(1, total_ns)), 4))
            for d in found[1:]
            for others in [gpu_steps(trace, windows, d)]
        ],
        memory=GpuMemory.unknown(),
        nvml=None,
        mfu=None,
    )
    return TraceGpu(section=section, flops=step_flops(trace, windows))


def gpu_section(
    trace: Trace | None = None,
    *,
    nvml: dict[str, object] | None = None,
    environment: Environment | None = None,
    optimizers: list[OptimizerConfig] | None = None,
    measured: list[StepWindow] | None = None,
) -> GpuSection | None:
    """The report's `gpu` section, or None when the run never used a GPU.

    `nvml` is the GPU sampler's raw file; `optimizers` what the step clock recorded of each;
    `measured` the trace's step windows the means are over (default: all of them).
    """
    environment = environment or Environment()
    from_trace = trace_gpu(trace, measured) if trace is not None else None
    nvml_summary = summarize_nvml(nvml)
    used_nvml = bool(nvml_summary and nvml_summary.used_by_this_process)
    cuda_initialized = bool(environment.cuda and environment.cuda.initialized)
    if from_trace is None and not used_nvml and not cuda_initialized:
        return None
    if from_trace is not None:
        section, flops = from_trace.section, from_trace.flops
    else:
        flops = None
        listed = settings_device(environment, None)
        section = GpuSection(
            device=GpuDevice(
                index=listed.index if listed else None,
                name=listed.name if listed else None,
                capability=listed.capability if listed else None,
                total_memory_bytes=listed.total_memory_bytes if listed else None,
            ),
            utilization=None,
            utilization_source=None,
            peak_memory_bytes=None,
            steps=None,
            memory=GpuMemory.unknown(),
            nvml=None,
            mfu=None,
        )
    device = complete_from_settings(section.device, environment)
    if section.utilization is None and nvml_summary is not None and nvml_summary.sampled():
        sampled = nvml_device(nvml_summary, device)
        if sampled is not None and sampled.utilization_mean_percent is not None:
            section.utilization = round(sampled.utilization_mean_percent / 100, 4)
            section.utilization_source = "nvml"
    section.memory = device_memory(environment, nvml_summary, device)
    section.peak_memory_bytes = section.memory.torch_peak_reserved_bytes or section.memory.nvml_process_peak_bytes
    section.nvml = nvml_summary
    section.optimizers = [o for o in optimizers or [] if "cuda" in o.devices] or None
    if flops is not None and section.steps is not None:
        precision = section.kernels.dominant_precision if section.kernels else None
        section.mfu = mfu_section(flops, section.steps.step_ms, device.name, precision)
    return section
