"""CPU rules: more threads than cores, work done in the training loop itself, and steps made of
many tiny operators whose framework overhead outweighs their compute.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.rundata import RunData
from ..model.numbers import rounded
from .base import Finding, Rule, places
from .dataloader import usable_cores


def compute_share(data: RunData) -> float:
    """Share of step time in the model and optimizer: what intra-op threads speed up."""
    breakdown = data.steps.breakdown
    return breakdown.forward + breakdown.backward + breakdown.optimizer if breakdown else 0.0


class CpuThreadOversubscription(Rule):
    """More intra-op threads (times processes on this machine) than usable cores."""

    id = "cpu-thread-oversubscription"
    area = "cpu"
    docs = "https://pytorch.org/docs/stable/notes/cpu_threading_torchscript_inference.html"

    @dataclass(frozen=True)
    class Thresholds:
        max_threads_per_core: float = 1.0  # intra-op threads x local processes per usable core
        min_measured_slowdown: float = 1.10  # the thread probe must show at least this cost

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        environment = data.environment
        threads = environment.intra_op_threads()
        if not threads:
            return None
        cores = usable_cores(data)
        local_processes = max(1, int(environment.env_var("LOCAL_WORLD_SIZE") or 1))
        total = threads * local_processes
        if total <= limits.max_threads_per_core * cores:
            return None
        probe = environment.thread_probe
        slowdown = None
        if probe and probe.ms_at_cores:
            slowdown = probe.ms_at_threads / probe.ms_at_cores
            if slowdown < limits.min_measured_slowdown:
                return None  # oversubscribed on paper, but this machine shows no cost: stay quiet
        share = compute_share(data)
        # Without a measured slowdown, assume the least harmful case: threads share cores fairly.
        penalty = (1 - 1 / slowdown) if slowdown else 0.25
        per_process = max(1, cores // local_processes)
        evidence = {
            "intra_op_threads": threads,
            "processes_on_this_machine": local_processes,
            "usable_cores": cores,
            "threads_per_core": rounded(total / cores, 2),
            "compute_share": rounded(share, 4),
            "measured_slowdown": rounded(slowdown, 2),
            "env_OMP_NUM_THREADS": environment.env_var("OMP_NUM_THREADS"),
        }
        if data.host and data.host.involuntary_switches_per_s is not None:
            evidence["involuntary_context_switches_per_s"] = rounded(data.host.involuntary_switches_per_s, 1)
        measured = (
            f"; the same conv and matmul work ran {slowdown:.1f}x slower at {threads} threads than at {per_process} on this machine"
            if slowdown
            else ""
        )
        return self.finding(
            title=f"{total} intra-op threads compete for {cores} cores",
            evidence=evidence,
            saving=share * penalty,
            advice=(
                f"PyTorch runs {threads} intra-op threads in each of {local_processes} process(es) on {cores} usable "
                f"cores{measured}. Threads beyond the cores wait on each other at every parallel region. Use at most "
                f"{per_process} thread(s) per process: torch.set_num_threads({per_process}) or OMP_NUM_THREADS={per_process}."
            ),
            fix=f"import torch\ntorch.set_num_threads({per_process})  # or: OMP_NUM_THREADS={per_process} perfdoctor run ...",
        )


class MainLoopPreprocessing(Rule):
    """A large share of the step is spent in the training loop itself, outside data loading,
    the model, the loss and the optimizer: per-sample work that workers could do in parallel."""

    id = "main-loop-preprocessing"
    area = "cpu"
    docs = "https://pytorch.org/docs/stable/data.html#multi-process-data-loading"

    @dataclass(frozen=True)
    class Thresholds:
        min_share: float = 0.15  # loop work (other time, less the loss) as a share of the step
        min_ms: float = 1.0  # ... and at least this much per step
        residual_share: float = 0.02  # what stays in the loop after the fix (bookkeeping, logging)

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps = data.steps
        # Only the step clock tells loop work from a loss computed outside the model; a foreign
        # trace's "other" is merely what no known range covers.
        if not steps.breakdown or not steps.mean_ms or steps.other_parts is None:
            return None
        parts = steps.other_parts
        loss = parts.loss
        before_forward = parts.before_forward
        loop_share = max(0.0, steps.breakdown.other - loss)
        loop_ms = loop_share * steps.mean_ms
        if loop_share < limits.min_share or loop_ms < limits.min_ms:
            return None
        where = (
            "between the batch arriving and the forward pass"
            if before_forward >= loop_share / 2
            else "in the loop around the model (after the optimizer step or between phases)"
        )
        return self.finding(
            title=f"{loop_share:.0%} of each step is work in the training loop itself, outside the DataLoader and the model",
            evidence={
                "loop_share": rounded(loop_share, 4),
                "loop_per_step_ms": rounded(loop_ms),
                "before_forward_share": rounded(before_forward, 4),
                "loss_share": rounded(loss, 4),
                "step_ms": rounded(steps.mean_ms),
                "dataloader_share": rounded(steps.breakdown.dataloader, 4),
            },
            saving=loop_share - limits.residual_share,
            advice=(
                f"{loop_ms:.1f} ms per step go to code {where}, which runs serially in the training process: "
                "typically per-sample transforms or augmentation applied to each batch in the loop, host-side "
                "metrics, or logging that synchronises. Move per-sample work into the Dataset's __getitem__ (or a "
                "collate_fn) so DataLoader workers do it in parallel with the step, and make the rest batch-wise."
            ),
            fix=(
                "class AugmentedDataset(torch.utils.data.Dataset):\n"
                "    def __getitem__(self, index):\n"
                "        image, label = self.base[index]\n"
                "        return augment(image), label  # runs in the DataLoader workers\n\n"
                "loader = DataLoader(AugmentedDataset(base), batch_size=64, num_workers=4, persistent_workers=True)"
            ),
            locations=[places(data).slowest_step],
        )


class HostOverheadBound(Rule):
    """The step is a long run of tiny operators: per-op framework overhead, not compute,
    sets its length."""

    id = "host-overhead-bound"
    area = "cpu"
    docs = "https://pytorch.org/tutorials/intermediate/torch_compile_tutorial.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_ops_per_step: float = 300.0
        min_overhead_share: float = 0.40  # share of step time in tiny ops and between ops
        # The tiny ops themselves must be a real share: a thread idle between ops (waiting on other
        # ranks, on I/O) has large gaps too, and batching or compiling would not help it.
        min_small_op_share: float = 0.15
        recoverable: float = 0.5  # share of that overhead that batching or compiling removes

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        trace = data.trace
        if trace is None or trace.ops_per_step is None or trace.small_op_share is None:
            return None
        overhead = trace.small_op_share + (trace.gap_share or 0.0)
        if trace.ops_per_step < limits.min_ops_per_step or overhead < limits.min_overhead_share:
            return None
        if trace.small_op_share < limits.min_small_op_share:
            return None
        batch = next((loader.args.get("batch_size") for loader in data.dataloaders if loader.batches), None)
        return self.finding(
            title=f"Many tiny operators: {trace.ops_per_step:.0f} ops per step, median {trace.median_op_us:.0f} µs each",
            evidence={
                "ops_per_step": rounded(trace.ops_per_step, 1),
                "median_op_us": rounded(trace.median_op_us, 2),
                "small_op_share": rounded(trace.small_op_share, 4),
                "gap_share": rounded(trace.gap_share, 4),
                "overhead_share": rounded(overhead, 4),
                "batch_size": batch,
                "profiled_step_ms": rounded(trace.step_ms),
            },
            saving=overhead * limits.recoverable,
            advice=(
                f"{overhead:.0%} of the profiled step is spent in operators too small to amortise their dispatch "
                "cost, or between operators in Python: the host's per-op overhead, not arithmetic, sets the step "
                "time. Give each op more work (a larger batch size), fuse ops with torch.compile(model), and "
                "replace Python loops over layers or samples with batched tensor operations."
            ),
            fix="model = torch.compile(model)  # fuses small ops; or raise batch_size so each op does more work",
            locations=[places(data).slowest_step],
        )
