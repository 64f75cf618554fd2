"""Per-DataLoader summary: arguments, batch waits, and each epoch's start-up cost."""

from __future__ import annotations

from typing import Any

from ..model.numbers import percentile
from .rundata import EpochStats, LoaderSummary

MIN_WAIT_WALL_NS = 50_000_000  # less measured waiting than this says nothing about the cores
# The waits count as "cores saturated" when the job's own producing threads (the thread waiting
# in next() and the workers) asked for at least this share of the usable cores while the long
# waits ran: running, or runnable and waiting for a CPU. More workers would only compete for the
# same cores. Other processes' CPU does not count: a busy machine is not a CPU-bound pipeline.
# The one threshold for it.
SATURATED_CORES_SHARE = 0.90


def cores_saturated(cores_busy_in_waits: float | None) -> bool:
    """Whether the job's own threads filled the cores while the step waited on a loader (the
    data-loading rules' shared fact: more workers help only when it is false)."""
    return cores_busy_in_waits is not None and cores_busy_in_waits >= SATURATED_CORES_SHARE


def job_cores_in_waits(measured: dict[str, Any]) -> tuple[float | None, float | None]:
    """(cores the job's producing threads asked for, share of their runnable time spent waiting
    for a CPU) while the long waits ran. What a thread asks for is its CPU time over the time no
    other process held it off a CPU (see collectors/dataloader.thread_demand); (None, None) when unmeasured (a stream from before this was
    measured holds the machine's busy ticks instead, which cannot tell the job from others)."""
    wall = measured.get("wall_ns") or 0
    if wall < MIN_WAIT_WALL_NS:
        return None, None
    run, wait = measured.get("job_run_ns") or 0, measured.get("job_wait_ns") or 0
    waiting = wait / (run + wait) if run + wait else 0.0
    demand = measured.get("job_demand_ns")
    if demand is None:  # a stream from before demand was measured: runnable time counted as asked for
        return (run + wait) / wall, waiting
    return demand / wall, waiting


def summarize_loaders(raw: dict[str, Any], usable_cores: int | None = None) -> list[LoaderSummary]:
    loaders: list[LoaderSummary] = []
    for entry in raw.get("loaders") or []:
        in_order = [int(ns) / 1e6 for ns in entry.get("batch_wait_ns") or []]
        waits = sorted(in_order)
        epochs = [
            EpochStats(
                first_batch_ms=None if epoch.get("first_batch_ns") is None else epoch["first_batch_ns"] / 1e6,
                iter_ms=epoch.get("iter_ns", 0) / 1e6,
                batches=int(epoch.get("batches", 0)),
                wait_ms=epoch.get("wait_ns", 0) / 1e6,
                end_ms=epoch.get("end_ns", 0) / 1e6,
            )
            for epoch in entry.get("epochs") or []
        ]
        first_batches, index = 0.0, 0
        for epoch in epochs:
            if epoch.batches and index < len(in_order):
                first_batches += in_order[index]
            index += epoch.batches
        demand, waiting = job_cores_in_waits(entry.get("cpu_in_long_waits") or {})
        busy = demand / max(1, usable_cores or 1) if demand is not None else None
        loaders.append(
            LoaderSummary(
                loader_id=int(entry.get("id", len(loaders))),
                args=dict(entry.get("args") or {}),
                dataset=dict(entry.get("dataset") or {}),
                batches=len(waits),
                wait_total_ms=sum(waits),
                epoch_start_wait_ms=first_batches,
                wait_p50_ms=percentile(waits, 0.5) if waits else None,
                wait_p95_ms=percentile(waits, 0.95) if waits else None,
                epochs=epochs,
                ready_wait_ms=(entry.get("ready_wait_ns") or 0) / 1e6,
                cores_busy_in_waits=busy,
                cores_saturated=cores_saturated(busy),
                job_cores_in_waits=demand,
                job_cpu_wait_share_in_waits=waiting,
            )
        )
    return loaders


def busiest_loader(loaders: list[LoaderSummary]) -> LoaderSummary | None:
    """The loader the training loop waited on most (the one advice should name)."""
    used = [loader for loader in loaders if loader.batches]
    return max(used, key=lambda loader: loader.wait_total_ms) if used else None
