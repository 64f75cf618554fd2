"""Per-DataLoader summary: arguments, batch waits, and each epoch's start-up cost."""

from __future__ import annotations

from typing import Any

from ..model.numbers import percentile
from .rundata import EpochStats, LoaderSummary

MIN_TICKS = 20  # fewer clock ticks (1/100 s each, all cores) than this say nothing about busy cores
# The waits count as "cores saturated" when all cores were at least this busy while the long
# waits ran: more workers would only compete for the same cores. The one threshold for it.
SATURATED_CORES_SHARE = 0.90


def cores_saturated(cores_busy_in_waits: float | None) -> bool:
    """Whether every core was busy while the step waited on a loader (the data-loading rules'
    shared fact: more workers help only when it is false)."""
    return cores_busy_in_waits is not None and cores_busy_in_waits >= SATURATED_CORES_SHARE


def summarize_loaders(raw: dict[str, Any]) -> list[LoaderSummary]:
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
        ticks = entry.get("cpu_in_long_waits") or {}
        total_ticks = ticks.get("total_ticks") or 0
        busy = (ticks.get("busy_ticks") or 0) / total_ticks if total_ticks >= MIN_TICKS else None
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
            )
        )
    return loaders


def busiest_loader(loaders: list[LoaderSummary]) -> LoaderSummary | None:
    """The loader the training loop waited on most (the one advice should name)."""
    used = [loader for loader in loaders if loader.batches]
    return max(used, key=lambda loader: loader.wait_total_ms) if used else None
