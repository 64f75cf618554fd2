"""GPU rules: settings that leave Tensor Cores and cuDNN's fastest kernels unused, host work that
keeps the device waiting (syncs, pageable copies, launch overhead, stalls), memory close to the
limit, and an optimizer that launches a kernel per parameter.

They read the report's `gpu` section (analysis/gpu.py); a run that never used a GPU has none,
and they stay silent. Device times are means per profiled step, and savings are fractions of
the profiled step as the trace measured it: Amdahl-style bounds that assume the device time
removed comes off the step.

Precedence, so that one cause is reported once:
- `tf32-disabled` before `amp-not-enabled`: when FP32 matmuls/convolutions run on the CUDA cores
  of an Ampere or newer GPU because TF32 is off, only `tf32-disabled` speaks (a one-line change);
  `amp-not-enabled` reports what is left once TF32 is on.
- `dataloader-pin-memory` before `pageable-memcpy`: pageable host-to-device copies in a run whose
  DataLoader does not pin memory are that DataLoader's; `pageable-memcpy` speaks only otherwise.
- `gpu-low-utilization` counts only the idle time no other rule explains: not the idle after
  syncs (`host-device-sync`), in launch gaps (`gpu-idle-launch-bound`) or while the step waits
  on the DataLoader (the data-loading rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..analysis.rundata import RunData
from .base import Finding, Rule, evidence_round, severity_at_most

CUDA_NOTES = "https://pytorch.org/docs/stable/notes/cuda.html"


def gpu_of(data: RunData) -> dict[str, Any]:
    return data.gpu or {}


def trace_steps(data: RunData) -> dict[str, Any] | None:
    """The profiled steps' device numbers, when the run had a GPU trace with a step time."""
    steps = gpu_of(data).get("steps")
    return steps if steps and steps.get("step_ms") else None


def capability(data: RunData) -> tuple[int, int] | None:
    value = (gpu_of(data).get("device") or {}).get("capability") or []
    if len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0], value[1]
    return None


def backends(data: RunData) -> dict[str, Any] | None:
    """torch.backends flags as the settings snapshot saw them; None for a foreign trace."""
    return data.environment.get("backends") or None


def kernels_of(data: RunData) -> dict[str, Any]:
    return gpu_of(data).get("kernels") or {}


def device_name(data: RunData) -> str:
    return str((gpu_of(data).get("device") or {}).get("name") or "the GPU")


def half_ms(kernels: dict[str, Any]) -> float:
    return float(kernels.get("matmul_half_ms") or 0) + float(kernels.get("conv_half_ms") or 0)


def conv_ms(kernels: dict[str, Any]) -> float:
    return sum(float(kernels.get(f"conv_{p}_ms") or 0) for p in ("half", "tf32", "fp32"))


def tf32_off(data: RunData) -> tuple[bool, bool] | None:
    """(matmul TF32 off, convolution TF32 off) from the settings; None when not recorded."""
    flags = backends(data)
    if flags is None or "matmul_allow_tf32" not in flags:
        return None
    matmul = flags.get("matmul_allow_tf32") is False or flags.get("float32_matmul_precision") == "highest"
    return matmul, flags.get("cudnn_allow_tf32") is False


def causes_per_step(causes: list[dict[str, Any]], limit: int = 5) -> dict[str, float]:
    return {cause["op"]: cause["per_step"] for cause in causes[:limit]}


