"""Data-loading rules: the step waits on batches, worker start-up paid every epoch, waits that
more workers cannot fix because every core is already busy, and batches copied to the GPU from
pageable memory because the DataLoader does not pin them.

Savings are Amdahl-style bounds from this run's numbers. With `k` workers that each need `P` ms
to produce a batch and a step that computes for `C` ms, batches arrive every `P / k` ms, so the
step takes `max(C, P / k)`; the measured wait tells `P` (see `producer_ms`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.dataloader import busiest_loader
from ..analysis.rundata import LoaderSummary, RunData
from ..model.gpu import GpuSteps
from ..model.finding import Confidence
from ..model.numbers import rounded
from .base import Finding, Rule, places
from .dataloader_trace import trace_finding

MAX_SUGGESTED_WORKERS = 8


def usable_cores(data: RunData) -> int:
    return int(data.environment.usable_cores() or (data.host.usable_cores if data.host else 0) or 1)


def contended_wait_ms(data: RunData) -> float:
    """The training thread's waiting for CPUs that other processes held, per step (0 on a
    machine that was not shared): wall time that a quiet machine would not have spent."""
    contention = data.host.contention if data.host else None
    if contention is None or not contention.shared:
        return 0.0
    return contention.main_wait_ms_per_step or 0.0


def wait_numbers(data: RunData, loader: LoaderSummary) -> tuple[float, float, float] | None:
    """(wait share, wait ms per step, step ms) over the steady steps, or None when unmeasured.

    Left out: waits for each epoch's first batch (worker start-up, which
    dataloader-persistent-workers speaks to) and waits for batches the workers had already
    delivered (the cost of receiving a batch from another process, which more workers cannot
    cut). What remains is the step starving for batches.

    On a shared machine the step is corrected for the training thread's waiting for a CPU
    (contention inflates compute, not sleeping on storage), and a batch loaded in the training
    process for its own waiting for a CPU while it loaded.
    """
    steps = data.steps
    if not steps.breakdown or not steps.breakdown_ms or not steps.mean_ms:
        return None
    starved = 1.0
    if loader.wait_total_ms > 0:
        first_batches = loader.epoch_start_wait_ms if len(loader.epochs) > 1 else 0.0
        starved = max(0.0, loader.wait_total_ms - first_batches - loader.ready_wait_ms) / loader.wait_total_ms
    wait_ms = steps.breakdown_ms.dataloader * starved
    contended = contended_wait_ms(data)
    if not contended:
        return steps.breakdown.dataloader * starved, wait_ms, steps.mean_ms
    if loader.num_workers == 0 and loader.job_cores_in_waits is not None and loader.job_cpu_wait_share_in_waits is not None:
        wait_ms *= 1 - min(1.0, loader.job_cores_in_waits * loader.job_cpu_wait_share_in_waits)
    step_ms = max(steps.mean_ms - contended, wait_ms, 0.2 * steps.mean_ms)
    return wait_ms / step_ms, wait_ms, step_ms


def waiting_on(data: RunData, min_share: float, min_ms: float) -> tuple[LoaderSummary, float, float, float] | None:
    """The loader the step waits on, with (share, ms per step, step ms), when it waits enough."""
    loader = busiest_loader(data.dataloaders)
    numbers = None if loader is None else wait_numbers(data, loader)
    if loader is None or numbers is None:
        return None
    share, wait_ms, step_ms = numbers
    if share < min_share or wait_ms < min_ms:
        return None
    return loader, share, wait_ms, step_ms


def wait_evidence(
    data: RunData, loader: LoaderSummary, share: float, wait_ms: float, step_ms: float, cores: int, busy: float | None
) -> dict[str, object]:
    """The measurements both waiting rules report."""
    evidence: dict[str, object] = {
        "wait_share": rounded(share, 4),
        "wait_per_step_ms": rounded(wait_ms),
        "step_ms": rounded(step_ms),
        "num_workers": loader.num_workers,
        "usable_cores": cores,
        "cores_busy_during_waits_share": rounded(loader.cores_busy_in_waits, 3),
        "job_cores_during_waits": rounded(loader.job_cores_in_waits, 2),
    }
    if busy is not None:
        evidence["worker_cpu_percent"] = rounded(busy, 1)
    contended = contended_wait_ms(data)
    if contended:
        evidence["measured_step_ms"] = rounded(data.steps.mean_ms)
        evidence["step_ms_corrected_for_cpu_waits"] = rounded(step_ms)
        evidence["training_thread_cpu_wait_per_step_ms"] = rounded(contended)
    return evidence


def contention_confidence(data: RunData) -> tuple[Confidence, str]:
    """Confidence of a waiting rule's numbers: lowered on a shared machine, saying how they
    were corrected."""
    contention = data.host.contention if data.host else None
    if contention is None or not contention.shared:
        return "high", ""
    return "medium", (
        f"Measured on a shared machine (other processes used {contention.others_cpu_cores or 0:.1f} cores); the step "
        f"time was corrected for the {contended_wait_ms(data):.1f} ms per step the training thread waited for a CPU, "
        "but contention also delays the job's other threads: confirm on a quiet machine."
    )


def producer_cpu(data: RunData, loader: LoaderSummary) -> float | None:
    """How much of a core each producer of batches asks for while the step waits (0..1): the
    thread in next() with num_workers=0, else each worker. Its CPU time over the time no other
    process held it off a CPU, so that a CPU-bound producer reads ~1 however busy the machine is,
    and one sleeping on storage reads low even when, woken, it queues for a busy CPU. Falls back on the workers' mean CPU from the host sampler (which contention lowers)."""
    if loader.job_cores_in_waits is not None:
        return min(1.0, loader.job_cores_in_waits / max(1, loader.num_workers))
    busy = workers_busy_percent(data, loader)
    if busy is None:
        return None
    workers = max(1, loader.num_workers)
    return min(1.0, busy * workers / min(workers, usable_cores(data)) / 100)  # per worker the cores can run at once


