"""Memory over the whole run: growth that ends in an out-of-memory kill (`memory-growth`), a run
that died of one (`out-of-memory`), and one rank holding much more than the others
(`memory-rank-imbalance`).

They read the `memory` section (perfdoctor.model.memory, built by analysis/memory.py from the
samples taken at step ends). Memory costs no step time until it ends the run: their estimated
saving is 0, and their severity comes from how close, and how soon, the limit is.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..analysis.rundata import RunData
from ..model.finding import Confidence, Severity
from ..model.memory import MemorySection, MemoryTrend, OomEvent, RankMemory
from .base import Finding, Rule

CUDA_NOTES = "https://pytorch.org/docs/stable/notes/cuda.html#optimizing-memory-usage-with-pytorch-cuda-alloc-conf"
FAQ = "https://pytorch.org/docs/stable/notes/faq.html#my-model-reports-cuda-runtime-error-2-out-of-memory"
SPARSE_POINTS = 20  # a trend fitted on fewer samples is said to rest on few
MIB, GIB = 2**20, 2**30

SUBJECTS = {
    "host_process": "The training process's resident memory",
    "host_workers": "The DataLoader workers' resident memory",
    "gpu_allocated": "GPU memory held by tensors",
    "gpu_reserved": "GPU memory reserved by the caching allocator",
}

LEAK_ADVICE = (
    "Memory that grows every step is almost always something kept from each step: a list that keeps every "
    "step's loss or outputs with their autograd graphs (each keeps that step's activations alive), a metric "
    "accumulated as a tensor (`total += loss`) instead of a number (`loss.item()`), a cache or history that "
    "only grows, or outputs gathered for evaluation without `.detach().cpu()`."
)
LEAK_FIX = (
    "losses.append(loss.item())          # a number, not the tensor and its graph\n"
    "running_loss += loss.detach()         # or loss.item(); never running_loss += loss\n"
    "outputs.append(logits.detach().cpu())  # gathered for later: detached, off the GPU\n"
    "cache = functools.lru_cache(maxsize=1024)(load)  # a cache with a bound"
)
WORKER_ADVICE = (
    "The DataLoader workers grow: a Dataset that caches samples in each worker (one copy per worker), or "
    "Python lists and dicts of objects in the Dataset, whose pages each worker copies as it touches their "
    "reference counts (copy-on-read). Keep dataset metadata in numpy arrays or tensors, not lists of "
    "Python objects, and bound any per-worker cache."
)
WORKER_FIX = (
    "self.paths = np.array(paths)          # not a list of str: no per-object refcounts to copy\n"
    "self.labels = torch.tensor(labels)\n"
    "DataLoader(ds, num_workers=4, persistent_workers=False)  # a fresh worker each epoch frees its copies"
)
FRAGMENTATION_ADVICE = (
    "The caching allocator reserves more and more while the tensors it hands out do not grow: fragmentation "
    "(blocks of many sizes that no longer fit what is asked). PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
    "lets the allocator grow segments in place instead of reserving new ones; steady shapes (padding to a few "
    "bucket sizes) also help."
)
FRAGMENTATION_FIX = "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True perfdoctor run train.py"


def _mib(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value / MIB, digits)


def _gib(value: float | None) -> float | None:
    return None if value is None else round(value / GIB, 2)


def duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def size_text(value: float) -> str:
    return f"{value / GIB:.1f} GiB" if abs(value) >= GIB else f"{value / MIB:.1f} MiB" if abs(value) >= MIB else f"{value / 1024:.0f} KiB"


class MemoryGrowth(Rule):
    """Memory grows steadily over the steady-state steps: at this rate the job runs out."""

    id = "memory-growth"
    area = "memory"
    docs = FAQ
    timing_based = False  # bytes per step; only the time to the limit rests on the pace (see _confidence)

    @dataclass(frozen=True)
    class Thresholds:
        min_growth_mb: float = 16.0  # growth over the fitted window below this is not reported
        critical_hours: float = 1.0  # the limit within this (job length unknown): critical
        warning_hours: float = 72.0  # ... within this: warning; later: info

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        memory = data.memory
        if memory is None:
            return None
        growing = [t for t in memory.growing() if t.growth_bytes >= limits.min_growth_mb * MIB]
        if not growing:
            return None
        # The series that reaches its limit first; without a limit, the fastest.
        trend = min(growing, key=lambda t: (t.seconds_to_limit is None, t.seconds_to_limit or 0.0, -t.projected_bytes_per_step))
        if trend.subject == "gpu_reserved" and memory.trend("gpu_allocated") and any(t.subject == "gpu_allocated" for t in growing):
            trend = next(t for t in growing if t.subject == "gpu_allocated")
        severity, when = self._severity(trend, memory, limits)
        evidence = self._evidence(trend, memory, growing)
        advice, fix = self._advice(trend, memory)
        per_step = size_text(trend.projected_bytes_per_step)
        title = f"{SUBJECTS[trend.subject]} grows {per_step} per step"
        if trend.seconds_to_limit is not None:
            title += f": at this rate it reaches the limit {when}"
        confidence, reason = self._confidence(trend, data)
        return self.finding(
            title=title, evidence=evidence, saving=0.0, severity=severity, advice=advice, fix=fix,
            confidence=confidence, confidence_reason=reason,
        )

    @staticmethod
    def _confidence(trend: MemoryTrend, data: RunData) -> tuple[Confidence, str]:
        """The growth per step does not depend on other processes; the time to the limit does: at a
        pace they slowed, the limit comes later than it would on a quiet machine."""
        reasons = []
        if trend.points < SPARSE_POINTS:
            reasons.append(
                f"Fitted on only {trend.points} samples (a short run, sampled by time): the growth is steady across "
                "them, but a longer run would show whether it goes on."
            )
        contention = data.host.contention if data.host else None
        if trend.seconds_to_limit is not None and contention is not None and contention.shared:
            measured = f"other processes used {contention.others_cpu_cores:.1f} cores" if contention.others_cpu_cores is not None else "other processes took CPU time the job wanted"
            reasons.append(
                f"The machine was shared while this ran ({measured}): the time to the limit is at this run's slowed pace, "
                "so on a quiet machine the limit comes sooner. The growth per step does not depend on it."
            )
        return ("medium", " ".join(reasons)) if reasons else ("high", "")

    @staticmethod
    def _severity(trend: MemoryTrend, memory: MemorySection, limits: Thresholds) -> tuple[Severity, str]:
        seconds = trend.seconds_to_limit
        expected = memory.expected
        if seconds is None:
            return "warning", ""
        when = f"in about {duration_text(seconds)}"
        if trend.limit_at_step is not None:
            when += f" (around step {trend.limit_at_step:,})"
        if expected is not None and trend.limit_at_step is not None and trend.limit_at_step <= expected.steps:
            return "critical", when + f", before the job's {expected.steps:,} steps end"
        if expected is None and seconds <= limits.critical_hours * 3600:
            return "critical", when
        return ("warning" if seconds <= limits.warning_hours * 3600 else "info"), when

    @staticmethod
    def _evidence(trend: MemoryTrend, memory: MemorySection, growing: list[MemoryTrend]) -> dict[str, object]:
        evidence: dict[str, object] = {
            "series": trend.subject,
            "growth_mb_per_step": _mib(trend.projected_bytes_per_step, 3),
            "growth_mb_per_step_95ci": [_mib(trend.bytes_per_step_low, 3), _mib(trend.bytes_per_step_high, 3)],
            "growth_mb_per_hour": _mib(trend.bytes_per_hour, 0),
            "fitted_steps": f"{trend.from_step}-{trend.to_step}",
            "fitted_points": trend.points,
            "growth_mb_over_fitted_steps": _mib(trend.growth_bytes, 1),
            "late_growth_mb_per_step": _mib(trend.late_bytes_per_step, 3),
            "level_mb_at_end": _mib(trend.level_bytes, 1),
            "limit_gb": _gib(trend.limit_bytes),
            "limit_source": (memory.host_limit_source if trend.subject.startswith("host") else "GPU total"),
            "headroom_gb_at_end": _gib(trend.headroom_bytes),
            "minutes_to_limit": None if trend.seconds_to_limit is None else round(trend.seconds_to_limit / 60, 1),
            "limit_at_step": trend.limit_at_step,
            "seconds_per_step": memory.seconds_per_step,
        }
        if memory.expected is not None:
            evidence["job_steps"] = memory.expected.steps
            evidence["job_steps_from"] = memory.expected.source
        others = [t.subject for t in growing if t is not trend]
        if others:
            evidence["also_growing"] = others
        if memory.leak_sites:
            evidence["never_freed_in_profiled_steps"] = [
                {"op": site.op, "device": site.device, "mb_per_step": _mib(site.bytes_per_step, 3)} for site in memory.leak_sites[:5]
            ]
        return evidence

    @staticmethod
    def _advice(trend: MemoryTrend, memory: MemorySection) -> tuple[str, str]:
        sites = ""
        if memory.leak_sites:
            top = ", ".join(f"{s.op} ({size_text(s.bytes_per_step)}/step)" for s in memory.leak_sites[:3])
            sites = f" In the profiled steps, memory allocated by {top} was never freed: the tensors kept come from there."
        if trend.subject == "host_workers":
            return WORKER_ADVICE, WORKER_FIX
        if trend.subject == "gpu_reserved":
            return FRAGMENTATION_ADVICE, FRAGMENTATION_FIX
        ranks = ""
        if len(memory.ranks) > 1:
            ranks = " Under DDP, compare the ranks (the memory section): one rank that grows alone points at rank-0-only logging or evaluation."
        return LEAK_ADVICE + sites + ranks, LEAK_FIX


class OutOfMemory(Rule):
    """The run died out of memory: a CUDA or host allocation failed, or the kernel's OOM killer."""

    id = "out-of-memory"
    area = "memory"
    docs = FAQ
    timing_based = False

    @dataclass(frozen=True)
    class Thresholds:
        fragmentation_share: float = 0.25  # reserved but unallocated memory above this share of reserved: fragmentation

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        memory = data.memory
        oom = memory.oom if memory is not None else None
        if memory is None or oom is None:
            return None
        where = self._where(oom)
        if oom.kind == "host_killed":
            return self._killed(oom, memory, where)
        evidence: dict[str, object] = {
            "kind": oom.kind, "step": oom.step, "phase": oom.phase, "module": oom.module_path or oom.module_type,
            "source": oom.source, "error": f"{oom.error_type}: {(oom.message or '').splitlines()[0][:300] if oom.message else ''}",
        }
        growth = [t for t in memory.growing() if (t.subject.startswith("gpu") if oom.kind == "cuda" else t.subject.startswith("host"))]
        if oom.kind == "cuda":
            unused = (oom.reserved_bytes or 0) - (oom.allocated_bytes or 0)
            fragmented = bool(oom.reserved_bytes and unused >= limits.fragmentation_share * oom.reserved_bytes)
            evidence.update({
                "peak_allocated_gb": _gib(oom.peak_allocated_bytes), "peak_reserved_gb": _gib(oom.peak_reserved_bytes),
                "allocated_gb_after": _gib(oom.allocated_bytes), "reserved_gb_after": _gib(oom.reserved_bytes),
                "device_total_gb": _gib(oom.total_bytes), "alloc_retries": oom.alloc_retries,
                "reserved_unallocated_share": round(unused / oom.reserved_bytes, 3) if oom.reserved_bytes else None,
                "allocator_summary": oom.summary,
            })
            advice = (
                f"The step ran out of GPU memory {where}. The peak before it was {size_text(oom.peak_allocated_bytes or 0)} "
                f"in tensors of {size_text(oom.total_bytes or 0)}. "
            )
            if growth:
                advice += "GPU memory grew through the run (see memory-growth): fix what keeps tensors across steps first. "
            if fragmented:
                advice += (
                    "Much of what the allocator reserved was not in use: fragmentation; "
                    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True lets it reuse that memory. "
                )
            advice += (
                "To need less: a smaller micro-batch with gradient accumulation, mixed precision (bf16 autocast halves "
                "activations), activation checkpointing of the largest blocks, optimizer.zero_grad(set_to_none=True), "
                "and no tensors kept across steps."
            )
            fix = (
                ("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True perfdoctor run train.py\n" if fragmented else "")
                + "with torch.autocast('cuda', dtype=torch.bfloat16):\n    loss = model(x)\n"
                "# or: torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)"
            )
            title = f"The run died of CUDA out-of-memory at step {oom.step} {where}"
        else:
            evidence["rss_gb"] = _gib(oom.rss_bytes)
            advice = (
                f"A host allocation failed {where}. "
                + ("Host memory grew through the run (see memory-growth): that growth is the likely cause. " if growth else "")
                + "Host memory goes to the training process and each DataLoader worker (each holds its own copy of "
                "what the Dataset caches): fewer workers, a smaller prefetch_factor, and datasets read lazily rather "
                "than loaded whole."
            )
            fix = "DataLoader(ds, num_workers=2, prefetch_factor=2)  # fewer copies of the dataset in memory"
            title = f"The run died of a host out-of-memory error at step {oom.step} {where}"
        return self.finding(title=title, evidence=evidence, saving=0.0, severity="critical", advice=advice, fix=fix)

    @staticmethod
    def _where(oom: OomEvent) -> str:
        if oom.phase is None:
            return ""
        text = f"(in {oom.phase}"
        if oom.module_path or oom.module_type:
            text += f", in {oom.module_path or oom.module_type}"
        return text + ")"

    def _killed(self, oom: OomEvent, memory: MemorySection, where: str) -> Finding:
        share = oom.used_bytes / oom.limit_bytes if oom.used_bytes and oom.limit_bytes else None
        limit = "the container's memory limit (cgroup)" if oom.limit_source == "cgroup" else "the machine's RAM"
        growth = [t for t in memory.growing() if t.subject.startswith("host")]
        evidence: dict[str, object] = {
            "signal": oom.error_type, "steps_done": oom.step, "in_use_gb_at_last_sample": _gib(oom.used_bytes),
            "limit_gb": _gib(oom.limit_bytes), "limit_source": oom.limit_source,
            "in_use_share": None if share is None else round(share, 3), "cgroup_oom_kills": oom.oom_kills,
            "process_rss_peak_gb": _gib(memory.process_rss_peak_bytes), "workers_rss_peak_gb": _gib(memory.workers_rss_peak_bytes),
        }
        advice = (
            f"The kernel's OOM killer ended the script (SIGKILL) after {oom.step} steps, with memory at "
            + (f"{share:.0%} of " if share is not None else "")
            + f"{limit}. "
            + ("Host memory grew through the run (see memory-growth): that growth is what filled it. " if growth else "")
            + "Memory goes to the training process and each DataLoader worker (each holds its own copy of what the "
            "Dataset caches, and pin_memory buffers): fewer workers, a smaller prefetch_factor, datasets read lazily, "
            "or a larger limit."
        )
        return self.finding(
            title=f"The kernel's OOM killer ended the run after {oom.step} steps",
            evidence=evidence, saving=0.0, severity="critical", advice=advice,
            fix="DataLoader(ds, num_workers=2, prefetch_factor=2)  # fewer copies of the dataset in memory\n"
            "# a container: docker run --memory=32g ... / resources.limits.memory in Kubernetes",
        )


