"""Per-DataLoader summary: arguments, batch waits, and each epoch's start-up cost."""

from __future__ import annotations

from typing import Any

from .rundata import EpochStats, LoaderSummary
from .steps import percentile

MIN_TICKS = 20  # fewer clock ticks (1/100 s each, all cores) than this say nothing about busy cores


def summarize_loaders(raw: dict[str, Any]) -> list[LoaderSummary]:
    loaders = []
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
                cores_busy_in_waits=(ticks.get("busy_ticks") or 0) / total_ticks if total_ticks >= MIN_TICKS else None,
            )
        )
    return loaders


def busiest_loader(loaders: list[LoaderSummary]) -> LoaderSummary | None:
    """The loader the training loop waited on most (the one advice should name)."""
    used = [loader for loader in loaders if loader.batches]
    return max(used, key=lambda loader: loader.wait_total_ms) if used else None
