"""A load generator for tests: processes that keep every core busy for as long as a test runs.

Each is a pure-Python spin loop in a subprocess of its own session. They end when the context
exits (SIGKILL, then reaped), and on their own after `max_seconds` or as soon as the process that
started them is gone (a crashed or killed test run leaves nothing spinning).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


AMBIENT_MAX_CORES = 0.5  # the under-load tests' premise: only the load generator keeps the cores busy


def only_our_load() -> None:
    """Skip, saying what was measured, when other processes already kept the machine busy before
    the load generator started (a shared CI runner, a busy workstation): the test's premise is a
    machine that the generator alone fills, and on top of an unknown load its numbers say nothing."""
    import pytest

    ambient = others_cores()
    if ambient > AMBIENT_MAX_CORES:
        pytest.skip(f"other processes already used {ambient:.1f} cores before the load generator started")


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
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
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
