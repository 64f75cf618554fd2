"""A load generator for tests: processes that keep every core busy for as long as a test runs.

Each is a pure-Python spin loop in a subprocess of its own process group, in the test's session.
The session matters: where the kernel groups scheduling by session (autogroup, on by default on
many desktops and off on many servers and CI runners), spinners in sessions of their own would get
a group's fair share each and leave the job more CPU than a plain busy machine does. In the test's
session they compete thread by thread on every machine, the harsher case.

They end when the context exits (SIGKILL, then reaped), and on their own after `max_seconds` or as
soon as the process that started them is gone (a crashed or killed test run leaves nothing spinning).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

SPIN = """
import os, sys, time
parent, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for _ in range(200_000):
        pass
    if os.getppid() != parent:
        break
"""


def others_cores(seconds: float = 2.0) -> float:
    """Cores that other processes keep busy now, measured over `seconds` (this process idles)."""
    from perfdoctor.collect.cpu import machine_busy_s

    before = machine_busy_s()
    time.sleep(seconds)
    after = machine_busy_s()
    return 0.0 if before is None or after is None else (after[0] - before[0]) / seconds


# A process group of its own (SIGKILLed as one), in the test's session.
OWN_GROUP: dict = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}

AMBIENT_MAX_CORES = 0.5  # the under-load tests' premise: only the load generator keeps the cores busy


def only_our_load() -> float:
    """Skip, saying what was measured, when other processes already kept the machine busy before
    the load generator started (a shared CI runner, a busy workstation): the test's premise is a
    machine that the generator alone fills, and on top of an unknown load its numbers say nothing."""
    import pytest

    ambient = others_cores()
    if ambient > AMBIENT_MAX_CORES:
        pytest.skip(f"other processes already used {ambient:.1f} cores before the load generator started")
    return ambient


class CpuMeter:
    """The load generator's CPU time, read every `interval_s` on a thread of its own while the
    context runs, with the wall-clock time of each reading: how many cores the spinners took over
    any stretch of the run (the stretch perfdoctor sampled, say)."""

    def __init__(self, processes: list[subprocess.Popen], interval_s: float = 0.1) -> None:
        import psutil

        self._processes = [psutil.Process(process.pid) for process in processes]
        self._interval_s = interval_s
        self.readings: list[tuple[float, float]] = []  # (unix time, CPU seconds of all spinners)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> None:
        cpu = sum(sum(process.cpu_times()[:2]) for process in self._processes)
        self.readings.append((time.time(), cpu))

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._read()

    def __enter__(self) -> "CpuMeter":
        self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def cores_between(self, start: float, end: float) -> float:
        """Mean cores the spinners used from `start` to `end` (unix times inside the readings)."""

        def cpu_at(t: float) -> float:
            for (t0, c0), (t1, c1) in zip(self.readings, self.readings[1:]):
                if t0 <= t <= t1:
                    return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c0
            raise ValueError(f"{t} is outside the readings")

        return (cpu_at(end) - cpu_at(start)) / (end - start)


@contextmanager
def busy_cores(count: int | None = None, max_seconds: float = 900.0) -> Iterator[list[subprocess.Popen]]:
    """`count` spinning processes (default: one per core this process may run on)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SPIN, str(os.getpid()), str(max_seconds)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **OWN_GROUP,
        )
        for _ in range(count or cores)
    ]
    try:
        time.sleep(0.5)  # running before the test measures anything
        yield processes
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for process in processes:
            process.wait()
