"""A device waiting on the host: for kernel launches, or for reasons no other rule explains."""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.rundata import RunData
from ...model.numbers import rounded
from ..base import Finding, Rule, places
from . import CUDA_NOTES


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
        gpu = data.gpu
        steps = gpu.trace_steps() if gpu else None
        if gpu is None or steps is None or steps.kernels < limits.min_kernels_per_step:
            return None
        share = steps.idle_launch_gaps_ms / steps.step_ms
        if share < limits.min_launch_idle_share:
            return None
        return self.finding(
            title=f"The GPU idles {share:.0%} of the step in short gaps, waiting for the host to launch its {steps.kernels:g} kernels",
            evidence={
                "launch_gap_idle_ms": rounded(steps.idle_launch_gaps_ms),
                "launch_gap_share": rounded(share, 4),
                "idle_host_wait_ms": rounded(steps.idle_host_wait_ms),
                "kernels_per_step": steps.kernels,
                "short_kernel_share": steps.short_kernel_share,
                "median_kernel_us": steps.median_kernel_us,
                "utilization_share": gpu.utilization,
                "step_ms": rounded(steps.step_ms),
            },
            saving=share * limits.recoverable,
            advice=(
                f"The step launches {steps.kernels:g} kernels (median {steps.median_kernel_us} us) and the GPU "
                "finishes each before the host has launched the next: per-op Python and dispatcher overhead sets the "
                "pace. Capture the step in a CUDA graph (torch.compile(mode='reduce-overhead')), fuse small ops with "
                "torch.compile, or give each kernel more work (a larger batch)."
            ),
            fix="model = torch.compile(model, mode='reduce-overhead')  # CUDA graphs + fused kernels",
            locations=[places(data).slowest_step],
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
        gpu = data.gpu
        steps = gpu.trace_steps() if gpu else None
        utilization = gpu.utilization if gpu else None
        if gpu is None or steps is None or steps.synthetic or utilization is None or utilization >= limits.max_utilization:
            return None  # a trace without steps measures set-up too: its utilization says little
        step = steps.step_ms
        breakdown = (data.trace.breakdown if data.trace else None) or data.steps.breakdown
        loading_ms = (breakdown.dataloader if breakdown else 0.0) * step
        unexplained = max(0.0, steps.idle_host_stalls_ms + steps.idle_other_ms - loading_ms)
        share = unexplained / step
        if share < limits.min_unexplained_share:
            return None
        stall_ops = gpu.stall_ops
        return self.finding(
            title=f"The GPU is busy {utilization:.0%} of the step; {share:.0%} of the step it waits for no reason the other rules explain",
            evidence={
                "utilization_share": utilization,
                "unexplained_idle_ms": rounded(unexplained),
                "host_stall_idle_ms": rounded(steps.idle_host_stalls_ms),
                "other_idle_ms": rounded(steps.idle_other_ms),
                "dataloader_wait_ms": rounded(loading_ms),
                "idle_after_sync_ms": rounded(steps.idle_after_sync_ms),
                "launch_gap_idle_ms": rounded(steps.idle_launch_gaps_ms),
                "step_ms": rounded(step),
                "host_ops_during_stalls_ms": {op.op: op.ms_per_step for op in stall_ops[:5]},
            },
            saving=share,
            advice=(
                "The GPU waits in gaps of a millisecond or more while the host does other work (or, for "
                "'other idle', while queued work waits on another stream or an event). Host work during those gaps: "
                + (", ".join(f"{op.op} ({op.ms_per_step:.1f} ms/step)" for op in stall_ops[:3]) or "not recorded")
                + ". Move that work off the training thread (into DataLoader workers, or run it every N steps), or "
                "onto the GPU; open the trace to see what fills the gaps."
            ),
            fix="# find what the host does while the GPU waits: open the trace\n# perfdoctor view RUN    (or: tensorboard --logdir RUN/tb, perfdoctor tab)",
            locations=[places(data).slowest_step],
        )