class CudnnBenchmarkOff(Rule):
    """Convolutions with the same shapes every step, and cuDNN's autotuner (benchmark) off."""

    id = "cudnn-benchmark-off"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html#enable-cudnn-auto-tuner"

    @dataclass(frozen=True)
    class Thresholds:
        min_conv_share: float = 0.10  # convolution kernel time as a share of the step
        expected_gain: float = 0.20  # share of convolution time the autotuned kernels save

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps, flags = trace_steps(data), backends(data)
        conv = gpu_of(data).get("conv") or {}
        if not steps or not flags or flags.get("cudnn_benchmark") is not False or not flags.get("cudnn_enabled", True):
            return None
        if conv.get("static_shapes") is not True:
            return None  # changing shapes: benchmark would re-tune for every new shape
        conv_time = conv_ms(kernels_of(data))
        share = conv_time / steps["step_ms"]
        if share < limits.min_conv_share:
            return None
        return self.finding(
            title=f"cuDNN autotuning is off while convolutions take {share:.0%} of the step, with the same shapes every step",
            evidence={
                "cudnn_benchmark": False,
                "conv_kernel_ms": evidence_round(conv_time),
                "conv_share": evidence_round(share, 4),
                "step_ms": evidence_round(steps["step_ms"]),
                "conv_ops_per_step": conv.get("ops_per_step"),
                "distinct_conv_shapes": conv.get("distinct_shapes"),
                "profiled_steps": steps.get("profiled"),
                "expected_gain_share": limits.expected_gain,
            },
            saving=share * limits.expected_gain,
            advice=(
                f"Every profiled step ran its {conv.get('ops_per_step'):g} convolutions with the same input shapes, "
                "and torch.backends.cudnn.benchmark is False, so cuDNN picks each kernel by heuristics. With "
                "benchmark=True it times the candidate algorithms once per shape and keeps the fastest. The estimate "
                f"assumes a {limits.expected_gain:.0%} faster convolution time."
            ),
            fix="import torch\ntorch.backends.cudnn.benchmark = True  # before the first forward pass",
        )


class Tf32Disabled(Rule):
    """FP32 matmuls or convolutions on the CUDA cores of an Ampere+ GPU, with TF32 turned off."""

    id = "tf32-disabled"
    area = "gpu"
    docs = f"{CUDA_NOTES}#tensorfloat-32-tf32-on-ampere-and-later-devices"

    @dataclass(frozen=True)
    class Thresholds:
        min_share: float = 0.05  # FP32 matmul/conv kernel time (TF32 off) as a share of the step
        speedup: float = 2.0  # how much faster those kernels run in TF32 (8x peak on A100)

    def affected_ms(self, data: RunData) -> tuple[float, float] | None:
        """(FP32 matmul ms, FP32 conv ms) per step that TF32 would move to Tensor Cores."""
        cc, off = capability(data), tf32_off(data)
        if not trace_steps(data) or cc is None or cc < (8, 0) or off is None:
            return None
        kernels = kernels_of(data)
        matmul = float(kernels.get("matmul_fp32_ms") or 0) if off[0] else 0.0
        conv = float(kernels.get("conv_fp32_ms") or 0) if off[1] else 0.0
        return matmul, conv

    def applies(self, data: RunData, limits: Thresholds) -> bool:
        affected = self.affected_ms(data)
        steps = trace_steps(data)
        return bool(affected and steps and sum(affected) / steps["step_ms"] >= limits.min_share)

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        if not self.applies(data, limits):
            return None
        matmul, conv = self.affected_ms(data) or (0.0, 0.0)
        step = trace_steps(data)["step_ms"]  # type: ignore[index]
        share = (matmul + conv) / step
        flags = backends(data) or {}
        lines = []
        if matmul:
            lines.append("torch.backends.cuda.matmul.allow_tf32 = True  # or torch.set_float32_matmul_precision('high')")
        if conv:
            lines.append("torch.backends.cudnn.allow_tf32 = True")
        return self.finding(
            title=f"TF32 is off: FP32 matmuls and convolutions take {share:.0%} of the step on the CUDA cores of {device_name(data)}",
            evidence={
                "fp32_matmul_ms": evidence_round(matmul),
                "fp32_conv_ms": evidence_round(conv),
                "fp32_share": evidence_round(share, 4),
                "step_ms": evidence_round(step),
                "matmul_allow_tf32": flags.get("matmul_allow_tf32"),
                "float32_matmul_precision": flags.get("float32_matmul_precision"),
                "cudnn_allow_tf32": flags.get("cudnn_allow_tf32"),
                "compute_capability": ".".join(map(str, capability(data) or ())),
                "assumed_speedup": limits.speedup,
            },
            saving=share * (1 - 1 / limits.speedup),
            severity=severity_at_most(share * (1 - 1 / limits.speedup), "warning"),  # numerics change: validate
            advice=(
                f"{device_name(data)} runs FP32 matrix multiplications on its Tensor Cores in TF32 (10-bit mantissa, "
                "FP32 range) at several times the FP32 rate, but PyTorch leaves TF32 off for matmuls by default. "
                "Most training is insensitive to it; turn it on, or go further with autocast (bf16)."
            ),
            fix="import torch\n" + "\n".join(lines),
        )


