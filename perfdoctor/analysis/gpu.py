"""The report's `gpu` section: what the device did in the profiled steps (from the trace), what
NVML saw over the run, the peak memory torch recorded, and the MFU.

Device-side numbers are per profiled step (means), for the busiest device in the trace; see
:mod:`perfdoctor.trace.gpu` for how busy, idle and waiting-for-the-host are measured. On top of it:

- Utilization over all profiled steps is kernel time over their time plus the device's lag: how
  long the last step's work ran past its window (a GPU-bound run's device runs behind the host).
- Idle waiting for the host is split three ways, per gap on the device's timeline: *after a sync*
  (a blocking host sync returned inside the gap: the host waited for the device to drain, then
  had to launch new work from nothing), *launch gaps* (shorter than ``LAUNCH_GAP_NS``: the host
  launching kernel after kernel more slowly than they run) and *host stalls* (longer gaps: data
  loading, Python work, CPU ops). For stalls, the top-level host ranges on the training thread
  that overlap them are the evidence of what the host was doing.
- Matmul and convolution kernels are told apart by name and sorted by precision: ``half``
  (FP16/BF16/FP8), ``tf32`` and ``fp32`` (CUDA cores); cuDNN's NCHW<->NHWC layout transforms
  are counted on their own. Names are all a trace offers (dtypes would need the ops' ``Input
  type``, which the trace reader does not keep).
- The optimizer: kernels launched inside ``Optimizer.step#`` ranges, and how many of them are
  multi-tensor (foreach) or fused kernels.
- Convolution input shapes per step (``aten::convolution``'s input dims), to tell static shapes.

The section is None for a run that never used a GPU. Its shape is documented in docs/contracts.md.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from .mfu import mfu_section, step_flops

LAUNCH_GAP_NS = 1_000_000  # host-wait gaps shorter than this are launch overhead; longer ones are stalls
TOP_CAUSES = 8
STEADY_FROM_STEP = 1  # NVML samples from before the end of the first step describe set-up, not training

GEMM_KERNEL = re.compile(r"gemm|gemv|wgmma|nvjet|splitkreduce|flash_fwd|flash_bwd|fmha", re.IGNORECASE)
CONV_KERNEL = re.compile(
    r"conv(?!ert)|scudnn|winograd|fprop|dgrad|wgrad|implicit_gemm|implicit_convolve|fft2d|gcgemm", re.IGNORECASE
)
LAYOUT_KERNEL = re.compile(r"nchwtonhwc|nhwctonchw|nchw2nhwc|nhwc2nchw", re.IGNORECASE)
# Helpers that cuDNN runs around convolutions, and batch norm: not the matmul/conv work itself.
CONV_HELPER = re.compile(r"bn_fw|bn_bw|batch_norm|reduce_wgrad|computeoffsets|elementwise", re.IGNORECASE)
HALF_KERNEL = re.compile(r"f16|bf16|fp16|h884|h1688|h16816|hmma|half|bfloat16|e4m3|e5m2|fp8|nvjet_[hb]", re.IGNORECASE)
TF32_KERNEL = re.compile(r"tf32|tfloat32|s1688|s16816|tensor16x8x8|nvjet_t", re.IGNORECASE)
FOREACH_KERNEL = re.compile(r"multi_tensor_apply|fused_adam|fused_sgd|_fused_|fusedadam", re.IGNORECASE)
AMP_OPS = ("aten::_amp_foreach_non_finite_check_and_unscale_", "aten::_amp_update_scale_")
PRECISION_CLASSES = ("half", "tf32", "fp32")


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


def kernel_precision(name: str) -> str:
    if HALF_KERNEL.search(name):
        return "half"
    if TF32_KERNEL.search(name):
        return "tf32"
    return "fp32"


def _ms(ns: float) -> float:
    return round(float(ns) / 1e6, 4)


# --- from the trace ------------------------------------------------------------------------------


def _idle_split(trace: Any, activity: np.ndarray, step: np.ndarray, n: int, syncs: np.ndarray) -> dict[str, Any]:
    """Per step: host-wait idle after syncs, in launch gaps and in stalls; the stall intervals.

    A gap in which a blocking sync returned was caused by it only as far as the host, had it not
    waited, could have queued the next work earlier: up to the time it was blocked. The rest of
    such a gap is launch gap or stall, by its length, like any other.
    """
    from ..trace.steps import launch_time

    empty = np.empty(0, np.int64)
    index = np.flatnonzero(activity)
    if index.size < 2:
        zeros = np.zeros(n, dtype=np.int64)
        return {"after_sync": zeros, "launch": zeros, "stall": zeros, "stalls": (empty, empty)}
    start, end = trace.ts_ns[index], trace.ts_ns[index] + trace.dur_ns[index]
    order = np.argsort(start, kind="stable")
    index, start, end = index[order], start[order], end[order]
    reach = np.maximum.accumulate(end)
    gap_start, gap_end, nxt = reach[:-1], start[1:], index[1:]
    waiting = (gap_end > gap_start) & (launch_time(trace)[nxt] > gap_start) & (step[nxt] >= 0)
    sync_index = np.flatnonzero(syncs)
    sync_end = trace.ts_ns[sync_index] + trace.dur_ns[sync_index]
    by_end = np.argsort(sync_end, kind="stable")
    sync_end, blocked = sync_end[by_end], trace.dur_ns[sync_index][by_end]
    lo = np.searchsorted(sync_end, gap_start, side="left")
    hi = np.searchsorted(sync_end, gap_end, side="right")
    after_sync = np.zeros(gap_start.size, dtype=np.int64)
    for k in np.flatnonzero(waiting & (hi > lo)):
        after_sync[k] = min(int(gap_end[k] - gap_start[k]), int(blocked[lo[k]:hi[k]].max()))
    rest = np.where(waiting, gap_end - gap_start - after_sync, 0)
    launch = (rest > 0) & (rest < LAUNCH_GAP_NS)
    stall = rest >= LAUNCH_GAP_NS
    owner = step[nxt]

    def per_step(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(owner[mask], weights=values[mask].astype(np.float64), minlength=n)[:n].astype(np.int64)

    return {
        "after_sync": per_step(after_sync, waiting),
        "launch": per_step(rest, launch),
        "stall": per_step(rest, stall),
        "stalls": (gap_end[stall] - rest[stall], gap_end[stall]),
    }


def _stall_ops(trace: Any, stalls: tuple[np.ndarray, np.ndarray], n: int) -> list[dict[str, Any]]:
    """The training thread's top-level host ranges overlapping the device's stall gaps."""
    from ..trace import intervals as iv
    from ..trace.nesting import top_level
    from ..trace.ranges import DATALOADER_PREFIX, operator_mask
    from ..trace.threads import main_thread, on_thread

    gaps = iv.union(*stalls)
    total = iv.total(gaps)
    main = main_thread(trace)
    if total == 0 or main is None:
        return []
    # Operators, not phase annotations ("## forward ##") that span whole parts of the step.
    loading = trace.name_mask(lambda name: name.startswith(DATALOADER_PREFIX))
    mask = (operator_mask(trace) | loading) & on_thread(trace, main)
    ranges = np.flatnonzero(top_level(trace, mask))
    starts, ends = trace.ts_ns[ranges], trace.ts_ns[ranges] + trace.dur_ns[ranges]
    piece_start, piece_end, owner = iv.intersect_each(starts, ends, gaps)
    overlap: Counter[str] = Counter()
    for k, length in zip(owner.tolist(), (piece_end - piece_start).tolist()):
        overlap[trace.names[trace.name_id[ranges[k]]]] += length
    covered = iv.total(iv.intersect(gaps, iv.union(starts, ends)))
    if total > covered:
        overlap["(Python, outside any op)"] += total - covered
    return [{"op": op, "ms_per_step": _ms(ns / n)} for op, ns in overlap.most_common(TOP_CAUSES)]


def _causes(steps: list[Any], attribute: str, n: int) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    times: Counter[str] = Counter()
    for step in steps:
        for cause in getattr(step, attribute):
            counts[cause.op] += cause.count
            times[cause.op] += cause.total_ns
    ranked = sorted(counts, key=lambda op: (-counts[op], -times[op], op))[:TOP_CAUSES]
    return [{"op": op, "per_step": round(counts[op] / n, 2), "ms_per_step": _ms(times[op] / n)} for op in ranked]


def _kernel_classes(trace: Any, kernels: np.ndarray, step: np.ndarray, n: int) -> dict[str, Any]:
    kinds = np.array([kernel_kind(name) or "" for name in trace.names], dtype=object)
    precisions = np.array([kernel_precision(name) for name in trace.names], dtype=object)
    index = np.flatnonzero(kernels & (step >= 0))
    kind, precision, duration = kinds[trace.name_id[index]], precisions[trace.name_id[index]], trace.dur_ns[index]
    result: dict[str, Any] = {}
    for k in ("matmul", "conv"):
        for p in PRECISION_CLASSES:
            result[f"{k}_{p}_ms"] = _ms(duration[(kind == k) & (precision == p)].sum() / n)
    layout = kind == "layout"
    result["layout_transform_ms"] = _ms(duration[layout].sum() / n)
    result["layout_transforms"] = round(int(layout.sum()) / n, 2)
    totals = {p: result[f"matmul_{p}_ms"] + result[f"conv_{p}_ms"] for p in PRECISION_CLASSES}
    result["dominant_precision"] = max(totals, key=lambda p: totals[p]) if any(totals.values()) else None
    result["amp_scaler_ops"] = bool(trace.name_mask(lambda name: name in AMP_OPS).any())
    return result


def _conv_shapes(trace: Any, windows: list[Any]) -> dict[str, Any] | None:
    from ..trace.steps import window_of

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
    return {
        "ops_per_step": round(convs.size / len(windows), 2),
        "shapes_recorded": bool(known.all()),
        "static_shapes": static,
        "distinct_shapes": len({shape for shapes in per_step for shape in shapes}) if known.any() else None,
    }


def _optimizer(trace: Any, windows: list[Any], kernels: np.ndarray) -> dict[str, Any] | None:
    from ..trace import intervals as iv
    from ..trace.steps import launch_time, window_of

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
    return {
        "host_ms": _ms(iv.total(spans) / n),
        "kernels": round(inside.size / n, 2),
        "kernel_ms": _ms(trace.dur_ns[inside].sum() / n),
        "foreach_kernels": round(int(foreach.sum()) / n, 2),
        "foreach_share": round(float(foreach.mean()), 4) if inside.size else None,
        "names": sorted({trace.names[trace.name_id[r]].split("#", 1)[1] for r in ranges}),
    }


def _device_properties(trace: Any, device: int) -> dict[str, Any]:
    for props in trace.metadata.device_properties:
        if props.get("id") == device:
            return {
                "name": props.get("name"),
                "capability": [props.get("computeMajor"), props.get("computeMinor")],
                "total_memory_bytes": props.get("totalGlobalMem"),
                "sms": props.get("numSms"),
            }
    return {}


def trace_gpu(trace: Any) -> dict[str, Any] | None:
    """The device part of the section, from one trace; None when the trace has no device work."""
    from ..trace.categories import Category
    from ..trace.gpu import devices, gpu_steps, sync_call_mask
    from ..trace.steps import step_of_events, step_windows

    windows = step_windows(trace)
    found = devices(trace)
    if not windows or not found:
        return None
    device = found[0]
    steps = gpu_steps(trace, windows, device)
    n = len(steps)
    on_device = trace.device == device
    kernels = trace.category_mask(Category.KERNEL) & on_device
    activity = trace.category_mask(Category.KERNEL, Category.MEMCPY, Category.MEMSET) & on_device
    step = step_of_events(trace, windows)
    syncs = sync_call_mask(trace) & ((trace.device < 0) | on_device)
    split = _idle_split(trace, activity, step, n, syncs)
    htod_pageable = trace.category_mask(Category.MEMCPY) & on_device & trace.name_mask(
        lambda name: "HtoD" in name and "Pageable" in name
    )
    pageable_htod = np.bincount(step[htod_pageable & (step >= 0)], minlength=n)[:n]
    pageable_htod_ns = np.bincount(
        step[htod_pageable & (step >= 0)], weights=trace.dur_ns[htod_pageable & (step >= 0)].astype(np.float64), minlength=n
    )[:n]
    durations = np.array([s.kernel_sum_ns for s in steps])
    kernel_index = np.flatnonzero(kernels & (step >= 0))

    def mean(values: Any) -> float:
        return float(np.mean(values)) if n else 0.0

    total_ns = sum(s.step.duration_ns for s in steps)
    # When the device runs behind the host, the last step's work ends after its window: count
    # that lag in the span, or a GPU-bound run would show more kernel time than time.
    launched = activity & (step >= 0)
    lag_ns = max(0, int((trace.ts_ns[launched] + trace.dur_ns[launched]).max()) - windows[-1].end_ns) if launched.any() else 0
    idle = {key: split[key] for key in ("after_sync", "launch", "stall")}
    host_wait = np.array([s.idle_host_wait_ns for s in steps])
    measured = sum(idle.values())
    # The trace library caps host-wait idle at the step's idle time; scale the split the same way.
    scale = np.where(measured > host_wait, host_wait / np.maximum(measured, 1), 1.0)
    per_step = [
        {
            "step": s.step.number,
            "step_ms": _ms(s.step.duration_ns),
            "kernel_ms": _ms(s.kernel_ns),
            "utilization": round(s.utilization, 4),
            "idle_ms": _ms(s.idle_ns),
            "idle_host_wait_ms": _ms(s.idle_host_wait_ns),
            "kernels": s.kernels,
            "syncs": s.syncs,
            "pageable_copies": s.pageable_copies,
        }
        for s in steps
    ]
    summary = {
        "profiled": n,
        "synthetic": bool(windows[0].synthetic),
        "step_ms": _ms(total_ns / n),
        "device_lag_ms": _ms(lag_ns),
        "kernel_ms": _ms(mean([s.kernel_ns for s in steps])),
        "comm_ms": _ms(mean([s.comm_ns for s in steps])),
        "memcpy_ms": _ms(mean([s.memcpy.total_ns for s in steps])),
        "memcpy_htod_ms": _ms(mean([s.memcpy.htod_ns for s in steps])),
        "memcpy_dtoh_ms": _ms(mean([s.memcpy.dtoh_ns for s in steps])),
        "memcpy_dtod_ms": _ms(mean([s.memcpy.dtod_ns for s in steps])),
        "memset_ms": _ms(mean([s.memset_ns for s in steps])),
        "busy_ms": _ms(mean([s.busy_ns for s in steps])),
        "idle_ms": _ms(mean([s.idle_ns for s in steps])),
        "idle_host_wait_ms": _ms(mean(host_wait)),
        "idle_after_sync_ms": _ms(mean(idle["after_sync"] * scale)),
        "idle_launch_gaps_ms": _ms(mean(idle["launch"] * scale)),
        "idle_host_stalls_ms": _ms(mean(idle["stall"] * scale)),
        "idle_other_ms": _ms(mean([s.idle_other_ns for s in steps])),
        "kernels": round(mean([s.kernels for s in steps]), 2),
        "short_kernel_share": round(sum(s.short_kernels for s in steps) / max(1, sum(s.kernels for s in steps)), 4),
        "short_kernel_us": steps[0].short_kernel_threshold_ns / 1e3,
        "median_kernel_us": round(float(np.median(trace.dur_ns[kernel_index])) / 1e3, 3) if kernel_index.size else None,
        "tensor_core_share": round(sum(s.tensor_core_ns for s in steps) / max(1, int(durations.sum())), 4),
        "syncs": round(mean([s.syncs for s in steps]), 2),
        "sync_ms": _ms(mean([s.sync_ns for s in steps])),
        "pageable_copies": round(mean([s.pageable_copies for s in steps]), 2),
        "pageable_htod_copies": round(mean(pageable_htod), 2),
        "pageable_htod_ms": _ms(mean(pageable_htod_ns)),
        "pageable_bytes": round(mean([s.pageable_bytes for s in steps])),
    }
    return {
        "device": {"index": device, **_device_properties(trace, device)},
        "utilization": round(min(1.0, sum(s.kernel_ns for s in steps) / max(1, total_ns + lag_ns)), 4),
        "steps": summary,
        "per_step": per_step,
        "sync_causes": _causes(steps, "sync_causes", n),
        "pageable_causes": _causes(steps, "pageable_causes", n),
        "stall_ops": _stall_ops(trace, split["stalls"], n),
        "kernels": _kernel_classes(trace, kernels, step, n),
        "conv": _conv_shapes(trace, windows),
        "optimizer": _optimizer(trace, windows, kernels),
        "flops": step_flops(trace, windows),
        "other_devices": [
            {"index": d, "utilization": round(min(1.0, sum(s.kernel_ns for s in others) / max(1, total_ns)), 4)}
            for d in found[1:]
            for others in [gpu_steps(trace, windows, d)]
        ],
    }


# --- from NVML -----------------------------------------------------------------------------------


def summarize_nvml(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per device: means and peaks of what the sampler read, over the steady part of the run."""
    if not raw:
        return None
    if not raw.get("available"):
        return {"available": False, "reason": raw.get("reason")}
    steps = raw.get("step") or []
    chosen = [i for i, s in enumerate(steps) if s >= STEADY_FROM_STEP] or list(range(len(steps)))
    devices = []
    for device in raw.get("devices") or []:
        samples = device.get("samples") or {}

        def values(name: str) -> list[float]:
            column = samples.get(name) or []
            return [column[i] for i in chosen if i < len(column) and column[i] is not None]

        def stat(name: str, how: Any, scale: float = 1.0, digits: int = 1) -> float | None:
            picked = values(name)
            return round(how(picked) * scale, digits) if picked else None

        def average(picked: list[float]) -> float:
            return sum(picked) / len(picked)

        throttles = Counter(name for names in values("throttle_reasons") for name in names)
        sampled = len(values("throttle_reasons"))
        devices.append(
            {
                "index": device.get("index"),
                "name": device.get("name"),
                "utilization_mean_percent": stat("utilization_gpu", average),
                "utilization_peak_percent": stat("utilization_gpu", max),
                "memory_utilization_mean_percent": stat("utilization_memory", average),
                "memory_used_peak_bytes": stat("memory_used_bytes", max, digits=0),
                "memory_total_bytes": device.get("memory_total_bytes"),
                "process_memory_peak_bytes": stat("process_memory_bytes", max, digits=0),
                "sm_clock_mean_mhz": stat("sm_clock_mhz", average),
                "sm_clock_max_mhz": device.get("sm_clock_max_mhz"),
                "memory_clock_mean_mhz": stat("memory_clock_mhz", average),
                "power_mean_w": stat("power_w", average),
                "power_peak_w": stat("power_w", max),
                "power_limit_w": device.get("power_limit_w"),
                "temperature_peak_c": stat("temperature_c", max, digits=0),
                "throttle_reasons": {name: round(count / sampled, 3) for name, count in throttles.most_common()} if sampled else {},
                "pcie_rx_mean_bytes_per_s": stat("pcie_rx_bytes_per_s", average, digits=0),
                "pcie_tx_mean_bytes_per_s": stat("pcie_tx_bytes_per_s", average, digits=0),
            }
        )
    used = [d for d in devices if d["process_memory_peak_bytes"]]
    return {
        "available": True,
        "samples": len(steps),
        "interval_s": raw.get("interval_s"),
        "driver_version": raw.get("driver_version"),
        "used_by_this_process": [d["index"] for d in used],
        "devices": used or devices,
    }


