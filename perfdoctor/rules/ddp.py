"""Distributed rules: communication not hidden behind compute, a straggling rank, and DDP or
DataParallel settings that cost time. They read the job-wide `ddp` section merged from every
rank (see analysis/ranks.py); a single-process run without DDP has none, and they stay silent.

Communication numbers come from DDP's own logger (per backward pass: all-reduce time, and how
much of it overlapped backward compute), or else from the trace. A rank's all-reduce time
includes waiting for slower ranks, so the job's figure is the rank that waited least.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.rundata import RunData
from ..model.ddp import DdpSection
from ..model.numbers import rounded
from .base import Finding, Rule

DDP_DOCS = "https://pytorch.org/docs/stable/notes/ddp.html"
PHASES_ON_RANK = ("dataloader", "forward", "other", "optimizer")  # the phases a rank spends on its own


def step_ms(data: RunData) -> float | None:
    """The report's one step time for shares: the mean steady step (docs/contracts.md)."""
    return data.steps.mean_ms


def syncs_per_step(ddp: DdpSection) -> float:
    return max(1.0, float(ddp.synced_forwards_per_step_median or 1.0))


class DdpCommunicationBound(Rule):
    """Gradient all-reduce time that backward compute does not hide is a large share of the step."""

    id = "ddp-communication-bound"
    area = "distributed"
    docs = "https://pytorch.org/docs/stable/ddp_comm_hooks.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_exposed_share: float = 0.20  # exposed all-reduce time as a share of the step
        min_exposed_ms: float = 1.0
        # Below this much gradient per all-reduce, its time is latency and waiting for other
        # ranks (skew), not volume: bucket sizes and compression would not change it.
        min_gradient_mb: float = 8.0

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        ddp, step = data.ddp, step_ms(data)
        if not ddp or not step or ddp.exposed_comm_ms_per_backward is None:
            return None
        # One all-reduce per optimizer step is needed; more (accumulation without no_sync) is
        # ddp-accumulation-without-no-sync's to report.
        exposed = ddp.exposed_comm_ms_per_backward
        share = exposed / step
        if share < limits.min_exposed_share or exposed < limits.min_exposed_ms:
            return None
        instance = ddp.first_instance()
        gradient_bytes = ddp.logged.get("total_parameter_size_bytes") or (instance.parameter_bytes if instance else None) or 0
        if gradient_bytes < limits.min_gradient_mb * 2**20:
            return None
        return self.finding(
            title=f"Gradient all-reduce not hidden behind backward: {exposed:.1f} ms, {share:.0%} of each step",
            evidence={
                "exposed_comm_per_step_ms": rounded(exposed),
                "exposed_comm_share": rounded(share, 4),
                "comm_per_backward_ms": rounded(ddp.comm_ms_per_backward),
                "step_ms": rounded(step),
                "backend": ddp.backend,
                "world_size": ddp.world_size,
                "gradient_bytes": gradient_bytes,
                "bucket_cap_mb": instance.bucket_cap_mb if instance else None,
                "gradient_as_bucket_view": instance.gradient_as_bucket_view if instance else None,
                "static_graph": instance.static_graph if instance else None,
                "source": ddp.comm_source,
            },
            saving=share,
            advice=(
                f"After backward finishes computing, each step still waits {exposed:.1f} ms for gradients to be "
                "all-reduced. Hide more of it and send less: start all-reduces earlier with smaller buckets "
                "(bucket_cap_mb), avoid a gradient copy with gradient_as_bucket_view=True, let DDP optimise a "
                "fixed graph with static_graph=True, compress gradients with a communication hook (fp16/bf16 or "
                "PowerSGD), or do more compute per all-reduce (a larger batch, or gradient accumulation with no_sync())."
            ),
            fix=(
                "from torch.distributed.algorithms.ddp_comm_hooks import default_hooks\n"
                "model = DistributedDataParallel(model, bucket_cap_mb=25, gradient_as_bucket_view=True, static_graph=True)\n"
                "model.register_comm_hook(state=None, hook=default_hooks.bf16_compress_hook)"
            ),
        )