class AmpNotEnabled(Rule):
    """FP32 matmuls and convolutions on a Tensor Core GPU, and no half-precision kernels at all."""

    id = "amp-not-enabled"
    area = "gpu"
    docs = "https://pytorch.org/docs/stable/amp.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_share: float = 0.05  # FP32/TF32 matmul and conv kernel time as a share of the step
        speedup: float = 2.0  # how much faster those kernels run in FP16/BF16

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps, cc = trace_steps(data), capability(data)
        kernels = kernels_of(data)
        if not steps or cc is None or cc < (7, 0) or not kernels:
            return None
        if half_ms(kernels) > 0 or kernels.get("amp_scaler_ops"):
            return None
        if Tf32Disabled().applies(data, Tf32Disabled.Thresholds()):
            return None  # turn TF32 on first; what is left shows in the next run
        fp32 = {p: float(kernels.get(f"matmul_{p}_ms") or 0) + float(kernels.get(f"conv_{p}_ms") or 0) for p in ("fp32", "tf32")}
        total = sum(fp32.values())
        share = total / steps["step_ms"]
        if share < limits.min_share:
            return None
        bf16 = cc >= (8, 0)
        dtype = "torch.bfloat16" if bf16 else "torch.float16"
        scaler = "" if bf16 else "scaler = torch.amp.GradScaler('cuda')\n"
        backward = "loss.backward()\noptimizer.step()" if bf16 else "scaler.scale(loss).backward()\nscaler.step(optimizer)\nscaler.update()"
        return self.finding(
            title=f"No mixed precision: FP32/TF32 matmuls and convolutions take {share:.0%} of the step on {device_name(data)}",
            evidence={
                "fp32_matmul_conv_ms": evidence_round(fp32["fp32"]),
                "tf32_matmul_conv_ms": evidence_round(fp32["tf32"]),
                "half_kernel_ms": 0.0,
                "share": evidence_round(share, 4),
                "step_ms": evidence_round(steps["step_ms"]),
                "tensor_core_share": steps.get("tensor_core_share"),
                "compute_capability": f"{cc[0]}.{cc[1]}",
                "assumed_speedup": limits.speedup,
            },
            saving=share * (1 - 1 / limits.speedup),
            severity=severity_at_most(share * (1 - 1 / limits.speedup), "warning"),  # numerics change: validate
            advice=(
                f"{device_name(data)} (compute capability {cc[0]}.{cc[1]}) has Tensor Cores that run FP16/BF16 matmuls "
                "and convolutions far faster than FP32 (or TF32), yet no half-precision kernel ran. torch.autocast runs "
                f"them in {'bfloat16 (no loss scaling needed)' if bf16 else 'float16 with a GradScaler'} and keeps "
                "precision-sensitive ops in FP32; it also halves activation memory."
            ),
            fix=(
                f"{scaler}with torch.autocast('cuda', dtype={dtype}):\n    loss = loss_fn(model(inputs), targets)\n{backward}"
            ),
        )