class MemoryRankImbalance(Rule):
    """Under torch.distributed, one rank holds much more memory than the others: it runs out first."""

    id = "memory-rank-imbalance"
    area = "memory"
    timing_based = False
    docs = "https://pytorch.org/docs/stable/notes/ddp.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_ratio: float = 1.2  # the heaviest rank's peak over the median of the others
        min_excess_mb: float = 512.0  # ... and at least this much more
        warning_share: float = 0.85  # the heaviest rank's GPU peak at this share of its limit: warning

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        memory = data.memory
        if memory is None or len(memory.ranks) < 2:
            return None
        on_gpu = all(r.gpu_peak_reserved_bytes is not None for r in memory.ranks)

        def peak(r: RankMemory) -> int | None:
            return r.gpu_peak_reserved_bytes if on_gpu else r.host_rss_peak_bytes

        measured = [(value, r) for r in memory.ranks for value in [peak(r)] if value is not None]
        if len(measured) < 2:
            return None
        heaviest_bytes, heaviest = max(measured, key=lambda item: item[0])
        typical = statistics.median(value for value, r in measured if r is not heaviest)
        excess = heaviest_bytes - typical
        if typical <= 0 or heaviest_bytes < limits.min_ratio * typical or excess < limits.min_excess_mb * MIB:
            return None
        share = heaviest_bytes / heaviest.gpu_limit_bytes if on_gpu and heaviest.gpu_limit_bytes else None
        severity: Severity = "warning" if share is not None and share >= limits.warning_share else "info"
        what = "GPU memory (reserved)" if on_gpu else "host resident memory"
        return self.finding(
            title=f"Rank {heaviest.rank} holds {size_text(excess)} more {what} than the other ranks ({heaviest_bytes / typical:.2f}x)",
            evidence={
                "rank": heaviest.rank, "memory": "gpu_reserved" if on_gpu else "host_rss",
                "rank_peak_gb": _gib(heaviest_bytes), "others_median_peak_gb": _gib(typical),
                "excess_gb": _gib(excess), "ratio": round(heaviest_bytes / typical, 3),
                "rank_peak_share_of_limit": None if share is None else round(share, 3),
                "per_rank_peak_gb": {str(r.rank): _gib(value) for value, r in measured},
            },
            saving=0.0,
            severity=severity,
            advice=(
                f"The job's memory limit is set by its heaviest rank: rank {heaviest.rank} runs out first. Work done on one "
                "rank only is the usual cause: evaluation, metrics or checkpoints gathered to rank 0, a logger keeping "
                "tensors, or uneven batches. Spread or shard that work, and keep what is gathered on the CPU."
            ),
            fix=(
                "if dist.get_rank() == 0:\n"
                "    metrics.append(value.item())      # numbers, not tensors, on the logging rank\n"
                "torch.save(model.state_dict(), path)  # with the model unwrapped, not a gathered copy per rank"
            ),
        )