class DdpStraggler(Rule):
    """One rank is slower than the others, and every other rank waits for it at each all-reduce."""

    id = "ddp-straggler"
    area = "distributed"
    docs = DDP_DOCS

    @dataclass(frozen=True)
    class Thresholds:
        min_wait_share: float = 0.10  # the others' wait as a share of the step
        min_wait_ms: float = 1.0
        min_slowest_step_share: float = 0.75  # the rank must be the slowest in this share of steps
        # The straggler's extra waiting for a CPU explains its lag when it is at least this share
        # of the lag: then the cause is the machine (other processes, or other ranks, holding its
        # cores), not more work or data, and the finding says so at info level.
        cpu_wait_explains: float = 0.5

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        ddp, step = data.ddp, step_ms(data)
        straggler = ddp.straggler if ddp else None
        if not ddp or not straggler or not step:
            return None
        wait = straggler.others_wait_ms_per_step
        share = wait / step
        if share < limits.min_wait_share or wait < limits.min_wait_ms:
            return None
        consistency = straggler.slowest_step_share
        if consistency is not None and consistency < limits.min_slowest_step_share:
            return None  # slowest now and then: noise spread over ranks, not one slow rank
        rank = straggler.rank
        row = next((r for r in ddp.ranks if r.rank == rank and r.trace_file == straggler.trace_file), None)
        phases = {phase: row.phase_ms(phase) if row else None for phase in PHASES_ON_RANK}
        others = [r for r in ddp.ranks if r is not row]
        who = straggler.label()
        subject = who[0].upper() + who[1:]
        typical = {
            phase: sorted(r.phase_ms(phase) or 0.0 for r in others)[len(others) // 2] if others else None
            for phase in phases
        }
        worst_phase = max(phases, key=lambda p: (phases[p] or 0.0) - (typical[p] or 0.0))
        extra_wait = straggler.extra_cpu_wait_ms
        cpu_bound_lag = extra_wait is not None and extra_wait >= limits.cpu_wait_explains * wait
        shared = any(r.machine_shared for r in ddp.ranks)
        if cpu_bound_lag:
            return self.finding(
                title=f"Rank {rank} lags {wait:.1f} ms per step because it waited for a CPU, not for more work",
                evidence={
                    "straggler_rank": rank,
                    "straggler_node": row.node if row else None,
                    "cause": "cpu-wait",
                    "others_wait_per_step_ms": rounded(wait),
                    "straggler_extra_cpu_wait_per_step_ms": rounded(extra_wait),
                    "straggler_cpu_wait_per_step_ms": rounded(row.cpu_wait_ms_per_step if row else None),
                    "machine_shared": shared,
                    "wait_share": rounded(share, 4),
                    "step_ms": rounded(step),
                    "ranks": len(ddp.ranks),
                },
                saving=share,
                severity="info",
                advice=(
                    f"Rank {rank}'s training thread waited {extra_wait:.1f} ms longer per step for a CPU than the other "
                    f"ranks', which is most of its {wait:.1f} ms lag: its work and data are not the cause. "
                    + ("Other processes on the machine took its cores (see cpu-contention): " if shared else "")
                    + "give every rank its own cores (fewer intra-op threads per rank, torch.set_num_threads(cores // ranks)), "
                    "or run on a quieter machine."
                ),
                fix="torch.set_num_threads(max(1, os.cpu_count() // int(os.environ['LOCAL_WORLD_SIZE'])))",
                confidence="medium" if shared else "high",
                confidence_reason="measured on a shared machine" if shared else "",
            )
        return self.finding(
            title=f"{subject} is a straggler: the other ranks wait {wait:.1f} ms for it every step",
            evidence={
                "straggler_rank": rank,
                **({"straggler_trace": straggler.trace_file} if straggler.trace_file else {}),
                **({"straggler_trace_partial": straggler.partial} if straggler.partial else {}),
                "straggler_node": row.node if row else None,
                "straggler_local_ms": rounded(straggler.local_p50_ms),
                "others_local_ms": rounded(straggler.others_local_p50_ms),
                "others_wait_per_step_ms": rounded(wait),
                "slowest_in_steps_share": rounded(consistency, 3),
                "wait_share": rounded(share, 4),
                "step_ms": rounded(step),
                "slowest_phase": worst_phase,
                "slowest_phase_on_straggler_ms": rounded(phases[worst_phase]),
                "slowest_phase_elsewhere_ms": rounded(typical[worst_phase]),
                "straggler_extra_cpu_wait_per_step_ms": rounded(extra_wait),
                "ranks": len(ddp.ranks),
            },
            saving=share,
            advice=(
                f"{subject} spends {straggler.local_p50_ms:.1f} ms per step on its own work against "
                f"{straggler.others_local_p50_ms:.1f} ms on the others; the difference is spent by every other "
                f"rank waiting in the gradient all-reduce. Its {worst_phase} phase differs most "
                f"({phases[worst_phase] or 0:.1f} ms against {typical[worst_phase] or 0:.1f} ms). Look for what is "
                "different on that rank or its machine: uneven data (shard sizes, sequence lengths), slower storage or "
                "network, thermal throttling, other jobs on the node, or rank-0-only work (logging, checkpoints)."
                + (f" The trace of {who} was read only in part ({straggler.partial}): its numbers cover what was usable."
                   if straggler.partial else "")
            ),
            fix=(
                "# balance per-rank work: equal shards, and rank-0-only work outside the step\n"
                "sampler = DistributedSampler(dataset, drop_last=True)\n"
                "if dist.get_rank() == 0 and step % log_every == 0:\n"
                "    log(metrics)  # keep it rare and asynchronous"
            ),
            locations=[straggler.trace_step],
        )


class DdpFindUnusedParameters(Rule):
    """find_unused_parameters=True, yet DDP found no unused parameter: the search is wasted."""

    id = "ddp-find-unused-parameters"
    area = "distributed"
    docs = "https://pytorch.org/docs/stable/generated/torch.nn.parallel.DistributedDataParallel.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_iterations: int = 2  # DDP must have logged this many iterations

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        ddp = data.ddp
        if not ddp:
            return None
        for instance in ddp.instances:
            logged = instance.logged or {}
            if not instance.find_unused_parameters or logged.get("unused_parameter_size") != 0:
                continue
            if (logged.get("iteration") or 0) < limits.min_iterations:
                continue
            search = data.trace.named_op_ms.get("search_unused_parameters") if data.trace else None
            step = step_ms(data)
            saving = (search / step) if search and step else 0.0
            return self.finding(
                title="find_unused_parameters=True, but no parameter was ever unused",
                evidence={
                    "find_unused_parameters": True,
                    "unused_parameter_bytes": 0,
                    "iterations_logged": logged.get("iteration"),
                    "search_per_step_ms": rounded(search),
                    "step_ms": rounded(step),
                    "module": instance.module,
                },
                saving=saving,
                advice=(
                    "DDP was told some parameters may not receive gradients, so after every forward it walks the "
                    "whole autograd graph looking for them, and it found none"
                    + (f" ({search:.2f} ms per step in this run's trace)" if search else "")
                    + ". The flag also stops DDP from starting all-reduces as early as it could. Drop it (or, if "
                    "the graph is the same every step, use static_graph=True)."
                ),
                fix="model = DistributedDataParallel(model)  # find_unused_parameters defaults to False",
                severity=None if saving >= 0.10 else "info",
            )
        return None


class DdpAccumulationWithoutNoSync(Rule):
    """Gradient accumulation all-reduces on every micro-batch instead of only the last one."""

    id = "ddp-accumulation-without-no-sync"
    area = "distributed"
    docs = "https://pytorch.org/docs/stable/generated/torch.nn.parallel.DistributedDataParallel.html#torch.nn.parallel.DistributedDataParallel.no_sync"

    @dataclass(frozen=True)
    class Thresholds:
        min_saving: float = 0.02

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        ddp, step = data.ddp, step_ms(data)
        if not ddp or not step:
            return None
        syncs = float(ddp.synced_forwards_per_step_median or 0.0)
        if syncs < 2:
            return None
        per_backward = ddp.exposed_comm_ms_per_backward
        if per_backward is None:
            per_backward = ddp.comm_ms_per_backward
        wasted = (syncs - 1) * (per_backward or 0.0)
        saving = wasted / step
        if saving < limits.min_saving:
            return None
        micro = int(syncs)
        return self.finding(
            title=f"Gradients are all-reduced on all {micro} micro-batches of each optimizer step",
            evidence={
                "synced_backwards_per_step": rounded(syncs, 1),
                "unsynced_backwards_total": ddp.unsynced_forwards_total,
                "exposed_comm_per_backward_ms": rounded(per_backward),
                "wasted_per_step_ms": rounded(wasted),
                "step_ms": rounded(step),
            },
            saving=saving,
            advice=(
                f"Each optimizer step accumulates gradients over {micro} micro-batches, and DDP all-reduces after every "
                f"one of them; only the last all-reduce is needed. Run the first {micro - 1} forward and backward passes "
                f"inside model.no_sync(): that saves about {wasted:.1f} ms per step."
            ),
            fix=(
                "for i, (x, y) in enumerate(loader):\n"
                "    last = (i + 1) % accumulation == 0\n"
                "    with (contextlib.nullcontext() if last else model.no_sync()):\n"
                "        loss_fn(model(x), y).backward()\n"
                "    if last:\n"
                "        optimizer.step(); optimizer.zero_grad()"
            ),
        )


class DataParallelInsteadOfDdp(Rule):
    """nn.DataParallel over several GPUs: one process, replicas re-broadcast every step."""

    id = "dataparallel-instead-of-ddp"
    area = "distributed"
    docs = "https://pytorch.org/docs/stable/notes/cuda.html#cuda-nn-ddp-instead"

    @dataclass(frozen=True)
    class Thresholds:
        min_devices: int = 2

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        used = [dp for dp in (data.ddp.data_parallel if data.ddp else []) if len(dp.device_ids) >= limits.min_devices]
        if not used:
            return None
        devices = len(used[0].device_ids)
        overhead = data.trace.named_op_ms.get("data_parallel_overhead") if data.trace else None
        step = step_ms(data)
        saving = overhead / step if overhead and step else 0.0
        return self.finding(
            title=f"nn.DataParallel over {devices} GPUs: one process drives them all",
            evidence={
                "devices": devices,
                "module": used[0].module,
                "replicate_scatter_gather_per_step_ms": rounded(overhead),
                "step_ms": rounded(step),
            },
            saving=saving,
            advice=(
                "DataParallel runs one Python process for all GPUs: it copies the model to every device, scatters "
                "inputs and gathers outputs on each step, and its threads contend for the GIL. "
                "DistributedDataParallel with one process per GPU (launched by torchrun) avoids all of that and is "
                "faster even on a single machine."
            ),
            fix=(
                "# torchrun --nproc-per-node NUM_GPUS train.py\n"
                "dist.init_process_group('nccl'); torch.cuda.set_device(local_rank)\n"
                "model = DistributedDataParallel(model.cuda(local_rank), device_ids=[local_rank])"
            ),
            severity=None if saving >= 0.10 else "warning",
        )


class DdpBackendNotNccl(Rule):
    """The gloo backend all-reduces CUDA gradients (through host memory) instead of NCCL."""

    id = "ddp-backend-not-nccl"
    area = "distributed"
    docs = "https://pytorch.org/docs/stable/distributed.html#which-backend-to-use"

    @dataclass(frozen=True)
    class Thresholds:
        min_exposed_share: float = 0.0

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        ddp, step = data.ddp, step_ms(data)
        if not ddp or str(ddp.backend or "").lower() not in ("gloo", "mpi"):
            return None
        on_gpu = any("cuda" in instance.parameter_devices for instance in ddp.instances)
        if not on_gpu:
            return None
        exposed = ddp.exposed_comm_ms_per_backward
        share = exposed * syncs_per_step(ddp) / step if exposed is not None and step else 0.0
        if share < limits.min_exposed_share:
            return None
        return self.finding(
            title=f"DDP uses the {ddp.backend} backend for CUDA gradients",
            evidence={
                "backend": ddp.backend,
                "parameter_devices": ["cuda"],
                "exposed_comm_per_step_ms": rounded(exposed * syncs_per_step(ddp) if exposed is not None else None),
                "exposed_comm_share": rounded(share, 4),
                "step_ms": rounded(step),
            },
            saving=share,
            advice=(
                "With gloo, gradients on the GPU are reduced through host memory and CPU threads. NCCL reduces them "
                "on the GPUs over NVLink/PCIe/InfiniBand and is far faster for CUDA tensors: initialise the process "
                "group with backend='nccl' (keep gloo only for CPU tensors)."
            ),
            fix="dist.init_process_group(backend='nccl')  # or 'cpu:gloo,cuda:nccl' for mixed tensors",
            severity=None if share >= 0.10 else "warning",
        )