class HostDeviceSync(Rule):
    """The host waits for the device inside the step (.item(), .cpu(), nonzero), and the device
    then idles while the host launches new work."""

    id = "host-device-sync"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html#avoid-unnecessary-cpu-gpu-synchronization"

    @dataclass(frozen=True)
    class Thresholds:
        min_syncs_per_step: float = 1.0
        min_idle_ms: float = 0.1  # device idle per step that the syncs cause

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps = trace_steps(data)
        if not steps or steps["syncs"] < limits.min_syncs_per_step or steps["idle_after_sync_ms"] < limits.min_idle_ms:
            return None
        causes = gpu_of(data).get("sync_causes") or []
        names = [cause["op"] for cause in causes]
        hints = []
        if any(name in ("aten::item", "aten::_local_scalar_dense") for name in names):
            hints.append("`.item()` (or float()/int()/bool() of a GPU tensor, e.g. a loss logged every step) waits for "
                         "all queued work: keep running metrics on the GPU and read them every N steps")
        if any(name in ("aten::to", "aten::_to_copy", "aten::copy_") for name in names):
            hints.append("`.to()`/`.cpu()` copies without non_blocking=True wait for the stream: copy from pinned "
                         "memory with non_blocking=True, and move results to the host only when needed")
        if any(name in ("aten::nonzero", "aten::masked_select", "aten::unique", "aten::index") for name in names):
            hints.append("ops with data-dependent output sizes (nonzero, boolean-mask indexing, unique) must wait "
                         "for the result's size: use torch.where or fixed-size masks")
        if "(no CPU op)" in names:
            hints.append("explicit torch.cuda.synchronize() calls (e.g. timing code) block as well")
        return self.finding(
            title=f"{steps['syncs']:g} host-device syncs per step leave the GPU idle {steps['idle_after_sync_ms']:.2f} ms per step",
            evidence={
                "syncs_per_step": steps["syncs"],
                "host_blocked_ms": steps.get("sync_ms"),
                "idle_after_sync_ms": evidence_round(steps["idle_after_sync_ms"]),
                "step_ms": evidence_round(steps["step_ms"]),
                "causes_per_step": causes_per_step(causes),
            },
            saving=steps["idle_after_sync_ms"] / steps["step_ms"],
            advice=(
                "Each sync makes the host wait until the GPU has finished everything queued; the GPU then sits idle "
                "until the host has launched new work, instead of the host running ahead. Ops that synced: "
                + ", ".join(f"{cause['op']} ({cause['per_step']:g}/step)" for cause in causes[:5]) + ". "
                + "; ".join(hints) + ("." if hints else "")
                + " torch.cuda.set_sync_debug_mode('warn') reports every sync with a stack."
            ),
            fix=(
                "running_loss += loss.detach()          # stays on the GPU, no sync\n"
                "if step % 100 == 0:\n    print(running_loss.item() / 100)  # one sync every 100 steps\n"
                "    running_loss.zero_()\n"
                "inputs = inputs.to('cuda', non_blocking=True)  # from pinned memory"
            ),
        )


def _pageable_numbers(data: RunData, limits: Any) -> tuple[dict[str, Any], float] | None:
    steps = trace_steps(data)
    if not steps or steps.get("pageable_htod_copies", 0) < limits.min_copies_per_step:
        return None
    if steps.get("pageable_htod_ms", 0) < limits.min_ms:
        return None
    return steps, steps["pageable_htod_ms"] / steps["step_ms"]


def _unpinned_loader(data: RunData) -> Any:
    return next((loader for loader in data.dataloaders if loader.batches and not loader.args.get("pin_memory")), None)


class PageableMemcpy(Rule):
    """Host-to-device copies from pageable (not pinned) memory in every step."""

    id = "pageable-memcpy"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/intermediate/pinmem_nonblock.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_copies_per_step: float = 1.0
        min_ms: float = 0.05  # pageable copy time per step

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        numbers = _pageable_numbers(data, limits)
        if numbers is None or _unpinned_loader(data) is not None:
            return None  # a DataLoader without pin_memory: dataloader-pin-memory speaks
        steps, share = numbers
        causes = gpu_of(data).get("pageable_causes") or []
        return self.finding(
            title=f"{steps['pageable_htod_copies']:g} host-to-device copies per step from pageable memory ({steps['pageable_htod_ms']:.2f} ms)",
            evidence={
                "pageable_htod_copies_per_step": steps["pageable_htod_copies"],
                "pageable_htod_ms": evidence_round(steps["pageable_htod_ms"]),
                "pageable_bytes": steps.get("pageable_bytes"),
                "step_ms": evidence_round(steps["step_ms"]),
                "share": evidence_round(share, 4),
                "causes_per_step": causes_per_step(causes),
            },
            saving=share,
            advice=(
                "Copies from pageable host memory go through a staging buffer at a fraction of the PCIe bandwidth, "
                "and the host waits for each one. Allocate the host tensors in pinned memory (pin_memory() once, or "
                "torch.empty(..., pin_memory=True) reused each step) and copy with non_blocking=True so the copy "
                f"overlaps the GPU's work. Copies came from: {', '.join(c['op'] for c in causes[:3]) or 'unknown ops'}."
            ),
            fix="host_batch = host_batch.pin_memory()  # or allocate it pinned once and reuse it\nbatch = host_batch.to('cuda', non_blocking=True)",
        )


