"""The session: owns the step clock and the stream writer, starts every collector before the
user's script and stops them however it ends, then writes how the script's process ended.

Everything measured is streamed to `RUN/raw` while the job runs (`writer.py`); `stop` adds the
last records and flushes. In a process forked from the script, `stop` does nothing: only the
process that started the session ever writes its streams.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..redact import redact_argv, redact_text
from ..stream.rundir import RunDir
from .collectors.base import Collector, CollectorContext, RunOptions
from .signals import shutdown_handlers
from .stepclock import StepClock
from .writer import StreamWriter

if TYPE_CHECKING:
    from ..run.outcome import Outcome


@dataclass
class DistributedIdentity:
    rank: int | None = None
    local_rank: int | None = None
    world_size: int = 1
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "DistributedIdentity":
        """torchrun's environment; None/1 when the script runs as a single process."""
        env = os.environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return cls()
        try:
            return cls(
                rank=int(env["RANK"]),
                local_rank=int(env.get("LOCAL_RANK", env["RANK"])),
                world_size=int(env["WORLD_SIZE"]),
                local_world_size=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
            )
        except ValueError:
            return cls()


def start_record(target: dict[str, Any], options: RunOptions, identity: DistributedIdentity) -> dict[str, Any]:
    """The run stream's first record: what runs, how, and where in a job."""
    return {
        "start": {
            **{key: value for key, value in target.items() if key != "argv"},
            "argv": redact_argv(list(target.get("argv", []))),
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "started_unix_s": time.time(),
            "max_steps": options.max_steps,
            "run_name": options.run_name,
            "rank": identity.rank,
            "local_rank": identity.local_rank,
            "world_size": identity.world_size,
            "local_world_size": identity.local_world_size,
            "perfdoctor_version": __version__,
        }
    }


def default_collectors(options: RunOptions) -> list[Collector]:
    from .collectors.dataloader import DataLoaderProbe
    from .collectors.ddp import DdpCollector
    from .collectors.gpu import NvmlSampler
    from .collectors.host import HostSampler
    from .collectors.settings import SettingsSnapshot

    from .collectors.memory import MemoryCollector

    collectors: list[Collector] = [DataLoaderProbe(), HostSampler(), SettingsSnapshot(), DdpCollector(), NvmlSampler(), MemoryCollector()]
    if options.profile:
        from .collectors.profiler import ProfilerCollector

        collectors.append(ProfilerCollector())
    return collectors


@dataclass
class Session:
    rundir: RunDir
    target: dict[str, Any]  # {"script": path} or {"module": name}, and "argv"
    options: RunOptions = field(default_factory=RunOptions)
    identity: DistributedIdentity = field(default_factory=DistributedIdentity.from_env)
    collectors: list[Collector] | None = None
    supervised: bool = False  # a supervising parent wrote the run's start record, and will write its outcome

    def __post_init__(self) -> None:
        self.clock = StepClock(max_steps=self.options.max_steps)
        self.started_perf = time.perf_counter()
        self.errors: dict[str, str] = {}
        self.writer = StreamWriter(self.rundir, self.rank)
        self.context = CollectorContext(
            rundir=self.rundir, rank=self.rank, clock=self.clock, options=self.options, writer=self.writer,
            supervised=self.supervised, local_world_size=self.identity.local_world_size,
        )
        self._active: list[Collector] = []
        self._owner = os.getpid()
        self._stopped = False
        if self.collectors is None:
            self.collectors = default_collectors(self.options)

    @property
    def rank(self) -> int | None:
        return self.identity.rank

    @property
    def owner(self) -> bool:
        """This is the process that started the session (not a fork of it)."""
        return os.getpid() == self._owner

    def start(self) -> None:
        self.rundir.create()
        run = self.writer.stream("run")
        if not self.supervised:
            run.emit(start_record(self.target, self.options, self.identity))
        run.emit({"session": {"pid": os.getpid(), "origin_unix_s": self.clock.origin_unix_s}})
        self.writer.stream("steps").add_source(self.clock.drain)
        self.clock.install()
        for collector in self.collectors or []:
            ok, _ = self._guard(collector, "start", collector.start, self.context)
            if ok:
                self._active.append(collector)
        self.writer.flush()  # the run is on disk before the script's first line runs
        self.writer.start()

    def script_raised(self, error: BaseException) -> None:
        """Tell every collector that the script's call raised `error` (before `stop`, while its
        frames are alive). Only in the process that started the session."""
        if self._stopped or not self.owner:
            return
        for collector in self._active:
            self._guard(collector, "script_raised", collector.script_raised, error)

    def stop(self, outcome: "Outcome") -> None:
        """Stop collecting, stream the last records and how the process ended. Once, and only
        in the process that started the session. A signal meanwhile hurries it (the trace
        export is given up), never interrupts it."""
        if self._stopped or not self.owner:
            return
        self._stopped = True
        with shutdown_handlers(self.context.hurry):
            duration = time.perf_counter() - self.started_perf
            self.clock.finish()
            for collector in reversed(self._active):
                self._guard(collector, "stop", collector.stop)
            self.clock.uninstall()
            errors = {**self.errors, **{f"step_listener.{name}": error for name, error in self.clock.listener_errors.items()}}
            notes = []
            if self.writer.write_error:
                notes.append(f"Writing the measurements failed ({self.writer.write_error}): some may be missing.")
            self.writer.stream("run").emit({"end": {
                **outcome.to_json(),
                "notes": [*outcome.notes, *notes],
                "duration_s": round(duration, 3),
                "pid": os.getpid(),
                "collectors": [collector.name for collector in self._active],
                "collector_errors": errors,
            }})
            self.writer.stop()

    def _guard(self, collector: Collector, what: str, call: Any, *args: Any) -> tuple[bool, Any]:
        """Run one collector call; a failure is recorded for the report and ends nothing else."""
        try:
            return True, call(*args)
        except Exception as error:
            self.errors[f"{collector.name}.{what}"] = redact_text(f"{type(error).__name__}: {error}")
            return False, None
