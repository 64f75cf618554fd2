"""The stream format: JSON Lines. One record per line, each a JSON object ending in "\n"; the
first line of a file is its header, `{"schema": "perfdoctor.stream/1", "stream": NAME, ...}`.

Appending whole lines in one write() means a process killed mid-write leaves at most one torn
line, at the end: a line without its "\n", or one that does not decode to an object, is skipped
and counted, never guessed at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..jsonfile import has_long_number, huge_integer, too_deep
from ..readfile import describe_os_error, read_regular
from ..terminal import data_without_surrogates

STREAM_SCHEMA = "perfdoctor.stream/1"
SUFFIX = ".jsonl"



def _fallback(value: Any) -> Any:
    """Values msgspec does not encode itself: str and number subclasses (torch's version
    string, numpy scalars) as their plain value, anything else as its text."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if hasattr(value, "__index__"):
        return int(value)
    if hasattr(value, "__float__"):
        return float(value)
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_fallback)


def encode(record: dict[str, Any]) -> bytes:
    """One record as one line (NaN and infinity are written as null). A string that is not
    Unicode text (a file name's undecodable bytes, kept by Python as lone surrogates) is written
    with those bytes escaped, `\\xff` as the terminal shows them, rather than losing the record."""
    try:
        return _encoder.encode(record) + b"\n"
    except UnicodeEncodeError:
        return _encoder.encode(data_without_surrogates(record)) + b"\n"


def header(stream: str, **fields: Any) -> dict[str, Any]:
    return {"schema": STREAM_SCHEMA, "stream": stream, **fields}


@dataclass
class Records:
    """What a stream file held: its header, its records in order, and how many lines were skipped."""

    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # torn or undecodable lines
    unreadable: str | None = None  # why the file could not be read at all


def decode_lines(data: bytes, into: Records) -> int:
    """Decode the complete lines in `data` into `into`; return how many bytes were consumed
    (everything up to the last "\n": a torn tail is left for the caller to judge)."""
    end = data.rfind(b"\n") + 1
    for line in data[:end].split(b"\n"):
        if not line.strip():
            continue
        try:
            record = msgspec.json.decode(line)
        except Exception:  # whatever the decoder raises (RecursionError too): the line is not a record
            into.skipped += 1
            continue
        if not isinstance(record, dict) or too_deep(line, record) or has_long_number(line) and huge_integer(record) is not None:
            into.skipped += 1  # not a record, too deep, or an integer beyond 64 bits: no writer of ours wrote it
        elif into.header is None and record.get("schema") == STREAM_SCHEMA:
            into.header = record
        else:
            into.records.append(record)
    return end


def read(path: Path) -> Records:
    """Every record of a stream file; `unreadable` says why when it cannot be read at all (only a
    regular file is read: a FIFO would wait for a writer)."""
    try:
        data = read_regular(path)
    except OSError as error:
        return Records(unreadable=describe_os_error(Path(path), error))
    found = Records()
    consumed = decode_lines(data, found)
    if data[consumed:].strip():
        found.skipped += 1  # the last line was cut short: the process died while writing it
    return found


class Tail:
    """Reads a stream as it grows: each poll() returns the records completed since the last one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._pending = b""
        self.header: dict[str, Any] | None = None
        self.skipped = 0

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                data = file.read()
        except OSError:
            return []
        self._offset += len(data)
        data = self._pending + data
        found = Records(header=self.header)
        consumed = decode_lines(data, found)
        self._pending = data[consumed:]
        self.header = found.header
        self.skipped += found.skipped
        return found.records


def append_fd(path: Path) -> int:
    """An append-only descriptor for a stream (created if missing, not inherited by children)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def append(path: Path, stream: str, record: dict[str, Any], **header_fields: Any) -> None:
    """Append one record to a stream (its header first, when the file is new): for the few
    records a process writes outside a stream writer (the supervisor's start and outcome)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = append_fd(path)
    try:
        data = encode(record)
        if os.fstat(fd).st_size == 0:
            data = encode(header(stream, pid=os.getpid(), **header_fields)) + data
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