class DataLoaderPinMemory(Rule):
    """A DataLoader with pin_memory=False whose batches are copied to the GPU from pageable memory."""

    id = "dataloader-pin-memory"
    area = "data loading"
    docs = "https://pytorch.org/docs/stable/data.html#memory-pinning"

    @dataclass(frozen=True)
    class Thresholds:
        min_copies_per_step: float = 1.0
        min_ms: float = 0.05  # pageable copy time per step

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        numbers = _pageable_numbers(data, limits)
        loader = _unpinned_loader(data)
        if numbers is None or loader is None:
            return None
        steps, share = numbers
        from .dataloader import loader_call

        return self.finding(
            title=f"DataLoader without pin_memory: its batches are copied to the GPU from pageable memory ({steps['pageable_htod_ms']:.2f} ms per step)",
            evidence={
                "pin_memory": False,
                "num_workers": loader.num_workers,
                "batch_size": loader.args.get("batch_size"),
                "pageable_htod_copies_per_step": steps["pageable_htod_copies"],
                "pageable_htod_ms": evidence_round(steps["pageable_htod_ms"]),
                "pageable_bytes": steps.get("pageable_bytes"),
                "step_ms": evidence_round(steps["step_ms"]),
                "share": evidence_round(share, 4),
            },
            saving=share,
            advice=(
                "With pin_memory=True the DataLoader hands out batches in page-locked memory (a background thread "
                "pins them), so the copy to the GPU runs at full PCIe bandwidth and, with non_blocking=True, "
                "overlaps the GPU's work instead of blocking the host."
            ),
            fix=loader_call(loader.args, num_workers=loader.num_workers, pin_memory=True)
            + "\nfor inputs, targets in loader:\n    inputs = inputs.to('cuda', non_blocking=True)\n    targets = targets.to('cuda', non_blocking=True)",
        )


class GpuIdleLaunchBound(Rule):
    """The GPU waits between many short kernels for the host to launch the next one."""

    id = "gpu-idle-launch-bound"
    area = "gpu"
    docs = f"{CUDA_NOTES}#cuda-graphs"

    @dataclass(frozen=True)
    class Thresholds:
        min_launch_idle_share: float = 0.15  # idle in short gaps waiting for launches, share of the step
        min_kernels_per_step: float = 50.0
        recoverable: float = 0.5  # share of that idle that CUDA graphs / torch.compile remove

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps = trace_steps(data)
        if not steps or steps["kernels"] < limits.min_kernels_per_step:
            return None
        share = steps["idle_launch_gaps_ms"] / steps["step_ms"]
        if share < limits.min_launch_idle_share:
            return None
        return self.finding(
            title=f"The GPU idles {share:.0%} of the step in short gaps, waiting for the host to launch its {steps['kernels']:g} kernels",
            evidence={
                "launch_gap_idle_ms": evidence_round(steps["idle_launch_gaps_ms"]),
                "launch_gap_share": evidence_round(share, 4),
                "idle_host_wait_ms": evidence_round(steps["idle_host_wait_ms"]),
                "kernels_per_step": steps["kernels"],
                "short_kernel_share": steps.get("short_kernel_share"),
                "median_kernel_us": steps.get("median_kernel_us"),
                "utilization_share": gpu_of(data).get("utilization"),
                "step_ms": evidence_round(steps["step_ms"]),
            },
            saving=share * limits.recoverable,
            advice=(
                f"The step launches {steps['kernels']:g} kernels (median {steps.get('median_kernel_us')} us) and the GPU "
                "finishes each before the host has launched the next: per-op Python and dispatcher overhead sets the "
                "pace. Capture the step in a CUDA graph (torch.compile(mode='reduce-overhead')), fuse small ops with "
                "torch.compile, or give each kernel more work (a larger batch)."
            ),
            fix="model = torch.compile(model, mode='reduce-overhead')  # CUDA graphs + fused kernels",
        )


