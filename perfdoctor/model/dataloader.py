"""The report's `dataloader` section: each DataLoader's arguments, batch waits and epochs."""

from __future__ import annotations

from typing import Any

import msgspec

from .numbers import Count, NonNegative


class EpochStats(msgspec.Struct, kw_only=True):
    first_batch_ms: NonNegative | None  # from iter() to the first batch in hand
    iter_ms: NonNegative  # inside DataLoader.__iter__ (starting workers, when not persistent)
    batches: Count
    wait_ms: NonNegative
    end_ms: NonNegative  # the final next() that raised StopIteration (worker shutdown included)


class LoaderEntry(msgspec.Struct, kw_only=True):
    id: int
    args: dict[str, Any]  # the DataLoader's arguments as the script passed them
    dataset: dict[str, Any]  # the dataset's type and length
    batches: Count
    wait_total_ms: NonNegative
    wait_p50_ms: NonNegative | None
    wait_p95_ms: NonNegative | None
    epochs: list[EpochStats]
    # "trace": read from a foreign trace's DataLoader ranges (args hold only what the iterator
    # class implies: num_workers 0 for the single-process one; no epochs); None: the probe.
    source: str | None = None
    iterator: str | None = None  # the iterator class the trace names


class DataLoaderSection(msgspec.Struct, kw_only=True):
    loaders: list[LoaderEntry] = msgspec.field(default_factory=list)
