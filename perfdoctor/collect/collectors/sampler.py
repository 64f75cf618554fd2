"""The shape of a sampling collector: a background thread that takes a sample every interval,
streams it, and, past MAX_SAMPLES, halves its rate (so that a job running for days does not
grow its stream without bound). A failed sample is noted once and sampling goes on.
"""

from __future__ import annotations

import threading
from typing import Any

from ..signals import keep_signals_off_this_thread
from .base import Collector, CollectorContext

MAX_SAMPLES = 20_000  # past this (and each doubling of it), the interval doubles


class Sampler(Collector):
    thread_name = "perfdoctor-sampler"
    sample_at_stop = False  # one last sample when stopping (a run shorter than the interval)

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ctx: CollectorContext | None = None
        self.interval_s = 0.5
        self.samples = 0
        self._next_slowdown = MAX_SAMPLES
        self.error: str | None = None

    @property
    def ctx(self) -> CollectorContext:
        assert self._ctx is not None, "the sampler was not started"
        return self._ctx

    def start(self, ctx: CollectorContext) -> None:
        self._ctx = ctx
        self.interval_s = ctx.options.host_interval_s
        if self.open():
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()

    def open(self) -> bool:
        """Prepare to sample; False: nothing to sample here (the reason already streamed)."""
        return True

    def close(self) -> None:
        """Release what open() took."""

    def sample(self) -> None:
        """Take one sample and stream it (the thread calls this; tests may call it directly)."""
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
            if self.sample_at_stop:
                self._sample_once()
        self.close()

    def _loop(self) -> None:
        keep_signals_off_this_thread()
        while not self._stop.wait(self.interval_s):
            self._sample_once()

    def _sample_once(self) -> None:
        try:
            self.sample()
        except Exception as error:  # a vanishing process, a driver hiccup: the next one may work
            self._note_error(f"{type(error).__name__}: {error}")
            return
        self.samples += 1
        if self.samples >= self._next_slowdown:
            self._next_slowdown *= 2
            self.interval_s *= 2
            self.emit({"meta": {"interval_s": self.interval_s}})

    def _note_error(self, message: str) -> None:
        if self.error is None:
            self.error = message
            self.emit({"error": message})

    def emit(self, record: dict[str, Any]) -> None:
        self.ctx.stream(self.name).emit(record)