class GpuLowUtilization(Rule):
    """The GPU is idle much of the step for reasons the more specific GPU rules do not explain."""

    id = "gpu-low-utilization"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html"

    @dataclass(frozen=True)
    class Thresholds:
        max_utilization: float = 0.60  # kernel time as a share of the step
        min_unexplained_share: float = 0.20  # idle no other rule accounts for, share of the step

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps = trace_steps(data)
        utilization = gpu_of(data).get("utilization")
        if not steps or steps.get("synthetic") or utilization is None or utilization >= limits.max_utilization:
            return None  # a trace without steps measures set-up too: its utilization says little
        step = steps["step_ms"]
        breakdown = (data.trace.breakdown if data.trace and data.trace.breakdown else None) or data.steps.breakdown or {}
        loading_ms = float(breakdown.get("dataloader") or 0.0) * step
        unexplained = max(0.0, steps["idle_host_stalls_ms"] + steps["idle_other_ms"] - loading_ms)
        share = unexplained / step
        if share < limits.min_unexplained_share:
            return None
        stall_ops = gpu_of(data).get("stall_ops") or []
        return self.finding(
            title=f"The GPU is busy {utilization:.0%} of the step; {share:.0%} of the step it waits for no reason the other rules explain",
            evidence={
                "utilization_share": utilization,
                "unexplained_idle_ms": evidence_round(unexplained),
                "host_stall_idle_ms": evidence_round(steps["idle_host_stalls_ms"]),
                "other_idle_ms": evidence_round(steps["idle_other_ms"]),
                "dataloader_wait_ms": evidence_round(loading_ms),
                "idle_after_sync_ms": evidence_round(steps["idle_after_sync_ms"]),
                "launch_gap_idle_ms": evidence_round(steps["idle_launch_gaps_ms"]),
                "step_ms": evidence_round(step),
                "host_ops_during_stalls_ms": {op["op"]: op["ms_per_step"] for op in stall_ops[:5]},
            },
            saving=share,
            advice=(
                "The GPU waits in gaps of a millisecond or more while the host does other work (or, for "
                f"'other idle', while queued work waits on another stream or an event). Host work during those gaps: "
                + (", ".join(f"{op['op']} ({op['ms_per_step']:.1f} ms/step)" for op in stall_ops[:3]) or "not recorded")
                + ". Move that work off the training thread (into DataLoader workers, or run it every N steps), or "
                "onto the GPU; open the trace to see what fills the gaps."
            ),
            fix="# find what the host does while the GPU waits:\n# tensorboard --logdir RUN/tb  (or open the trace at ui.perfetto.dev)",
        )


class GpuMemoryNearLimit(Rule):
    """Peak GPU memory close to the device's total: a risk of out-of-memory errors, not lost time."""

    id = "gpu-memory-near-limit"
    area = "gpu"
    docs = f"{CUDA_NOTES}#memory-management"

    @dataclass(frozen=True)
    class Thresholds:
        min_share: float = 0.90  # peak memory used or reserved, share of the device's total
        warning_share: float = 0.95  # at or above this the finding is a warning, else info

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        memory = gpu_of(data).get("memory") or {}
        share, total = memory.get("peak_share"), memory.get("total_bytes")
        if share is None or not total or share < limits.min_share:
            return None
        reserved, allocated = memory.get("torch_peak_reserved_bytes"), memory.get("torch_peak_allocated_bytes")
        fragmented = bool(reserved and allocated and reserved > 1.25 * allocated)
        return self.finding(
            title=f"Peak GPU memory reached {share:.0%} of {device_name(data)}'s {total / 2**30:.1f} GiB",
            evidence={
                "peak_share": share,
                "total_bytes": total,
                "torch_peak_reserved_bytes": reserved,
                "torch_peak_allocated_bytes": allocated,
                "nvml_process_peak_bytes": memory.get("nvml_process_peak_bytes"),
                "nvml_device_used_peak_bytes": memory.get("nvml_device_used_peak_bytes"),
            },
            saving=0.0,
            severity="warning" if share >= limits.warning_share else "info",
            advice=(
                "This costs no time now, but a longer sequence, a larger batch or a library update can tip the run "
                "into an out-of-memory error. "
                + ("The allocator reserved much more than it handed out (fragmentation): "
                   "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True helps. " if fragmented else "")
                + "To make room: mixed precision (halves activations), activation checkpointing, a smaller "
                "micro-batch with gradient accumulation, or set_to_none=True in zero_grad."
            ),
            fix="PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True perfdoctor run train.py\n"
            "# and/or: torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)",
        )


