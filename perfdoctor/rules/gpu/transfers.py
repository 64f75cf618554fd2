"""Host and device in each other's way: syncs that leave the device idle, and host-to-device
copies from pageable memory."""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.rundata import RunData
from ...model.gpu import OpCause
from ...model.numbers import rounded
from ..base import Finding, Rule, places
from ..dataloader import pageable_copies


def causes_per_step(causes: list[OpCause], limit: int = 5) -> dict[str, float]:
    return {cause.op: cause.per_step for cause in causes[:limit]}


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
        gpu = data.gpu
        steps = gpu.trace_steps() if gpu else None
        if gpu is None or steps is None or steps.syncs < limits.min_syncs_per_step or steps.idle_after_sync_ms < limits.min_idle_ms:
            return None
        causes = gpu.sync_causes
        names = [cause.op for cause in causes]
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
            title=f"{steps.syncs:g} host-device syncs per step leave the GPU idle {steps.idle_after_sync_ms:.2f} ms per step",
            evidence={
                "syncs_per_step": steps.syncs,
                "host_blocked_ms": steps.sync_ms,
                "idle_after_sync_ms": rounded(steps.idle_after_sync_ms),
                "step_ms": rounded(steps.step_ms),
                "causes_per_step": causes_per_step(causes),
            },
            saving=steps.idle_after_sync_ms / steps.step_ms,
            advice=(
                "Each sync makes the host wait until the GPU has finished everything queued; the GPU then sits idle "
                "until the host has launched new work, instead of the host running ahead. Ops that synced: "
                + ", ".join(f"{cause.op} ({cause.per_step:g}/step)" for cause in causes[:5]) + ". "
                + "; ".join(hints) + ("." if hints else "")
                + " torch.cuda.set_sync_debug_mode('warn') reports every sync with a stack."
            ),
            fix=(
                "running_loss += loss.detach()          # stays on the GPU, no sync\n"
                "if step % 100 == 0:\n    print(running_loss.item() / 100)  # one sync every 100 steps\n"
                "    running_loss.zero_()\n"
                "inputs = inputs.to('cuda', non_blocking=True)  # from pinned memory"
            ),
            locations=[places(data).syncs.get(cause.op) for cause in causes[:3]],
        )


class PageableMemcpy(Rule):
    """Host-to-device copies from pageable (not pinned) memory in every step."""

    id = "pageable-memcpy"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/intermediate/pinmem_nonblock.html"
    # Pageable copies in a run whose DataLoader does not pin memory are that DataLoader's.
    defers_to = ("dataloader-pin-memory",)

    @dataclass(frozen=True)
    class Thresholds:
        min_copies_per_step: float = 1.0
        min_ms: float = 0.05  # pageable copy time per step

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        numbers = pageable_copies(data, limits.min_copies_per_step, limits.min_ms)
        if numbers is None or data.gpu is None:
            return None
        steps, share = numbers
        causes = data.gpu.pageable_causes
        return self.finding(
            title=f"{steps.pageable_htod_copies:g} host-to-device copies per step from pageable memory ({steps.pageable_htod_ms:.2f} ms)",
            evidence={
                "pageable_htod_copies_per_step": steps.pageable_htod_copies,
                "pageable_htod_ms": rounded(steps.pageable_htod_ms),
                "pageable_bytes": steps.pageable_bytes,
                "step_ms": rounded(steps.step_ms),
                "share": rounded(share, 4),
                "causes_per_step": causes_per_step(causes),
            },
            saving=share,
            advice=(
                "Copies from pageable host memory go through a staging buffer at a fraction of the PCIe bandwidth, "
                "and the host waits for each one. Allocate the host tensors in pinned memory (pin_memory() once, or "
                "torch.empty(..., pin_memory=True) reused each step) and copy with non_blocking=True so the copy "
                f"overlaps the GPU's work. Copies came from: {', '.join(c.op for c in causes[:3]) or 'unknown ops'}."
            ),
            fix="host_batch = host_batch.pin_memory()  # or allocate it pinned once and reuse it\nbatch = host_batch.to('cuda', non_blocking=True)",
            locations=[places(data).pageable_copies.get(cause.op) for cause in causes[:3]],
        )
