"""What every collector is: started with the session, stopped however the run ends. While the
job runs it streams its records through `ctx.stream(name)` (see `collect/writer.py`).

A collector fails alone: the session catches what it raises, records the error in the run
stream and carries on. Collectors must stay cheap inside the training step: a clock read and an
append to a buffer, never encoding or file I/O (the writer's thread does that).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ...stream.rundir import RunDir
from ..stepclock import StepClock
from ..writer import Stream, StreamWriter


@dataclass
class RunOptions:
    max_steps: int | None = None
    profile: bool = True
    profile_start: int | None = None  # first profiled step (0-based); None: chosen from max_steps
    profile_steps: int | None = None  # how many steps to profile
    profile_stack: bool = False
    profile_memory: bool = False  # torch.profiler's profile_memory in the profiled steps
    host_interval_s: float = 0.5
    run_name: str = "run"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CollectorContext:
    rundir: RunDir
    rank: int | None
    clock: StepClock
    options: RunOptions
    writer: StreamWriter
    hurry: threading.Event = field(default_factory=threading.Event)  # set: give up what can be given up
    supervised: bool = False  # a supervising `perfdoctor run` is this process's parent
    local_world_size: int = 1  # processes of this job on this machine (torchrun's local ranks)

    def stream(self, name: str) -> Stream:
        return self.writer.stream(name)


class Collector:
    name: str = "collector"

    def start(self, ctx: CollectorContext) -> None:
        """Begin collecting (before the user's script runs)."""

    def script_raised(self, error: BaseException) -> None:
        """The script's call raised `error` (not StopRun): called before `stop`, while the
        error's frames are still alive (an out-of-memory error's allocator state, say)."""

    def stop(self) -> None:
        """Stop collecting; called once, however the run ends. What it buffered is written by
        the writer's last flush, after every collector has stopped."""
