"""What every collector is: started with the session, stopped however the run ends, and asked
for its payload, which the session writes to `RUN/raw/<name>.json`.

A collector fails alone: the session catches what it raises, records the error in `run.json`
and carries on. Collectors must stay cheap inside the training step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..rundir import RunDir
from ..stepclock import StepClock


@dataclass
class RunOptions:
    max_steps: int | None = None
    profile: bool = True
    profile_start: int | None = None  # first profiled step (0-based); None: chosen from max_steps
    profile_steps: int | None = None  # how many steps to profile
    profile_stack: bool = False
    host_interval_s: float = 0.5
    run_name: str = "run"


@dataclass
class CollectorContext:
    rundir: RunDir
    rank: int | None
    clock: StepClock
    options: RunOptions


class Collector:
    name: str = "collector"

    def start(self, ctx: CollectorContext) -> None:
        """Begin collecting (before the user's script runs)."""

    def stop(self) -> None:
        """Stop collecting; called once, however the run ends."""

    def payload(self) -> dict[str, Any] | None:
        """What to write to RUN/raw/<name>.json (None: nothing)."""
        return None
