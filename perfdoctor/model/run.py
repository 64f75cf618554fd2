"""The report's `run` section: what ran, how it ended, and where the data came from."""

from __future__ import annotations

from typing import Literal

import msgspec

Status = Literal["completed", "failed", "interrupted", "stopped"]
STATUS_WEIGHT: dict[str, int] = {"failed": 3, "interrupted": 2, "stopped": 1, "completed": 0}  # worst first


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
    duration_s: float | None = None
    ranks: int = 1
    error: RunError | None = None
    max_steps: int | None = None
    source: Literal["run", "trace"] = "run"  # "run": perfdoctor ran it; "trace": read from foreign traces
