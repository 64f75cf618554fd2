"""Signals inside the script's process, around perfdoctor's own work.

- While perfdoctor exports a trace inside a step, SIGINT and SIGTERM are held back: the export
  finishes and the signal is then delivered to whatever handles it (the script's handler, or
  KeyboardInterrupt), so one Ctrl-C never leaves half a trace. A second signal meanwhile gives up
  the export (`hurry`), and the first is still delivered.
- Once the script has ended and perfdoctor is writing what it measured (`shutdown_handlers`),
  SIGINT and SIGTERM only hurry it: the trace export is given up, the streams are still flushed.

Handlers can only be set from the main thread; elsewhere both are no-ops.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

HELD = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def held_back(hurry: threading.Event) -> Iterator[None]:
    if not _main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if received:
            hurry.set()
        received.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for number in dict.fromkeys(received):  # each signal once, in the order it came
            signal.raise_signal(number)


@contextmanager
def shutdown_handlers(hurry: threading.Event) -> Iterator[None]:
    if not _main_thread():
        yield
        return

    def hurry_up(signum: int, frame: Any) -> None:
        hurry.set()

    previous = {}
    for signum in HELD:
        try:
            previous[signum] = signal.signal(signum, hurry_up)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


ASYNC_SIGNALS = {
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1,
    signal.SIGUSR2, signal.SIGALRM, signal.SIGWINCH,
}


def keep_signals_off_this_thread() -> None:
    """Called first in each of perfdoctor's threads. A signal sent to the process goes to any
    thread that does not block it; one that landed in ours would leave the script's main thread
    blocked in a system call (a DataLoader's queue, a socket), never interrupted, where under
    plain python the signal would have reached it."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)
    except (AttributeError, OSError, ValueError):
        pass
