"""The stream writer: collectors hand it records, and its thread appends them to `RUN/raw`.

Inside the training step a collector only appends to a buffer (an array, a deque); every
`interval_s` (0.25 s) the writer's thread pulls what each source buffered, removes it from memory,
encodes it (JSON Lines, `stream/lines.py`) and appends it to the stream's file in one write().
So a SIGKILL loses at most the last quarter second, and perfdoctor's memory stays flat however
long the job runs.

A write that fails (a full disk) keeps its bytes and is tried again at the next flush, up to
MAX_PENDING_BYTES; past that the writer gives up for good. Either way the user's script never
sees the error: one line on stderr says what happened.

A process forked from the script (os.fork, a fork-started DataLoader worker) inherits the
writer's buffers but not its thread; it must never write them, so every entry point checks the
pid.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections import deque
from typing import Any, Callable

from ..stream import lines
from ..stream.rundir import RunDir
from ..terminal import printable

FLUSH_INTERVAL_S = 0.25
MAX_PENDING_BYTES = 16 * 2**20

Source = Callable[[], list[dict[str, Any]]]


def fresh_lock_in_forks(owner: Any, attribute: str) -> None:
    """A process forked while another thread held `owner.<attribute>` (a Lock) would block on it
    for ever: give forked children a new, unlocked one. (The fork's copy of the data is never
    written anyway; this only keeps the script's forked child from hanging on our lock.)"""
    ref = weakref.ref(owner)

    def renew() -> None:
        alive = ref()
        if alive is not None:
            setattr(alive, attribute, threading.Lock())

    os.register_at_fork(after_in_child=renew)


class Stream:
    """One append-only stream `RUN/raw/NAME[.rankN].jsonl`."""

    def __init__(self, writer: "StreamWriter", name: str) -> None:
        self.name = name
        self._writer = writer
        self._queue: deque[dict[str, Any]] = deque()
        self._sources: list[Source] = []
        self._fd: int | None = None
        self._pending = b""

    def emit(self, record: dict[str, Any]) -> None:
        """Queue one record (any thread; cheap). Written at the next flush."""
        self._queue.append(record)

    def add_source(self, source: Source) -> None:
        """A callable the writer's thread calls at each flush: it returns (and forgets) the
        records its collector buffered since the last call."""
        self._sources.append(source)

    def _collect(self) -> bytes:
        records: list[dict[str, Any]] = []
        queue = self._queue
        while True:  # popleft is atomic: a record emitted meanwhile waits for the next flush
            try:
                records.append(queue.popleft())
            except IndexError:
                break
        for source in self._sources:
            records += source()
        return b"".join(lines.encode(record) for record in records)


class StreamWriter:
    def __init__(self, rundir: RunDir, rank: int | None, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.rundir = rundir
        self.rank = rank
        self.interval_s = interval_s
        self._streams: dict[str, Stream] = {}
        self._lock = threading.Lock()
        fresh_lock_in_forks(self, "_lock")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = os.getpid()
        self.failed: str | None = None  # why writing stopped for good
        self.write_error: str | None = None  # the first failed write

    def stream(self, name: str) -> Stream:
        if name not in self._streams:
            self._streams[name] = Stream(self, name)
        return self._streams[name]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="perfdoctor-stream", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from .signals import keep_signals_off_this_thread

        keep_signals_off_this_thread()
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        if os.getpid() != self._owner:
            return
        with self._lock:
            for stream in list(self._streams.values()):
                try:
                    data = stream._collect()
                except Exception as error:  # a source that fails must not stop the others
                    self._note_error(f"collecting {stream.name}: {type(error).__name__}: {error}")
                    continue
                if self.failed is None:
                    stream._pending += data
                    self._write(stream)
            if self.failed is None and sum(len(s._pending) for s in self._streams.values()) > MAX_PENDING_BYTES:
                self.failed = self.write_error or "too much unwritten data"
                for stream in self._streams.values():
                    stream._pending = b""

    def stop(self) -> None:
        """The last flush, then close every stream (safe to call more than once)."""
        if os.getpid() != self._owner:
            return
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self.flush()
        with self._lock:
            for stream in self._streams.values():
                if stream._fd is not None:
                    try:
                        os.close(stream._fd)
                    except OSError:
                        pass
                    stream._fd = None

    def _write(self, stream: Stream) -> None:
        try:
            if stream._fd is None:
                self.rundir.raw.mkdir(parents=True, exist_ok=True)
                stream._fd = lines.append_fd(self.rundir.stream_path(stream.name, self.rank))
                if os.fstat(stream._fd).st_size == 0:
                    stream._pending = lines.encode(lines.header(stream.name, rank=self.rank, pid=os.getpid())) + stream._pending
            while stream._pending:
                written = os.write(stream._fd, stream._pending)
                stream._pending = stream._pending[written:]
        except OSError as error:  # kept, and tried again at the next flush
            self._note_error(f"{error.strerror or error}")

    def _note_error(self, message: str) -> None:
        if self.write_error is None:
            self.write_error = message
            try:
                print(
                    f"perfdoctor: cannot write measurements to {printable(self.rundir.raw)} ({printable(message)}); "
                    "the script goes on, and what was written is kept",
                    file=sys.stderr,
                    flush=True,
                )
            except Exception:  # stderr itself may be gone (a closed terminal)
                pass
