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
from ..model.numbers import rounded
from .base import Finding, Rule
from .dataloader_trace import trace_finding

MAX_SUGGESTED_WORKERS = 8


def usable_cores(data: RunData) -> int:
    return int(data.environment.usable_cores() or (data.host.usable_cores if data.host else 0) or 1)


def wait_numbers(data: RunData, loader: LoaderSummary) -> tuple[float, float, float] | None:
    """(wait share, wait ms per step, step ms) over the steady steps, or None when unmeasured.

    Left out: waits for each epoch's first batch (worker start-up, which
    dataloader-persistent-workers speaks to) and waits for batches the workers had already
    delivered (the cost of receiving a batch from another process, which more workers cannot
    cut). What remains is the step starving for batches.
    """
    steps = data.steps
    if not steps.breakdown or not steps.breakdown_ms or not steps.mean_ms:
        return None
    starved = 1.0
    if loader.wait_total_ms > 0:
        first_batches = loader.epoch_start_wait_ms if len(loader.epochs) > 1 else 0.0
        starved = max(0.0, loader.wait_total_ms - first_batches - loader.ready_wait_ms) / loader.wait_total_ms
    return steps.breakdown.dataloader * starved, steps.breakdown_ms.dataloader * starved, steps.mean_ms


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
    loader: LoaderSummary, share: float, wait_ms: float, step_ms: float, cores: int, busy: float | None
) -> dict[str, object]:
    """The measurements both waiting rules report."""
    evidence: dict[str, object] = {
        "wait_share": rounded(share, 4),
        "wait_per_step_ms": rounded(wait_ms),
        "step_ms": rounded(step_ms),
        "num_workers": loader.num_workers,
        "usable_cores": cores,
        "cores_busy_during_waits_share": rounded(loader.cores_busy_in_waits, 3),
    }
    if busy is not None:
        evidence["worker_cpu_percent"] = rounded(busy, 1)
    return evidence


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
        workers = loader.num_workers
        busy = workers_busy_percent(data, loader)
        # Workers are I/O-bound when they use little CPU even counting only as many as the cores can run.
        io_bound = busy is not None and busy * workers / min(workers, cores) < limits.io_bound_worker_cpu
        if workers == 0:
            suggested = max(2, min(MAX_SUGGESTED_WORKERS, cores))
        elif io_bound:  # workers that sleep on storage overlap well beyond the core count
            suggested = min(4 * MAX_SUGGESTED_WORKERS, max(2 * workers, 4))
        elif workers >= cores:
            return None  # busy workers already fill the cores: more would not produce batches faster
        else:
            suggested = min(cores, 2 * workers)
        compute_ms = step_ms - wait_ms
        producer = producer_ms(loader, wait_ms, step_ms)
        saving = (step_ms - step_ms_with(suggested, producer, compute_ms)) / step_ms if suggested > workers else 0.0
        if saving < limits.min_saving:
            return None
        args = loader.args
        evidence = {
            **wait_evidence(loader, share, wait_ms, step_ms, cores, busy),
            "compute_per_step_ms": rounded(compute_ms),
            "suggested_num_workers": suggested,
            "batch_size": args.get("batch_size"),
            "batch_wait_p50_ms": rounded(loader.wait_p50_ms),
        }
        if workers == 0:
            advice = (
                f"Batches are loaded in the training process itself (num_workers=0): each step waits "
                f"{wait_ms:.1f} ms for its batch before computing for {compute_ms:.1f} ms. Load in "
                f"background worker processes: with num_workers={suggested} the next batches are prepared "
                "while the step computes. Keep the workers between epochs with persistent_workers=True."
            )
        elif io_bound:
            advice = (
                f"The {workers} workers use only {busy:.0f}% of a core each while the step waits: they wait "
                "on storage or the network, not on the CPU. More workers overlap that waiting even beyond the "
                f"core count (try num_workers={suggested} and prefetch_factor=4); or cache the data locally "
                "or in memory, read larger chunks, and use a faster format."
            )
        else:
            advice = (
                f"The {workers} workers cannot keep up with a {compute_ms:.1f} ms step: each step still waits "
                f"{wait_ms:.1f} ms. Raise num_workers to {suggested} while cores are free ({cores} usable), or "
                "make each sample cheaper (decode once and cache, lighter transforms)."
            )
        fix = loader_call(
            args,
            num_workers=suggested,
            persistent_workers=True,
            prefetch_factor=4 if io_bound else 2,
            pin_memory="torch.cuda.is_available()",
        )
        return self.finding(
            title=f"The step waits {share:.0%} of its time on the DataLoader (num_workers={workers})",
            evidence=evidence,
            saving=saving,
            advice=advice,
            fix=fix,
        )


class DataLoaderCpuSaturated(Rule):
    """The step waits on data while every core is busy: more workers will not help."""

    id = "dataloader-cpu-saturated"
    area = "data loading"
    docs = "https://pytorch.org/docs/stable/data.html#multi-process-data-loading"

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
        evidence = {**wait_evidence(loader, share, wait_ms, step_ms, cores, busy), "intra_op_threads": threads}
        advice = (
            f"While the step waited on data, the machine's cores were {loader.cores_busy_in_waits:.0%} busy: "
            f"the data pipeline is CPU-bound and more workers would only fight over the same {cores} cores. "
            "Make each sample cheaper: decode and resize once ahead of time and cache the result, use "
            "lighter or vectorised transforms, move augmentation to the GPU (batch-wise), or use more cores. "
            f"Keep workers plus intra-op threads ({workers} + {threads}) near the core count."
        )
        fix = (
            "# pre-process once, offline, and train from the cached tensors\n"
            "cached = [transform(sample) for sample in raw_dataset]\n"
            "torch.save(cached, 'train_preprocessed.pt')\n"
            + loader_call(loader.args, num_workers=max(1, min(workers or 1, cores - 1)), persistent_workers=True)
        )
        return self.finding(
            title=f"The step waits {share:.0%} of its time on data while every core is busy",
            evidence=evidence,
            saving=share,
            advice=advice,
            fix=fix,
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
        total_step_ms = sum(data.series.duration_ms)
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
        )