def compute_cores(data: RunData, loader: LoaderSummary) -> float | None:
    """The cores the step's compute asked for (running or runnable), with num_workers=0: the
    job's demand over the steps less the loading thread's in the waits, over the compute time.
    None when unmeasured, or when workers' CPU would be mixed in. Spinning intra-op threads count
    as demand: it errs towards compute that needs its threads."""
    contention = data.host.contention if data.host else None
    breakdown = data.steps.breakdown_ms
    if loader.num_workers or contention is None or loader.job_cores_in_waits is None or not breakdown or not data.steps.mean_ms:
        return None
    job = contention.job_demand_cores
    if job is None and not contention.shared:  # on a quiet machine what it got is what it asked for
        job = contention.job_cpu_cores
    compute_ms = data.steps.mean_ms - breakdown.dataloader
    if job is None or compute_ms <= 0:
        return None
    return max(0.0, (job * data.steps.mean_ms - loader.job_cores_in_waits * breakdown.dataloader) / compute_ms)


def compute_ms_with_threads(compute_ms: float, threads: int, fewer: int, cores: int, busy_cores: float | None = None) -> float:
    """The step's own compute at `fewer` intra-op threads: slowed in proportion to the threads
    removed, of those it kept busy (`busy_cores`, measured) or, unmeasured, (pessimistically) of
    all that had a core each. Compute that sleeps or waits on a device does not slow at all."""
    parallel = float(min(threads, max(1, cores)))
    if busy_cores is not None:
        parallel = min(parallel, max(1.0, busy_cores))
    return compute_ms * max(1.0, parallel / max(1, min(fewer, threads)))