# --- the section -------------------------------------------------------------------------------


def _settings_device(environment: dict[str, Any], index: int | None) -> dict[str, Any]:
    cuda = environment.get("cuda") or {}
    listed = cuda.get("devices") or []
    wanted = cuda.get("current_device") if index is None else index
    for device in listed:
        if device.get("index") == wanted:
            return device
    return listed[0] if listed else {}


def _nvml_device(nvml: dict[str, Any] | None, device: dict[str, Any]) -> dict[str, Any]:
    """The sampled device that is this one: the only one this process used, else by index.

    NVML numbers devices by PCI bus and ignores CUDA_VISIBLE_DEVICES, so an index match is a
    guess; the process's own memory on a device (matched by pid) is what decides when NVML sees it.
    """
    sampled = (nvml or {}).get("devices") or []
    if len(sampled) == 1:
        return sampled[0]
    return next((d for d in sampled if d.get("index") == device.get("index")), sampled[0] if sampled else {})


def _memory(environment: dict[str, Any], nvml: dict[str, Any] | None, device: dict[str, Any]) -> dict[str, Any]:
    cuda = environment.get("cuda") or {}
    peaks = {p.get("index"): p for p in cuda.get("memory_peaks") or []}
    torch_peak = peaks.get(device.get("index")) or (next(iter(peaks.values())) if len(peaks) == 1 else {})
    nvml_device = _nvml_device(nvml, device)
    total = device.get("total_memory_bytes") or nvml_device.get("memory_total_bytes")
    memory = {
        "total_bytes": total,
        "torch_peak_allocated_bytes": torch_peak.get("allocated_bytes"),
        "torch_peak_reserved_bytes": torch_peak.get("reserved_bytes"),
        "nvml_process_peak_bytes": nvml_device.get("process_memory_peak_bytes"),
        "nvml_device_used_peak_bytes": nvml_device.get("memory_used_peak_bytes"),
    }
    measured = [v for k, v in memory.items() if k != "total_bytes" and v]
    memory["peak_share"] = round(max(measured) / total, 4) if total and measured else None
    return memory


