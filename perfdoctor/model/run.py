"""The report's `run` section: what ran, how it ended, and where the data came from."""

from __future__ import annotations

from typing import Literal

import msgspec

from .numbers import NonNegative, Positive

Status = Literal["completed", "failed", "interrupted", "stopped", "killed"]
# Worst first. A failing rank comes before a killed one: the ranks torchrun tears down after one
# rank fails are a consequence of that failure.
STATUSES: tuple[Status, ...] = ("failed", "killed", "interrupted", "stopped", "completed")


def status_of(value: object) -> Status | None:
    """The status `value` names, or None when it names none."""
    return next((status for status in STATUSES if status == value), None)


def worse(a: Status, b: Status) -> bool:
    """Whether a run that ended `a` ended worse than one that ended `b`."""
    return STATUSES.index(a) < STATUSES.index(b)


class RunError(msgspec.Struct, kw_only=True):
    """The exception that ended the script."""

    type: str
    message: str


class RunInfo(msgspec.Struct, kw_only=True):
    script: str | None = None
    module: str | None = None
    argv: list[str] = msgspec.field(default_factory=list)
    exit_code: int | None = None
    status: Status = "completed"
    started: str | None = None  # ISO-8601
    duration_s: NonNegative | None = None
    ranks: Positive = 1
    error: RunError | None = None
    max_steps: Positive | None = None
    source: Literal["run", "trace"] = "run"  # "run": perfdoctor ran it; "trace": read from foreign traces
