"""CPU rules: other processes taking the job's cores, more threads than cores, work done in the
training loop itself, and steps made of many tiny operators whose framework overhead outweighs
their compute.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.contention import SHARED_MIN_OTHERS_CORES
from ..analysis.rundata import RunData
from ..analysis.steps import fastest_steps
from ..model.finding import Confidence
from ..model.numbers import rounded
from .base import Finding, Rule, places
from .dataloader import usable_cores


def lost_to_contention(data: RunData) -> float:
    """The share of the training thread's runnable time spent waiting for CPUs that other
    processes held (0 unless the machine was shared). Work on that thread took 1 / (1 - lost)
    times its quiet-machine wall time; sleeping (on storage, on other processes) did not."""
    contention = data.host.contention if data.host else None
    if contention is None or not contention.shared or not contention.main_wait_share:
        return 0.0
    runnable = (contention.main_cpu_share or 0.0) + contention.main_wait_share
    return min(0.95, contention.main_wait_share / runnable) if runnable > 0 else 0.0


def corrected_for_contention(data: RunData, work_share: float) -> tuple[float, str]:
    """A share of the step that is the training thread's own work, with the step corrected for
    the thread's waiting for a CPU (it waited in every phase that computes, this work included):
    (corrected share, a confidence reason; "" when there was nothing to correct)."""
    lost = lost_to_contention(data)
    contention = data.host.contention if data.host else None
    if not lost or contention is None or not contention.main_wait_share:
        return work_share, ""
    step_left = max(0.05, 1 - contention.main_wait_share)
    share = min(1.0, work_share * (1 - lost) / step_left)
    return share, (
        f"Measured on a shared machine: the training thread waited for a CPU {contention.main_wait_share:.0%} of the "
        f"step; the share is corrected for it ({work_share:.0%} of the measured step, {share:.0%} of the step without "
        "that waiting), but contention also delays the job's other threads: confirm on a quiet machine."
    )


def loop_work_share(data: RunData) -> float | None:
    """The share of the step spent in the training loop itself (the step's "other" time less a
    loss computed outside the model), as the step clock measured it; None without one (a foreign
    trace's "other" is merely what no known range covers)."""
    steps = data.steps
    if not steps.breakdown or not steps.mean_ms or steps.other_parts is None:
        return None
    return max(0.0, steps.breakdown.other - steps.other_parts.loss)


def loop_cpu_at_most(data: RunData, loop_share: float) -> float | None:
    """The most of the loop's time the training thread can have computed (0..1): its time on a
    CPU or runnable over the steps, all of it counted as the loop's. None when unmeasured (no
    schedstats). Low, it says the loop mostly sleeps or blocks (a lock, I/O, a sync)."""
    contention = data.host.contention if data.host else None
    if contention is None or contention.main_cpu_share is None or loop_share <= 0 or not data.steps.mean_ms:
        return None
    if contention.main_wait_any_ms_per_step is not None:
        waiting = contention.main_wait_any_ms_per_step / data.steps.mean_ms
    else:
        waiting = contention.main_wait_share or 0.0
    return min(1.0, (contention.main_cpu_share + waiting) / loop_share)


def loop_advice(share_text: str, loop_ms: float, where: str, waiting_cpu: float | None) -> tuple[str, str, str]:
    """(title, advice, fix) for work in the loop; `waiting_cpu` is set when the loop mostly
    waited: the most of its time the training thread can have been on a CPU."""
    if waiting_cpu is not None:
        return (
            f"{share_text} of each step is spent in the training loop itself, mostly waiting, not computing",
            f"{loop_ms:.1f} ms per step go to code {where}, and the training thread was on a CPU (or ready for "
            f"one) for at most {waiting_cpu:.0%} of that time: the loop waits on something. Typically a sleep or a "
            "lock, synchronous file or network I/O (logging, metrics sent to a server, a checkpoint upload), or a "
            "device synchronisation (.item(), .cpu()). More DataLoader workers would not cut it: find the call that "
            "blocks (the slowest step's trace shows where) and make it asynchronous or less frequent.",
            "from concurrent.futures import ThreadPoolExecutor\n"
            "background = ThreadPoolExecutor(max_workers=1)\n"
            "...\n"
            "if step % 50 == 0:  # less often, and off the training thread\n"
            "    background.submit(log_metrics, {name: value.item() for name, value in metrics.items()})",
        )
    return (
        f"{share_text} of each step is work in the training loop itself, outside the DataLoader and the model",
        f"{loop_ms:.1f} ms per step go to code {where}, which runs serially in the training process: "
        "typically per-sample transforms or augmentation applied to each batch in the loop, host-side "
        "metrics, or logging that synchronises. Move per-sample work into the Dataset's __getitem__ (or a "
        "collate_fn) so DataLoader workers do it in parallel with the step, and make the rest batch-wise.",
        "class AugmentedDataset(torch.utils.data.Dataset):\n"
        "    def __getitem__(self, index):\n"
        "        image, label = self.base[index]\n"
        "        return augment(image), label  # runs in the DataLoader workers\n\n"
        "loader = DataLoader(AugmentedDataset(base), batch_size=64, num_workers=4, persistent_workers=True)",
    )


def loop_share_of_fastest_steps(data: RunData) -> float | None:
    """The loop work's share (the step's "other" time less the loss) of the fastest tenth of the
    steps; None when there are too few steps."""
    series = data.series
    fastest = fastest_steps(series)
    total = sum(series.duration_ms[i] for i in fastest)
    if not total:
        return None
    loop = sum(series.phases_ms["other"][i] - series.other_parts_ms["loss"][i] for i in fastest)
    return max(0.0, loop / total)


def compute_share(data: RunData) -> float:
    """Share of step time in the model and optimizer: what intra-op threads speed up."""
    breakdown = data.steps.breakdown
    return breakdown.forward + breakdown.backward + breakdown.optimizer if breakdown else 0.0


class CpuContention(Rule):
    """Other processes (or a cgroup quota) took CPU time the job's threads were ready to use."""

    id = "cpu-contention"
    area = "cpu"
    docs = "https://pytorch.org/docs/stable/notes/cpu_threading_torchscript_inference.html"
    timing_based = False  # it is the measurement of the contention itself

    @dataclass(frozen=True)
    class Thresholds:
        min_wait_share: float = 0.05  # the training thread waited for CPUs others held, share of the step
        min_wait_ms: float = 0.1  # ... and at least this long per step
        min_others_cores: float = SHARED_MIN_OTHERS_CORES  # other processes' mean CPU, in cores
        # or the job's threads (more of them than cores) lost this share of the CPU time they could
        # have used: the training thread then waits for its own threads, and its waiting hides the cost
        min_lost_cpu_share: float = 0.10
        min_throttled_share: float = 0.02  # or the cgroup's quota held the job off this share of the time

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        contention = data.host.contention if data.host else None
        if contention is None:
            return None
        others = contention.others_cpu_cores or 0.0
        wait_share = contention.main_wait_share or 0.0
        wait_ms = contention.main_wait_ms_per_step or 0.0
        throttled = contention.throttled_share or 0.0
        lost_cpu = contention.lost_cpu_share or 0.0
        others_busy = others >= limits.min_others_cores
        by_waiting = others_busy and wait_share >= limits.min_wait_share and wait_ms >= limits.min_wait_ms
        by_lost_cpu = others_busy and not by_waiting and lost_cpu >= limits.min_lost_cpu_share
        by_others = by_waiting or by_lost_cpu
        by_quota = throttled >= limits.min_throttled_share
        if not (by_others or by_quota):
            return None
        cores = usable_cores(data)
        threads = data.environment.intra_op_threads()
        step_ms = data.steps.p50_ms or data.steps.mean_ms
        competitors = [{"name": other.name, "cores": rounded(other.cpu_cores, 2)} for other in contention.top_others]
        evidence: dict[str, object] = {
            "wait_per_step_ms": rounded(contention.wait_ms_per_step),
            "training_thread_wait_per_step_ms": rounded(wait_ms),
            "wait_share": rounded(wait_share, 4),
            "job_wait_share_of_runnable_time": rounded(contention.others_wait_share, 4),
            "job_lost_cpu_share": rounded(contention.lost_cpu_share, 4),
            "job_demand_cores": rounded(contention.job_demand_cores, 2),
            "step_ms": rounded(step_ms),
            "others_cpu_cores": rounded(others, 2),
            "others_cpu_p90_cores": rounded(contention.others_cpu_p90_cores, 2),
            "job_cpu_cores": rounded(contention.job_cpu_cores, 2),
            "usable_cores": cores,
            "intra_op_threads": threads,
            "top_other_processes": competitors,
            "cpu_pressure_some": rounded(contention.pressure_some, 3),
        }
        if contention.throttled_periods is not None:
            evidence.update(
                throttled_periods=contention.throttled_periods,
                throttled_ms=rounded(contention.throttled_ms),
                throttled_share=rounded(throttled, 4),
                cgroup_quota_cores=rounded(contention.sources.cgroup_quota_cores, 2),
            )
        names = ", ".join(f"{c['name']} ({c['cores']} cores)" for c in competitors[:3])
        fixes = []
        busiest = f" (busiest: {names})" if names else ""
        isolate = (
            "Run on a quiet machine or a dedicated runner, or isolate the job (its own cores with taskset or a "
            "cpuset cgroup, a higher CPU share)."
        )
        confidence: Confidence = "high"
        reason = ""
        if by_waiting:
            title = f"The machine was shared: the training thread waited for a CPU {wait_share:.0%} of the step"
            saving = wait_share
            fixes.append(
                f"Other processes used {others:.1f} of the {cores} usable cores{busiest}, and the training thread waited "
                f"{wait_ms:.1f} ms per step for a CPU ({wait_share:.0%} of the step). {isolate}"
            )
        elif by_lost_cpu:
            title = f"The machine was shared: other processes took {lost_cpu:.0%} of the CPU time the job's threads could use"
            # Parallel regions (the model, the optimizer) run at the pace of the CPU time the
            # job's threads get; the rest of the step need not.
            saving, confidence = lost_cpu * compute_share(data), "medium"
            reason = (
                "The saving is estimated from the job's CPU time, not measured on the training thread: it assumes "
                "the model's and optimizer's parallel work speeds up in proportion to the CPU time returned."
            )
            fixes.append(
                f"Other processes used {others:.1f} of the {cores} usable cores{busiest}; the job's threads, ready to use "
                f"{contention.job_demand_cores or 0:.1f} cores, lost {lost_cpu:.0%} of the CPU time the cores could have given "
                f"them. The training thread itself waited only {wait_share:.0%} of the step: it mostly waits for the job's "
                f"other threads, which the lost CPU time slows. {isolate}"
            )
        else:
            title, saving = f"The cgroup's CPU quota throttled the job {throttled:.0%} of the time", 0.0
        if by_quota:
            fixes.append(
                f"The cgroup's CPU quota ({contention.sources.cgroup_quota_cores or 0:.2g} cores) throttled the job "
                f"{throttled:.0%} of the time: raise the quota (docker --cpus, the pod's CPU limit) or use fewer threads."
            )
        free = max(1, int(cores - others + 0.5)) if by_others else max(1, int(contention.sources.cgroup_quota_cores or cores))
        if threads and threads > free:
            fixes.append(
                f"While the machine is shared, cut the job's own threads to the cores it can get: {threads} intra-op "
                f"threads wait for each other at every parallel region when one of them is off its CPU; "
                f"torch.set_num_threads({free})."
            )
        fixes.append("Timings in this report are inflated by the contention; re-measure on a quiet machine to confirm the other findings.")
        return self.finding(
            title=title,
            evidence=evidence,
            saving=max(saving, throttled),
            confidence=confidence,
            confidence_reason=reason,
            advice=" ".join(fixes),
            fix=(
                f"torch.set_num_threads({free})  # the cores left free on this shared machine\n"
                "# or isolate the job: taskset -c 0-3 perfdoctor run train.py (cores no one else uses)"
            ),
        )


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
        contention = data.host.contention if data.host else None
        shared = contention is not None and contention.shared
        slowdown = None
        measure = "wall time"
        confidence: Confidence = "high"
        reason = ""
        if probe and probe.ms_at_cores:
            slowdown = probe.ms_at_threads / probe.ms_at_cores
            if shared and probe.cpu_ms_at_threads and probe.cpu_ms_at_cores:
                # Waiting for CPUs that others hold inflates wall time (most at the small thread
                # count, whose threads wait for each other): compare CPU time instead.
                slowdown = probe.cpu_ms_at_threads / probe.cpu_ms_at_cores
                measure = "CPU time"
            if probe.stable is False:
                confidence, reason = "low", (
                    f"The probe's repeated timings disagreed by more than 25% ({probe.rounds} rounds"
                    + (", on a shared machine" if shared else "")
                    + "): the measured slowdown is not trusted, and the saving assumes threads share cores fairly."
                )
                slowdown = None
            elif shared and slowdown < limits.min_measured_slowdown:
                # On a busy machine the probe's smaller thread count suffers most (its threads wait
                # for each other while one is off its CPU): the comparison cannot clear the setting.
                confidence, reason = "low", (
                    f"Measured on a shared machine (other processes used {contention.others_cpu_cores or 0:.1f} cores): "  # type: ignore[union-attr]
                    f"the probe ran {probe.ms_at_threads:.1f} ms at {probe.threads} threads and {probe.ms_at_cores:.1f} ms at "
                    f"{probe.cores}, timings that waiting for CPUs distorts; the saving assumes threads share cores fairly."
                )
                slowdown = None
            elif slowdown < limits.min_measured_slowdown:
                return None  # oversubscribed on paper, but this machine shows no cost: stay quiet
            elif shared:
                confidence, reason = "medium", (
                    f"Measured on a shared machine (other processes used {contention.others_cpu_cores or 0:.1f} cores): "  # type: ignore[union-attr]
                    "the slowdown compares the probe's CPU time, which contention inflates less than wall time."
                )
        share = compute_share(data)
        # Without a measured slowdown, assume the least harmful case: threads share cores fairly.
        penalty = (1 - 1 / slowdown) if slowdown else 0.25
        per_process = max(1, cores // local_processes)
        if shared and contention is not None and contention.others_cpu_cores:
            # the cores other processes leave free, shared among this machine's processes of the job
            per_process = max(1, min(per_process, int(cores - contention.others_cpu_cores + 0.5) // local_processes))
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
        evidence["slowdown_measured_in"] = measure if slowdown else None
        measured = (
            f"; the same conv and matmul work took {slowdown:.1f}x the {measure} at {threads} threads than at {per_process} on this machine"
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
            confidence=confidence,
            confidence_reason=reason,
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
        # Below this share of the loop's time on a CPU (at most), the loop waits rather than works.
        max_waiting_cpu: float = 0.5

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        steps = data.steps
        measured_share = loop_work_share(data)
        if measured_share is None:
            return None
        assert steps.breakdown is not None and steps.mean_ms and steps.other_parts is not None  # loop_work_share checked
        loss = steps.other_parts.loss
        before_forward = steps.other_parts.before_forward
        loop_share, reason = corrected_for_contention(data, measured_share)
        loop_ms = measured_share * steps.mean_ms * (1 - lost_to_contention(data))
        fastest = loop_share_of_fastest_steps(data) if reason else None
        best = max(loop_share, fastest or 0.0)
        if best < limits.min_share or loop_ms < limits.min_ms:
            return None
        confidence: Confidence = "medium" if reason else "high"
        share_text = f"{loop_share:.0%}"
        if fastest is not None and fastest > loop_share:
            # The correction is a lower bound: the model's parallel regions also waited for the
            # job's other threads, which the training thread's own waiting does not show.
            share_text = f"{loop_share:.0%} to {fastest:.0%}"
            reason = (
                f"{reason} The corrected {loop_share:.0%} is a lower bound: the model's parallel work also waited for "
                f"the job's other threads. In the fastest tenth of the steps, the least contended, the loop work was "
                f"{fastest:.0%} of the step. The saving uses the lower bound."
            )
            if loop_share < limits.min_share:
                confidence = "low"
        where = (
            "between the batch arriving and the forward pass"
            if before_forward >= loop_share / 2
            else "in the loop around the model (after the optimizer step or between phases)"
        )
        on_cpu = loop_cpu_at_most(data, measured_share)
        waiting = on_cpu if on_cpu is not None and on_cpu < limits.max_waiting_cpu else None
        title, advice, fix = loop_advice(share_text, loop_ms, where, waiting)
        return self.finding(
            title=title,
            evidence={
                "loop_share": rounded(loop_share, 4),
                "loop_per_step_ms": rounded(loop_ms),
                "before_forward_share": rounded(before_forward, 4),
                "loss_share": rounded(loss, 4),
                "step_ms": rounded(steps.mean_ms),
                "dataloader_share": rounded(steps.breakdown.dataloader, 4),
                "measured_loop_share": rounded(measured_share, 4),
                "training_thread_lost_to_contention": rounded(lost_to_contention(data), 4),
                "fastest_steps_loop_share": rounded(fastest, 4),
                "max_loop_cpu_share": rounded(on_cpu, 3),
            },
            saving=loop_share - limits.residual_share,
            confidence=confidence,
            confidence_reason=reason,
            advice=advice,
            fix=fix,
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
        # On a busy machine, where shares cannot be measured: the typical op must be this short.
        max_median_op_us: float = 10.0

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        trace = data.trace
        if trace is None or trace.ops_per_step is None or trace.small_op_share is None:
            return None
        small, reason = corrected_for_contention(data, trace.small_op_share)
        gaps, _ = corrected_for_contention(data, trace.gap_share or 0.0)
        overhead = small + gaps
        if trace.ops_per_step < limits.min_ops_per_step:
            return None
        if overhead < limits.min_overhead_share or small < limits.min_small_op_share:
            return self._unmeasured(data, limits) if reason else None
        # Work in the loop itself (per-sample transforms: tiny ops and Python too) is
        # main-loop-preprocessing's to report; batching or compiling the model would not remove it.
        loop, _ = corrected_for_contention(data, loop_work_share(data) or 0.0)
        overhead = max(0.0, overhead - loop)
        if overhead < limits.min_overhead_share:
            return None
        batch = next((loader.args.get("batch_size") for loader in data.dataloaders if loader.batches), None)
        return self.finding(
            title=f"Many tiny operators: {trace.ops_per_step:.0f} ops per step, median {trace.median_op_us:.0f} µs each",
            evidence={
                "ops_per_step": rounded(trace.ops_per_step, 1),
                "median_op_us": rounded(trace.median_op_us, 2),
                "small_op_share": rounded(small, 4),
                "gap_share": rounded(gaps, 4),
                "overhead_share": rounded(overhead, 4),
                "left_out_loop_work_share": rounded(loop, 4),
                "measured_small_op_share": rounded(trace.small_op_share, 4),
                "measured_gap_share": rounded(trace.gap_share, 4),
                "batch_size": batch,
                "profiled_step_ms": rounded(trace.step_ms),
            },
            saving=overhead * limits.recoverable,
            confidence="medium" if reason else "high",
            confidence_reason=reason,
            advice=(
                f"{overhead:.0%} of the profiled step is spent in operators too small to amortise their dispatch "
                "cost, or between operators in Python: the host's per-op overhead, not arithmetic, sets the step "
                "time. Give each op more work (a larger batch size), fuse ops with torch.compile(model), and "
                "replace Python loops over layers or samples with batched tensor operations."
            ),
            fix="model = torch.compile(model)  # fuses small ops; or raise batch_size so each op does more work",
            locations=[places(data).slowest_step],
        )

    def _unmeasured(self, data: RunData, limits: Thresholds) -> Finding | None:
        """On a busy machine an op's duration in the trace is not its cost: an op that waited for a
        CPU (or, with intra-op threads, for a thread that did) lasts up to a time slice. The count
        of ops and the median op, which most ops reach without waiting, still hold; what the ops
        cost as a share of the step does not. Said as such, at info, rather than kept silent."""
        trace = data.trace
        assert trace is not None and trace.ops_per_step is not None
        if trace.median_op_us is None or trace.median_op_us >= limits.max_median_op_us or not trace.step_ms:
            return None
        contention = data.host.contention if data.host else None
        waited = contention.main_wait_share if contention and contention.main_wait_share else 0.0
        floor_ms = trace.ops_per_step * trace.median_op_us / 1e3  # the ops at their typical, unwaited duration
        return self.finding(
            title=(
                f"Many tiny operators: {trace.ops_per_step:.0f} ops per step, median {trace.median_op_us:.0f} µs each; "
                "their share of the step could not be measured on this busy machine"
            ),
            evidence={
                "ops_per_step": rounded(trace.ops_per_step, 1),
                "median_op_us": rounded(trace.median_op_us, 2),
                "ops_at_median_ms_per_step": rounded(floor_ms, 3),
                "profiled_step_ms": rounded(trace.step_ms),
                "measured_small_op_share": rounded(trace.small_op_share, 4),
                "measured_gap_share": rounded(trace.gap_share, 4),
                "training_thread_wait_share": rounded(waited, 4),
            },
            saving=limits.recoverable * floor_ms / trace.step_ms,  # a floor: the step here is inflated by waiting
            severity="info",
            confidence="low",
            confidence_reason=(
                f"The training thread waited for a CPU {waited:.0%} of the step, and ops waited for it (and for "
                "intra-op threads) far longer than they computed: the ops' share of the step, and so the saving, "
                "cannot be told from this run. The saving shown is a floor from the ops' median duration. "
                "Rerun on a quiet machine to measure it."
            ),
            advice=(
                f"The step runs {trace.ops_per_step:.0f} operators whose typical duration is {trace.median_op_us:.0f} µs: "
                "on a quiet machine, per-op dispatch overhead may well set the step time. Measure there; if it does, "
                "give each op more work (a larger batch size) or fuse ops with torch.compile(model)."
            ),
            fix="model = torch.compile(model)  # fuses small ops; or raise batch_size so each op does more work",
            locations=[places(data).slowest_step],
        )
