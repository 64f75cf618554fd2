"""The host sampler: a background thread that reads, at a low rate, this process's and its
children's (DataLoader workers') CPU use, memory and threads, and every core's system CPU use.

It runs outside the training step and holds the GIL only for a few psutil calls per sample.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .base import Collector, CollectorContext

MAX_SAMPLES = 20_000  # past this, every other sample is dropped and the interval doubles


class HostSampler(Collector):
    name = "host"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ctx: CollectorContext | None = None
        self._interval = 0.5
        self._columns: dict[str, list[Any]] = {
            name: []
            for name in (
                "t_ns", "step", "process_cpu", "children_cpu", "children", "system_cpu", "core_cpu",
                "rss", "children_rss", "threads", "ctx_switches_involuntary",
            )
        }
        self._error: str | None = None

    def start(self, ctx: CollectorContext) -> None:
        import psutil

        self._ctx = ctx
        self._interval = ctx.options.host_interval_s
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._children_cpu_s = self._reaped_children_cpu_s()
        self._children_at = time.monotonic()
        psutil.cpu_percent(None, percpu=True)
        self._thread = threading.Thread(target=self._loop, name="perfdoctor-host", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            try:  # one last sample, so that a run shorter than the interval still has one
                self._sample()
            except Exception as error:
                self._error = f"{type(error).__name__}: {error}"
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sample()
            except Exception as error:  # psutil can fail on a vanishing process: note it, go on
                self._error = f"{type(error).__name__}: {error}"

    def _reaped_children_cpu_s(self) -> float:
        """CPU seconds of children that have exited (DataLoader workers of past epochs).

        Children's CPU is measured as a total (exited + live) whose growth between samples is
        the rate: workers started and stopped between two samples, or first seen in this one,
        are counted in full (a per-process cpu_percent would read 0 for every new worker).
        """
        times = self._process.cpu_times()
        return times.children_user + times.children_system

    def _sample(self) -> None:
        import psutil

        assert self._ctx is not None
        process = self._process
        with process.oneshot():
            cpu = process.cpu_percent(None)
            rss = process.memory_info().rss
            threads = process.num_threads()
            switches = process.num_ctx_switches().involuntary
        children_rss, live = 0, 0
        children_cpu_s = self._reaped_children_cpu_s()
        for child in process.children(recursive=True):
            try:
                with child.oneshot():
                    times = child.cpu_times()
                    children_cpu_s += times.user + times.system
                    children_rss += child.memory_info().rss
                live += 1
            except psutil.Error:
                continue
        now = time.monotonic()
        elapsed = max(now - self._children_at, 1e-6)
        children_cpu = max(0.0, 100 * (children_cpu_s - self._children_cpu_s) / elapsed)
        self._children_cpu_s, self._children_at = children_cpu_s, now
        cores = psutil.cpu_percent(None, percpu=True)
        columns = self._columns
        columns["t_ns"].append(self._ctx.clock.now())
        columns["step"].append(len(self._ctx.clock.steps))
        columns["process_cpu"].append(round(cpu, 1))
        columns["children_cpu"].append(round(children_cpu, 1))
        columns["children"].append(live)
        columns["system_cpu"].append(round(sum(cores) / max(1, len(cores)), 1))
        columns["core_cpu"].append([round(c, 1) for c in cores])
        columns["rss"].append(rss)
        columns["children_rss"].append(children_rss)
        columns["threads"].append(threads)
        columns["ctx_switches_involuntary"].append(switches)
        if len(columns["t_ns"]) >= MAX_SAMPLES:
            for name, values in columns.items():
                columns[name] = values[::2]
            self._interval *= 2

    def payload(self) -> dict[str, Any]:
        import psutil

        return {
            "interval_s": self._interval,
            "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "samples": self._columns,
            "error": self._error,
        }
