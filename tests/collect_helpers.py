"""A collector's world without a script: a run directory, a step clock and a real stream writer,
and what the collectors streamed, read back the way the analysis reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perfdoctor.collect.collectors.base import CollectorContext, RunOptions
from perfdoctor.collect.stepclock import StepClock
from perfdoctor.collect.writer import StreamWriter
from perfdoctor.stream.rundir import RunDir


class Harness:
    def __init__(self, folder: Path, options: RunOptions | None = None, clock: StepClock | None = None, steps: bool = False) -> None:
        self.rundir = RunDir(folder / "run").create()
        self.clock = clock or StepClock()
        self.writer = StreamWriter(self.rundir, None)
        if steps:
            self.writer.stream("steps").add_source(self.clock.drain)
        self.ctx = CollectorContext(rundir=self.rundir, rank=None, clock=self.clock, options=options or RunOptions(), writer=self.writer)

    def read(self, name: str) -> dict[str, Any] | None:
        """Flush, then read stream `name` back as the analysis does."""
        self.writer.flush()
        return self.rundir.read_raw_file(name, None)
