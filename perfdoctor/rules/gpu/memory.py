"""GPU memory close to the device's total: a risk of out-of-memory errors, not lost time."""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.rundata import RunData
from ..base import Finding, Rule
from . import CUDA_NOTES


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
        if data.gpu is None:
            return None
        memory = data.gpu.memory
        share, total = memory.peak_share, memory.total_bytes
        if share is None or not total or share < limits.min_share:
            return None
        reserved, allocated = memory.torch_peak_reserved_bytes, memory.torch_peak_allocated_bytes
        fragmented = bool(reserved and allocated and reserved > 1.25 * allocated)
        return self.finding(
            title=f"Peak GPU memory reached {share:.0%} of {data.gpu.device_name()}'s {total / 2**30:.1f} GiB",
            evidence={
                "peak_share": share,
                "total_bytes": total,
                "torch_peak_reserved_bytes": reserved,
                "torch_peak_allocated_bytes": allocated,
                "nvml_process_peak_bytes": memory.nvml_process_peak_bytes,
                "nvml_device_used_peak_bytes": memory.nvml_device_used_peak_bytes,
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