def worker_plan(
    cores: int, threads: int, producer: float, compute_ms: float, busy_cores: float | None = None
) -> tuple[int, int, float]:
    """The number of CPU-bound workers and intra-op threads that fit the cores together
    (workers + threads <= cores), and the step they would give: max(compute at those threads,
    producer / workers). Workers beside as many intra-op threads as there are cores fight them
    for the cores (on 2 cores, 2 workers and 2 threads made Lightning's MNIST 1.7x slower)."""
    best: tuple[int, int, float] | None = None
    for workers in range(1, min(MAX_SUGGESTED_WORKERS, max(1, cores - 1)) + 1):
        fewer = min(threads, max(1, cores - workers))
        step = max(compute_ms_with_threads(compute_ms, threads, fewer, cores, busy_cores), producer / workers)
        if best is None or step < best[2] - 1e-9:
            best = (workers, fewer, step)
    assert best is not None
    return best


def producer_ms(loader: LoaderSummary, wait_ms: float, step_ms: float) -> float:
    """Time one producer needs per batch: the main process itself (num_workers=0) needs the
    whole wait; k workers that keep the step waiting need k x (the step they feed)."""
    workers = loader.num_workers
    return wait_ms if workers == 0 else workers * step_ms


def step_ms_with(workers: int, producer: float, compute_ms: float) -> float:
    return max(compute_ms, producer / max(1, workers))


def workers_busy_percent(data: RunData, loader: LoaderSummary) -> float | None:
    """Mean CPU per worker (percent of one core), from the host sampler's child processes."""
    if not data.host or data.host.children_cpu_mean is None or loader.num_workers == 0:
        return None
    return data.host.children_cpu_mean / loader.num_workers


def loader_call(args: dict[str, object], **changes: object) -> str:
    shown = {"batch_size": args.get("batch_size"), **changes}
    lines = "".join(f"    {key}={value},\n" for key, value in shown.items())
    return f"loader = DataLoader(\n    dataset,\n{lines})"