class ChannelsLast(Rule):
    """Tensor Core convolutions on NCHW tensors: cuDNN transposes them to NHWC and back."""

    id = "channels-last"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_transform_share: float = 0.01  # NCHW<->NHWC transform kernels, share of the step

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps, cc, kernels = trace_steps(data), capability(data), kernels_of(data)
        if not steps or cc is None or cc < (7, 0):
            return None
        tensor_core_conv = float(kernels.get("conv_half_ms") or 0) + float(kernels.get("conv_tf32_ms") or 0)
        transforms = float(kernels.get("layout_transform_ms") or 0)
        share = transforms / steps["step_ms"]
        if tensor_core_conv <= 0 or share < limits.min_transform_share:
            return None
        return self.finding(
            title=f"cuDNN spends {share:.1%} of the step converting NCHW tensors to NHWC and back",
            evidence={
                "layout_transform_ms": evidence_round(transforms),
                "layout_transforms_per_step": kernels.get("layout_transforms"),
                "tensor_core_conv_ms": evidence_round(tensor_core_conv),
                "half_conv_ms": kernels.get("conv_half_ms"),
                "tf32_conv_ms": kernels.get("conv_tf32_ms"),
                "step_ms": evidence_round(steps["step_ms"]),
                "share": evidence_round(share, 4),
            },
            saving=share,
            advice=(
                "Tensor Core convolutions (FP16/BF16 with autocast, or TF32) work in NHWC layout; with the default NCHW "
                "tensors cuDNN transposes inputs and outputs around each of them. Convert the model and the inputs to "
                "channels_last once: the transposes go away, and the convolutions themselves often get faster."
            ),
            fix="model = model.to(memory_format=torch.channels_last)\ninputs = inputs.to('cuda', memory_format=torch.channels_last, non_blocking=True)",
        )


class OptimizerForeach(Rule):
    """The optimizer step launches small kernels parameter by parameter (no foreach or fused)."""

    id = "optimizer-foreach"
    area = "gpu"
    docs = "https://pytorch.org/docs/stable/optim.html#algorithms"

    @dataclass(frozen=True)
    class Thresholds:
        min_kernels_per_step: float = 100.0  # kernels launched inside Optimizer.step per step
        max_foreach_share: float = 0.5  # above this share of multi-tensor kernels it is foreach already
        recoverable: float = 0.5  # share of the optimizer step that foreach/fused removes

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps, optimizer = trace_steps(data), gpu_of(data).get("optimizer")
        if not steps or not optimizer or optimizer["kernels"] < limits.min_kernels_per_step:
            return None
        if (optimizer.get("foreach_share") or 0.0) > limits.max_foreach_share:
            return None
        configured = (gpu_of(data).get("optimizers") or [{}])[0]
        if configured.get("fused"):
            return None
        optimizer_ms = max(optimizer["host_ms"], optimizer["kernel_ms"])
        share = optimizer_ms / steps["step_ms"]
        kind = configured.get("type") or "/".join(optimizer.get("names") or []) or "the optimizer"
        explicit = configured.get("foreach") is False
        return self.finding(
            title=f"{kind} launches {optimizer['kernels']:g} kernels per step, parameter by parameter",
            evidence={
                "optimizer": kind,
                "foreach": configured.get("foreach"),
                "fused": configured.get("fused"),
                "optimizer_kernels_per_step": optimizer["kernels"],
                "multi_tensor_kernel_share": optimizer.get("foreach_share"),
                "optimizer_host_ms": optimizer["host_ms"],
                "optimizer_kernel_ms": optimizer["kernel_ms"],
                "step_ms": evidence_round(steps["step_ms"]),
            },
            saving=share * limits.recoverable,
            advice=(
                f"{'foreach=False is set, so ' if explicit else ''}{kind}.step runs its update one parameter at a time: "
                f"{optimizer['kernels']:g} small kernels per step, each paying a launch. The foreach implementation "
                "updates all parameters of a group with a few multi-tensor kernels, and fused=True (Adam, AdamW, SGD "
                "on CUDA) does it in one kernel per group."
            ),
            fix=f"optimizer = torch.optim.{configured.get('type') or 'AdamW'}(model.parameters(), lr=lr, fused=True)  # or foreach=True",
        )


RULES = [
    CudnnBenchmarkOff,
    Tf32Disabled,
    AmpNotEnabled,
    HostDeviceSync,
    PageableMemcpy,
    DataLoaderPinMemory,
    GpuIdleLaunchBound,
    GpuLowUtilization,
    GpuMemoryNearLimit,
    ChannelsLast,
    OptimizerForeach,
]
