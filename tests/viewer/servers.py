"""TensorBoard and `perfdoctor view` as users start them, each in a process of its own, on a free
loopback port; stopped when the `with` block ends."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

STARTUP_S = 90  # TensorBoard takes seconds to start on a loaded 2-core machine


@contextlib.contextmanager
def _server(command: list[str], pattern: str) -> Iterator[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BROWSER": "true"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = re.search(pattern, line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        ready.wait(STARTUP_S)
        if not found:
            raise RuntimeError(f"{command[:4]} did not start:\n{''.join(output)[-3000:]}")
        yield found[0].rstrip("/")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def tensorboard(logdir: Path) -> contextlib.AbstractContextManager[str]:
    """`tensorboard --logdir LOGDIR` (the same program as the console script); its base URL."""
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0", "--reload_interval", "2"]
    return _server(command, r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+/)")


def perfdoctor_view(path: Path) -> contextlib.AbstractContextManager[str]:
    """`perfdoctor view PATH --no-browser`; the URL it prints (the page it would open)."""
    return _server([sys.executable, "-m", "perfdoctor", "view", "--no-browser", str(path)], r" at (http://127\.0\.0\.1:\d+/\S*)")


def wait_until(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)