class DataLoaderBottleneck(Rule):
    """The training step waits on the DataLoader for a large share of its time."""

    id = "dataloader-bottleneck"
    area = "data loading"
    docs = "https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html#enable-async-data-loading-and-augmentation"

    @dataclass(frozen=True)
    class Thresholds:
        min_wait_share: float = 0.10  # share of step time spent waiting for batches
        min_wait_ms: float = 0.5  # ... and at least this much per step
        min_saving: float = 0.05  # report only if more workers would save this share
        io_bound_worker_cpu: float = 50.0  # workers below this % of a core wait on I/O, not CPU

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        waiting = waiting_on(data, limits.min_wait_share, limits.min_wait_ms)
        if waiting is None:
            return None
        loader, share, wait_ms, step_ms = waiting
        if loader.source == "trace":  # a foreign trace's evidence: waits and iterator class only
            return trace_finding(self, loader, share, wait_ms, step_ms, limits.min_saving)
        if loader.cores_saturated:
            return None  # more workers would not help (dataloader-cpu-saturated's advice)
        cores = usable_cores(data)
        threads = data.environment.intra_op_threads() or 1
        workers = loader.num_workers
        busy = workers_busy_percent(data, loader)
        per_producer = producer_cpu(data, loader)
        # Producers that use little CPU while the step waits sleep on storage or the network.
        io_bound = per_producer is not None and per_producer * 100 < limits.io_bound_worker_cpu
        compute_ms = step_ms - wait_ms
        compute_busy = compute_cores(data, loader)
        producer = producer_ms(loader, wait_ms, step_ms)
        fewer_threads = threads
        if io_bound:  # workers that sleep on storage overlap well beyond the core count
            suggested = max(2, min(MAX_SUGGESTED_WORKERS, cores)) if workers == 0 else min(4 * MAX_SUGGESTED_WORKERS, max(2 * workers, 4))
            new_step = step_ms_with(suggested, producer, compute_ms)
        elif workers == 0 or workers < cores:
            if cores < 2:
                return None  # one core: workers would only take turns with the step
            suggested, fewer_threads, new_step = worker_plan(cores, threads, producer, compute_ms, compute_busy)
            if workers and suggested <= workers:
                return None
        else:
            return None  # busy workers already fill the cores: more would not produce batches faster
        saving = (step_ms - new_step) / step_ms if suggested > workers else 0.0
        if saving < limits.min_saving:
            return None
        args = loader.args
        evidence = {
            **wait_evidence(data, loader, share, wait_ms, step_ms, cores, busy),
            "compute_per_step_ms": rounded(compute_ms),
            "suggested_num_workers": suggested,
            "intra_op_threads": threads,
            "suggested_intra_op_threads": fewer_threads,
            "producer_cpu_share": rounded(per_producer, 3),
            "compute_cores": rounded(compute_busy, 2),
            "batch_size": args.get("batch_size"),
            "batch_wait_p50_ms": rounded(loader.wait_p50_ms),
        }
        scaling = f" of the {compute_busy:.1f} cores it kept busy" if compute_busy is not None else ""
        threads_note = (
            f" Together with the {threads} intra-op threads they would outnumber the {cores} cores and slow the step "
            f"down: also call torch.set_num_threads({fewer_threads}), so that {suggested} worker(s) and {fewer_threads} "
            f"thread(s) fit the cores (estimated step {new_step:.1f} ms, counting the compute as if it slowed in "
            f"proportion to the threads removed{scaling})."
            if fewer_threads < threads
            else ""
        )
        if io_bound and workers > 0 and per_producer is not None:
            advice = (
                f"The {workers} workers use only {per_producer * 100:.0f}% of a core each while the step waits: they wait "
                "on storage or the network, not on the CPU. More workers overlap that waiting even beyond the "
                f"core count (try num_workers={suggested} and prefetch_factor=4); or cache the data locally "
                "or in memory, read larger chunks, and use a faster format."
            )
        elif workers == 0:
            kind = (
                f"it sleeps on storage or the network ({per_producer * 100:.0f}% of a core while loading)"
                if io_bound and per_producer is not None
                else "it is CPU work"
            )
            advice = (
                f"Batches are loaded in the training process itself (num_workers=0; {kind}): each step waits "
                f"{wait_ms:.1f} ms for its batch before computing for {compute_ms:.1f} ms. Load in "
                f"background worker processes: with num_workers={suggested} the next batches are prepared "
                f"while the step computes. Keep the workers between epochs with persistent_workers=True.{threads_note}"
            )
        else:
            advice = (
                f"The {workers} workers cannot keep up with a {compute_ms:.1f} ms step: each step still waits "
                f"{wait_ms:.1f} ms. Raise num_workers to {suggested} while cores are free ({cores} usable), or "
                f"make each sample cheaper (decode once and cache, lighter transforms).{threads_note}"
            )
        fix = loader_call(
            args,
            num_workers=suggested,
            persistent_workers=True,
            prefetch_factor=4 if io_bound else 2,
            pin_memory="torch.cuda.is_available()",
        )
        if fewer_threads < threads:
            fix = f"torch.set_num_threads({fewer_threads})  # workers + intra-op threads <= {cores} cores\n" + fix
        confidence, reason = contention_confidence(data)
        return self.finding(
            title=f"The step waits {share:.0%} of its time on the DataLoader (num_workers={workers})",
            evidence=evidence,
            saving=saving,
            advice=advice,
            fix=fix,
            confidence=confidence,
            confidence_reason=reason,
            locations=[places(data).longest_dataloader_wait],
        )