def gpu_section(
    trace: Any | None = None,
    *,
    nvml: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    optimizers: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The report's `gpu` section, or None when the run never used a GPU."""
    environment = environment or {}
    cuda = environment.get("cuda") or {}
    from_trace = trace_gpu(trace) if trace is not None else None
    nvml_summary = summarize_nvml(nvml)
    used_nvml = bool(nvml_summary and nvml_summary.get("used_by_this_process"))
    if from_trace is None and not used_nvml and not cuda.get("initialized"):
        return None
    section: dict[str, Any] = {}
    if from_trace:
        flops = from_trace.pop("flops")
        section.update(from_trace)
        section["utilization_source"] = "trace"
    else:
        flops = None
        settings_device = _settings_device(environment, None)
        section["device"] = {
            key: settings_device.get(key) for key in ("index", "name", "capability", "total_memory_bytes") if key in settings_device
        }
        section["utilization"] = None
        section["utilization_source"] = None
        section["steps"] = None
    device = section["device"]
    if not device.get("name") or not device.get("capability"):  # a trace without deviceProperties
        fallback = _settings_device(environment, device.get("index"))
        for key in ("name", "capability", "total_memory_bytes"):
            if device.get(key) is None and fallback.get(key) is not None:
                device[key] = fallback[key]
    capability = device.get("capability") or [None, None]
    device["tensor_cores"] = capability[0] >= 7 if isinstance(capability[0], int) else None
    if section["utilization"] is None and nvml_summary and nvml_summary.get("devices"):
        mean = _nvml_device(nvml_summary, device).get("utilization_mean_percent")
        if mean is not None:
            section["utilization"] = round(mean / 100, 4)
            section["utilization_source"] = "nvml"
    section["memory"] = _memory(environment, nvml_summary, device)
    memory = section["memory"]
    section["peak_memory_bytes"] = memory["torch_peak_reserved_bytes"] or memory["nvml_process_peak_bytes"]
    section["nvml"] = nvml_summary
    section["optimizers"] = [o for o in optimizers or [] if "cuda" in (o.get("devices") or [])] or None
    if flops is not None:
        precision = (section.get("kernels") or {}).get("dominant_precision")
        section["mfu"] = mfu_section(flops, section["steps"]["step_ms"], device.get("name"), precision)
    else:
        section["mfu"] = None
    return section
