"""Per-DataLoader summary: arguments, batch waits, and each epoch's start-up cost."""

from __future__ import annotations

from typing import Any

from .rundata import EpochStats, LoaderSummary
from .steps import percentile


def summarize_loaders(raw: dict[str, Any]) -> list[LoaderSummary]:
    loaders = []
    for entry in raw.get("loaders") or []:
        waits = sorted(int(ns) / 1e6 for ns in entry.get("batch_wait_ns") or [])
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
        loaders.append(
            LoaderSummary(
                loader_id=int(entry.get("id", len(loaders))),
                args=dict(entry.get("args") or {}),
                dataset=dict(entry.get("dataset") or {}),
                batches=len(waits),
                wait_total_ms=sum(waits),
                wait_p50_ms=percentile(waits, 0.5) if waits else None,
                wait_p95_ms=percentile(waits, 0.95) if waits else None,
                epochs=epochs,
            )
        )
    return loaders


def busiest_loader(loaders: list[LoaderSummary]) -> LoaderSummary | None:
    """The loader the training loop waited on most (the one advice should name)."""
    used = [loader for loader in loaders if loader.batches]
    return max(used, key=lambda loader: loader.wait_total_ms) if used else None
