"""Raw bytes of a trace file, plain or gzip, as a stream of blocks of a few MB.

Gzip is recognised by its magic bytes, whatever the file is called. Decompression runs on a
background thread (zlib releases the GIL), so it overlaps with decoding on the caller's
thread; a small bounded queue keeps at most a few blocks in memory.
"""

from __future__ import annotations

import errno
import os
import queue
import stat
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from perfdoctor.trace.errors import TraceError, shown

GZIP_MAGIC = b"\x1f\x8b"
READ_BYTES = 1 << 18  # bytes read per step
QUEUE_BLOCKS = 2


@dataclass
class StreamEnd:
    """How the byte stream ended: cleanly, or with a reason the data stops early."""

    problem: str | None = None  # e.g. "gzip stream is truncated", "corrupt gzip data (...)"


def open_trace(path: Path) -> BinaryIO:
    """The file, opened for reading, if it is a regular file. Opened without blocking and checked
    on the open descriptor: a FIFO (or a device, a socket) would make reading wait forever, and
    checking the path first would leave a window for it to be swapped."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise TraceError(f"{shown(path)}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{shown(path)}: is a directory, expected a trace file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TraceError(f"{shown(path)}: a symlink loop (too many levels of symbolic links)") from None
        raise TraceError(f"{shown(path)}: cannot read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise TraceError(f"{shown(path)}: is a directory, expected a trace file")
        if not stat.S_ISREG(mode):
            raise TraceError(f"{shown(path)}: not a regular file (a FIFO, device or socket is refused: it may never end)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _plain_blocks(fh: BinaryIO, first: bytes, block_bytes: int, end: StreamEnd) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        block = fh.read(block_bytes)
        if not block:
            return
        yield block


def _gzip_blocks(fh: BinaryIO, first: bytes, block_bytes: int, end: StreamEnd) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=31)
    pending = first
    out: list[bytes] = []
    out_len = 0
    while True:
        data = pending or fh.read(READ_BYTES)
        pending = b""
        if not data:
            break
        try:
            while data:
                # Bounded output per call: a highly compressed input cannot balloon in memory.
                piece = decompressor.decompress(data, block_bytes)
                data = decompressor.unconsumed_tail
                if decompressor.eof and decompressor.unused_data:
                    # Concatenated gzip members (as `cat a.gz b.gz` writes) are one stream.
                    data = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=31)
                if piece:
                    out.append(piece)
                    out_len += len(piece)
                    if out_len >= block_bytes:
                        yield b"".join(out)
                        out, out_len = [], 0
        except zlib.error as exc:
            end.problem = f"corrupt gzip data ({exc})"
            break
    if end.problem is None and not decompressor.eof:
        end.problem = "gzip stream is truncated"
    if out:
        yield b"".join(out)


def _threaded(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Run a block iterator on a worker thread, handing blocks over through a bounded queue."""
    handoff: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for block in blocks:
                if not put(block):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=work, name="perfdoctor-trace-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def byte_blocks(fh: BinaryIO, path: Path, block_bytes: int, end: StreamEnd) -> Iterator[bytes]:
    """Decompressed blocks of about block_bytes; `end` says afterwards whether the stream was cut short."""
    try:
        first = fh.read(READ_BYTES)
    except OSError as exc:
        raise TraceError(f"{shown(path)}: cannot read ({exc.strerror or exc})") from None
    if first[:2] == GZIP_MAGIC:
        return _threaded(_gzip_blocks(fh, first, block_bytes, end))
    return _plain_blocks(fh, first, block_bytes, end)