class DataLoaderCpuSaturated(Rule):
    """The step waits on data while every core is busy: more workers will not help."""

    id = "dataloader-cpu-saturated"
    area = "data loading"
    # The advice is to make each sample cheaper, not to add workers: torchvision's notes on fast
    # transforms (tensors, uint8, v2, batched on the GPU), not the DataLoader's worker docs.
    docs = "https://pytorch.org/vision/stable/transforms.html#performance-considerations"

    @dataclass(frozen=True)
    class Thresholds:
        min_wait_share: float = 0.10
        min_wait_ms: float = 0.5

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        waiting = waiting_on(data, limits.min_wait_share, limits.min_wait_ms)
        if waiting is None:
            return None
        loader, share, wait_ms, step_ms = waiting
        if not loader.cores_saturated:
            return None
        cores = usable_cores(data)
        threads = data.environment.intra_op_threads()
        workers = loader.num_workers
        busy = workers_busy_percent(data, loader)
        evidence = {**wait_evidence(data, loader, share, wait_ms, step_ms, cores, busy), "intra_op_threads": threads}
        demand = loader.job_cores_in_waits or 0.0
        advice = (
            f"While the step waited on data, the job's own loading threads asked for {demand:.1f} of the {cores} usable "
            f"cores (running, or ready to run): the data pipeline is CPU-bound and more workers would only fight over the "
            "same cores. "
            "Make each sample cheaper: decode and resize once ahead of time and cache the result, use "
            "lighter or vectorised transforms, move augmentation to the GPU (batch-wise), or use more cores. "
            f"Keep workers plus intra-op threads ({workers} + {threads}) near the core count."
        )
        # Cheaper samples, the same workers: the cores, not the worker count, are the limit.
        fix = (
            "# decode and transform once, offline, and train from the cached tensors\n"
            "images, labels = zip(*(transform(sample) for sample in raw_dataset))\n"
            "torch.save((torch.stack(images), torch.tensor(labels)), 'train_preprocessed.pt')\n"
            "dataset = torch.utils.data.TensorDataset(*torch.load('train_preprocessed.pt'))\n"
            + loader_call(loader.args, num_workers=workers, persistent_workers=workers > 0)
            + "  # the same workers"
        )
        confidence, reason = contention_confidence(data)
        return self.finding(
            title=f"The step waits {share:.0%} of its time on data while the job's own loading fills every core",
            evidence=evidence,
            saving=share,
            advice=advice,
            fix=fix,
            confidence=confidence,
            confidence_reason=reason,
            locations=[places(data).longest_dataloader_wait],
        )


class DataLoaderPersistentWorkers(Rule):
    """Worker processes are started again every epoch (persistent_workers=False)."""

    id = "dataloader-persistent-workers"
    area = "data loading"
    docs = "https://pytorch.org/docs/stable/data.html#torch.utils.data.DataLoader"

    @dataclass(frozen=True)
    class Thresholds:
        min_epochs: int = 2  # epochs observed, so that at least one restart was paid
        min_restart_ms: float = 20.0  # extra wait at each epoch's start, beyond a normal batch
        min_saving: float = 0.02  # share of total step time the restarts cost

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        if not data.series.duration_ms:
            return None
        candidates = [
            loader
            for loader in data.dataloaders
            if loader.num_workers > 0 and not loader.persistent_workers and len(loader.epochs) >= limits.min_epochs
        ]
        best: tuple[float, LoaderSummary, list[float]] | None = None
        for loader in candidates:
            typical = loader.wait_p50_ms or 0.0
            restarts = [
                max(0.0, (epoch.first_batch_ms or 0.0) - typical) + epoch.end_ms
                for epoch in loader.epochs[1:]
                if epoch.batches and epoch.first_batch_ms is not None
            ]
            if restarts and (best is None or sum(restarts) > best[0]):
                best = (sum(restarts), loader, restarts)
        if best is None:
            return None
        lost_ms, loader, restarts = best
        mean_restart = lost_ms / len(restarts)
        # On a shared machine the steps' compute was stretched by waiting for a CPU, the workers'
        # start-up (sleeping, importing) much less: count the steps without that waiting.
        contended = contended_wait_ms(data) * len(data.series.duration_ms)
        total_step_ms = max(0.2 * sum(data.series.duration_ms), sum(data.series.duration_ms) - contended)
        saving = lost_ms / total_step_ms if total_step_ms else 0.0
        if mean_restart < limits.min_restart_ms or saving < limits.min_saving:
            return None
        epochs = len(loader.epochs)
        evidence = {
            "epochs": epochs,
            "num_workers": loader.num_workers,
            "persistent_workers": False,
            "restart_per_epoch_ms": rounded(mean_restart),
            "first_epoch_start_ms": rounded(loader.epochs[0].first_batch_ms),
            "typical_batch_wait_ms": rounded(loader.wait_p50_ms),
            "lost_total_ms": rounded(lost_ms),
            "total_step_ms": rounded(total_step_ms),
        }
        if contended:
            evidence["measured_total_step_ms"] = rounded(sum(data.series.duration_ms))
        confidence, reason = contention_confidence(data)
        return self.finding(
            title=f"DataLoader workers are restarted every epoch: {mean_restart:.0f} ms lost at each of {len(restarts)} epoch starts",
            evidence=evidence,
            saving=saving,
            advice=(
                f"With persistent_workers=False the {loader.num_workers} worker processes are shut down at the end "
                f"of every epoch and started again for the next, re-importing and re-initialising the dataset: "
                f"each epoch's first batch took {mean_restart:.0f} ms longer than a normal one. "
                "Set persistent_workers=True to keep them alive across epochs."
            ),
            fix=loader_call(loader.args, num_workers=loader.num_workers, persistent_workers=True),
            confidence=confidence,
            confidence_reason=reason,
        )


