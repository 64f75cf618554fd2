"""The session: owns the run directory and the step clock, starts every collector before the
user's script and stops them however it ends, then writes what they measured to `RUN/raw`.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .collectors.base import Collector, CollectorContext, RunOptions
from .redact import redact_argv, redact_text
from .rundir import RunDir
from .stepclock import StepClock

STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"
STATUS_STOPPED = "stopped"


@dataclass
class Outcome:
    exit_code: int
    status: str
    error: dict[str, str] | None = None


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


def default_collectors(options: RunOptions) -> list[Collector]:
    from .collectors.dataloader import DataLoaderProbe
    from .collectors.host import HostSampler
    from .collectors.settings import SettingsSnapshot

    from .collectors.ddp import DdpCollector
    from .collectors.gpu import NvmlSampler

    collectors: list[Collector] = [DataLoaderProbe(), HostSampler(), SettingsSnapshot(), DdpCollector(), NvmlSampler()]
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

    def __post_init__(self) -> None:
        self.clock = StepClock(max_steps=self.options.max_steps)
        self.started_wall = dt.datetime.now().astimezone()
        self.started_perf = time.perf_counter()
        self.errors: dict[str, str] = {}
        self._active: list[Collector] = []
        self._stopped = False
        if self.collectors is None:
            self.collectors = default_collectors(self.options)

    @property
    def rank(self) -> int | None:
        return self.identity.rank

    def start(self) -> None:
        self.rundir.create()
        self.clock.install()
        context = CollectorContext(rundir=self.rundir, rank=self.rank, clock=self.clock, options=self.options)
        for collector in self.collectors or []:
            ok, _ = self._guard(collector, "start", collector.start, context)
            if ok:
                self._active.append(collector)

    def stop(self, outcome: Outcome) -> None:
        """Stop collecting and write every raw file. Safe to call once, however the run ended."""
        if self._stopped:
            return
        self._stopped = True
        duration = time.perf_counter() - self.started_perf
        self.clock.finish()
        for collector in reversed(self._active):
            self._guard(collector, "stop", collector.stop)
        self.clock.uninstall()
        for collector in self._active:
            _, payload = self._guard(collector, "payload", collector.payload)
            if payload:
                self._guard(collector, "write", self.rundir.write_raw, collector.name, self.rank, payload)
        self.rundir.write_raw(
            "steps",
            self.rank,
            {"mode": self.clock.mode, "optimizers": list(self.clock.optimizers.values()), **self.clock.steps.to_json()},
        )
        self.rundir.write_raw("run", self.rank, self._run_payload(outcome, duration))

    def _run_payload(self, outcome: Outcome, duration_s: float) -> dict[str, Any]:
        identity = self.identity
        return {
            **{key: value for key, value in self.target.items() if key != "argv"},
            "argv": redact_argv(list(self.target.get("argv", []))),
            "started": self.started_wall.isoformat(timespec="seconds"),
            "duration_s": round(duration_s, 3),
            "exit_code": outcome.exit_code,
            "status": outcome.status,
            "error": outcome.error,
            "max_steps": self.options.max_steps,
            "rank": identity.rank,
            "local_rank": identity.local_rank,
            "world_size": identity.world_size,
            "local_world_size": identity.local_world_size,
            "pid": os.getpid(),
            "perfdoctor_version": __version__,
            "collectors": [collector.name for collector in self._active],
            "collector_errors": self.errors,
        }

    def _guard(self, collector: Collector, what: str, call: Any, *args: Any) -> tuple[bool, Any]:
        """Run one collector call; a failure is recorded for the report and ends nothing else."""
        try:
            return True, call(*args)
        except Exception as error:
            self.errors[f"{collector.name}.{what}"] = redact_text(f"{type(error).__name__}: {error}")
            return False, None
