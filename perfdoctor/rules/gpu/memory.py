"""GPU memory close to the device's total: a risk of out-of-memory errors, not lost time."""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.rundata import RunData
from ...model.finding import Severity
from ..base import Finding, Rule
from . import CUDA_NOTES

GIB = 2**30


class GpuMemoryNearLimit(Rule):
    """Peak GPU memory close to the device's total: a risk of out-of-memory errors, not lost time.

    The caching allocator's view (the memory section's step-end samples) adds what the peaks alone
    do not show: memory reserved but not handed out (fragmentation), and allocation retries (a
    cudaMalloc failed, the cache was flushed and the allocation tried again: the device was full).
    """

    id = "gpu-memory-near-limit"
    area = "gpu"
    docs = f"{CUDA_NOTES}#memory-management"

    @dataclass(frozen=True)
    class Thresholds:
        min_share: float = 0.90  # peak memory used or reserved, share of the device's total
        warning_share: float = 0.95  # at or above this the finding is a warning, else info
        fragmentation_share: float = 0.20  # reserved but unallocated, share of reserved: fragmentation

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        if data.gpu is None:
            return None
        memory = data.gpu.memory
        allocator = data.memory.gpu if data.memory is not None else None
        retries = allocator.alloc_retries if allocator is not None else None
        share, total = memory.peak_share, memory.total_bytes
        near = share is not None and bool(total) and share >= limits.min_share
        if not near and not retries:
            return None
        reserved, allocated = memory.torch_peak_reserved_bytes, memory.torch_peak_allocated_bytes
        unused = allocator.reserved_unused_bytes if allocator is not None else None
        unused_share = unused / allocator.peak_reserved_bytes if allocator is not None and unused is not None and allocator.peak_reserved_bytes else None
        fragmented = bool(reserved and allocated and reserved > 1.25 * allocated) or (
            unused_share is not None and unused_share >= limits.fragmentation_share
        )
        expandable = allocator.expandable_segments if allocator is not None else False
        evidence: dict[str, object] = {
            "peak_share": share,
            "total_bytes": total,
            "torch_peak_reserved_bytes": reserved,
            "torch_peak_allocated_bytes": allocated,
            "nvml_process_peak_bytes": memory.nvml_process_peak_bytes,
            "nvml_device_used_peak_bytes": memory.nvml_device_used_peak_bytes,
        }
        if allocator is not None:
            evidence.update({
                "reserved_unallocated_bytes": unused,
                "reserved_unallocated_share": None if unused_share is None else round(unused_share, 3),
                "inactive_split_peak_bytes": allocator.inactive_split_peak_bytes,
                "alloc_retries": retries,
                "expandable_segments": expandable,
            })
        severity: Severity = "warning" if (share is not None and share >= limits.warning_share) or retries else "info"
        name = data.gpu.device_name()
        if near and share is not None and total:
            title = f"Peak GPU memory reached {share:.0%} of {name}'s {total / GIB:.1f} GiB"
        else:
            title = f"The CUDA allocator ran out of room and retried {retries} allocation(s) on {name}"
        fragmentation = ""
        if fragmented:
            fragmentation = "The allocator reserved much more than it handed out (fragmentation): "
            fragmentation += (
                "expandable_segments is already on; steadier tensor shapes (padding to a few sizes) reduce it further. "
                if expandable else "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True lets it grow segments in place and reuse that memory. "
            )
        retried = (
            f"{retries} allocation(s) failed at first and succeeded only after the allocator freed its cache "
            "(slow, and one step from an out-of-memory error). " if retries else ""
        )
        return self.finding(
            title=title,
            evidence=evidence,
            saving=0.0,
            severity=severity,
            advice=(
                "This costs no time now, but a longer sequence, a larger batch or a library update can tip the run "
                "into an out-of-memory error. " + retried + fragmentation
                + "To make room: mixed precision (halves activations), activation checkpointing, a smaller "
                "micro-batch with gradient accumulation, or set_to_none=True in zero_grad."
            ),
            fix=("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True perfdoctor run train.py\n" if fragmented and not expandable else "")
            + "torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)  # recompute activations in backward",
        )