def pageable_copies(data: RunData, min_copies_per_step: float, min_ms: float) -> tuple[GpuSteps, float] | None:
    """The profiled steps' device numbers and the pageable host-to-device copies' share of the
    step, when there are enough of them (shared with the GPU rule `pageable-memcpy`)."""
    steps = data.gpu.trace_steps() if data.gpu else None
    if steps is None or steps.pageable_htod_copies < min_copies_per_step or steps.pageable_htod_ms < min_ms:
        return None
    return steps, steps.pageable_htod_ms / steps.step_ms


def unpinned_loader(data: RunData) -> LoaderSummary | None:
    # A trace's loader: pin_memory is not in the trace (pageable-memcpy speaks to the copies).
    return next((loader for loader in data.dataloaders if loader.batches and not loader.pins_memory and loader.source != "trace"), None)


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
        numbers = pageable_copies(data, limits.min_copies_per_step, limits.min_ms)
        loader = unpinned_loader(data)
        if numbers is None or loader is None:
            return None
        steps, share = numbers
        return self.finding(
            title=f"DataLoader without pin_memory: its batches are copied to the GPU from pageable memory ({steps.pageable_htod_ms:.2f} ms per step)",
            evidence={
                "pin_memory": False,
                "num_workers": loader.num_workers,
                "batch_size": loader.args.get("batch_size"),
                "pageable_htod_copies_per_step": steps.pageable_htod_copies,
                "pageable_htod_ms": rounded(steps.pageable_htod_ms),
                "pageable_bytes": steps.pageable_bytes,
                "step_ms": rounded(steps.step_ms),
                "share": rounded(share, 4),
            },
            saving=share,
            advice=(
                "With pin_memory=True the DataLoader hands out batches in page-locked memory (a background thread "
                "pins them), so the copy to the GPU runs at full PCIe bandwidth and, with non_blocking=True, "
                "overlaps the GPU's work instead of blocking the host."
            ),
            fix=loader_call(loader.args, num_workers=loader.num_workers, pin_memory=True)
            + "\nfor inputs, targets in loader:\n    inputs = inputs.to('cuda', non_blocking=True)\n    targets = targets.to('cuda', non_blocking=True)",
            locations=list(places(data).pageable_copies.values())[:3],
        )
