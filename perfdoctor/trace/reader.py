"""read_trace: a Kineto / Chrome JSON trace file into a :class:`Trace`, streaming.

The file is read block by block (decompressing gzip on a worker thread). The top-level
object's small members (``schemaVersion``, ``deviceProperties``, ``distributedInfo``...) are
parsed exactly wherever they are, before or after ``traceEvents``. The ``traceEvents`` array
is cut at the last ``}, {`` boundary of each block and the chunk decoded by msgspec into
columns (see :mod:`perfdoctor.trace.events`); a chunk that does not decode (the boundary was
inside a string, or the array ended inside it) is walked exactly instead. The raw text of
more than a block or two is never held at once.

Malformed input raises :class:`TraceError` with one line; input that breaks off after some
complete events (truncated, or corrupt from some point on) gives the events before the break
and says so in ``Trace.skipped``.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from perfdoctor.trace.errors import TraceError, shown
from perfdoctor.trace.events import ColumnBuilder, NotJSON, bounded_int
from perfdoctor.trace.jsonscan import Malformed, last_split, scan_elements, skip_ws, string_end, value_end
from perfdoctor.trace.model import SkippedInput, Trace, TraceMetadata
from perfdoctor.trace.source import StreamEnd, byte_blocks, open_trace

BLOCK_BYTES = 2 << 20  # measured best of 1-8 MiB on plain and gzip input (see benchmarks/trace_reader.py)
MAX_VALUE_BYTES = 64 << 20  # one metadata value or one event larger than this is not a trace
_ARRAY_END = re.compile(rb"\}[ \t\r\n]*\]")
_FAST_END_TRIES = 8
EXACT_BATCH = 50_000  # elements walked per exact step
UNUSABLE_LIMIT = 1_000_000  # entries; past this, an array that is >90% unusable is not a trace


class _Stop(Exception):
    """Reading ends early; what was read so far is kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_trace(path: str | Path, *, block_bytes: int = BLOCK_BYTES) -> Trace:
    """Read a ``.json`` or ``.json.gz`` trace (Kineto / torch.profiler, any version since 1.9).

    Raises TraceError (one line, naming the file) when nothing usable can be read. When the
    input breaks off or some events are unusable, returns the rest; ``trace.skipped`` says
    what was left out and why. block_bytes: how much text is decoded at a time.
    """
    path = Path(path)
    skipped = SkippedInput()
    metadata = TraceMetadata()
    builder = ColumnBuilder(skipped, metadata)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived objects and no cycles: collection passes only cost time
    try:
        with open_trace(path) as fh:
            end = StreamEnd()
            parser = _Parser(path, byte_blocks(fh, path, block_bytes, end), builder, end, block_bytes)
            top = parser.parse()
    except OSError as exc:
        raise TraceError(f"{shown(path)}: cannot read ({exc.strerror or exc})") from None
    except MemoryError:
        raise TraceError(f"{shown(path)}: not enough memory to read this trace") from None
    finally:
        if gc_was_enabled:
            gc.enable()
    _fill_metadata(metadata, top, builder)
    if builder.count == 0:
        if skipped.truncated:
            raise TraceError(f"{shown(path)}: no complete event before the input breaks off ({_reasons(skipped)})")
        if skipped.events:
            raise TraceError(f"{shown(path)}: no usable complete event ({_reasons(skipped)})")
        raise TraceError(f"{shown(path)}: the trace has no complete (\"X\") events")
    columns: dict[str, Any] = builder.columns()
    return Trace(
        path=path,
        names=builder.name_table(),
        input_dims=builder.input_dims_table(),
        metadata=metadata,
        skipped=skipped,
        string_ids={value: key for key, value in builder.string_ids.items()},
        memory=builder.memory_columns(),
        **columns,
    )


def _reasons(skipped: SkippedInput) -> str:
    return "; ".join(skipped.reasons) or "truncated"


class _Parser:
    def __init__(
        self, path: Path, blocks: Iterator[bytes], builder: ColumnBuilder, end: StreamEnd, block_bytes: int
    ) -> None:
        self.path = path
        self.blocks = blocks
        self.builder = builder
        self.end = end
        self.block_bytes = block_bytes
        self.buf = bytearray()
        self.pos = 0
        self.base = 0  # file offset of buf[0], for messages
        self.eof = False
        self.found_events = False
        self.after_event = False  # an event was taken; its separator is still ahead

    # ------------------------------------------------------------------ buffer

    def _more(self) -> bool:
        if self.eof:
            return False
        block = next(self.blocks, None)
        if block is None:
            self.eof = True
            return False
        keep = max(self.pos - 1, 0)  # one byte before pos stays: _decode_range writes '[' there
        try:
            del self.buf[:keep]
            self.buf += block
        except BufferError:  # something still views the buffer: copy instead of resizing
            self.buf = bytearray(self.buf[keep:]) + block
        self.base += keep
        self.pos -= keep
        return True

    def _decode_range(self, start: int, stop: int) -> None:
        """Decode the events in buf[start:stop] (complete elements separated by commas).

        Decoded in place: the bytes just outside the range (a ',' or whitespace, or the
        array's own brackets) are swapped for '[' and ']' for the call and put back.
        """
        buf = self.buf
        base = self.base + start - 1  # file offset of the chunk's first byte, its '['
        if start == 0 or stop >= len(buf):
            self.builder.add_chunk(b"[" + bytes(buf[start:stop]) + b"]", base)
            return
        before, after = buf[start - 1], buf[stop]
        buf[start - 1], buf[stop] = 0x5B, 0x5D
        view = memoryview(buf)
        chunk = view[start - 1:stop + 1]
        try:
            self.builder.add_chunk(chunk, base)
        finally:
            buf[start - 1], buf[stop] = before, after
            _release(chunk, view)

    def _grow(self) -> bool:
        """Read until the pending data has at least doubled (keeps rescans linear overall)."""
        target = 2 * (len(self.buf) - self.pos) + 1
        grew = False
        while len(self.buf) - self.pos < target and self._more():
            grew = True
        return grew

    def _skip_ws(self) -> bool:
        """Skip whitespace; False if the data ends first."""
        while True:
            self.pos = skip_ws(self.buf, self.pos)
            if self.pos < len(self.buf):
                return True
            if not self._more():
                return False

    def _fail(self, what: str) -> TraceError:
        return TraceError(f"{shown(self.path)}: {what}")

    def _broken(self, offset: int, what: str, invalid: bool = True) -> _Stop | TraceError:
        """Invalid (or, with invalid=False, unusable) JSON at buf[offset]: keep the events
        before it if there are any."""
        where = f"{'invalid JSON ' if invalid else ''}at byte {self.base + offset}: {what}"
        if self.end.problem:
            where = f"{self.end.problem}; {where}"
        return _Stop(where) if self.builder.count else self._fail(where)

    # ------------------------------------------------------------------ top level

    def parse(self) -> dict[str, Any]:
        """Parse the whole input; returns the top-level members other than traceEvents."""
        top: dict[str, Any] = {}
        try:
            self._document(top)
        except _Stop as stop:
            self.builder.skipped.truncated = True
            self.builder.skipped.add(stop.reason, events=False)
        return top

    def _document(self, top: dict[str, Any]) -> None:
        if not self._skip_ws():
            if self.end.problem:
                raise self._fail(self.end.problem)
            if self.base + self.pos:
                raise self._fail(f"the file holds only whitespace ({self.base + self.pos} bytes), no JSON")
            raise self._fail("the file is empty")
        head = self.buf[self.pos:self.pos + 4]
        if head.startswith(b"\xef\xbb\xbf"):
            self.pos += 3
            self._skip_ws()
        elif head.startswith((b"\xff\xfe", b"\xfe\xff", b"{\x00", b"\x00{", b"[\x00", b"\x00[")):
            raise self._fail("the file is UTF-16 text; a trace is UTF-8 JSON")
        first = self.buf[self.pos:self.pos + 1]
        if first == b"[":
            raise self._fail('the JSON is an array; expected an object with a "traceEvents" array')
        if first != b"{":
            start = bytes(self.buf[self.pos:self.pos + 16])
            described = repr(start.decode()) if start.isascii() and start.decode().isprintable() else "binary data"
            raise self._fail(f"not a JSON trace (starts with {described})")
        self.pos += 1
        self._members(top, first=True)
        if not self.found_events:
            raise self._fail('no "traceEvents" array in the JSON object')
        if self._skip_ws():
            self.builder.skipped.add(f"data after the JSON object ignored (byte {self.base + self.pos})", events=False)
        if self.end.problem:
            raise _Stop(self.end.problem)

    def _members(self, top: dict[str, Any], first: bool) -> None:
        """Members of the top-level object up to its closing brace."""
        while True:
            if not self._skip_ws():
                raise self._truncated("inside the top-level object")
            char = self.buf[self.pos]
            if char == 0x7D:  # '}'
                self.pos += 1
                return
            if not first:
                if char != 0x2C:
                    raise self._broken(self.pos, f"expected ',' or '}}' in the top-level object, found {chr(char)!r}")
                self.pos += 1
                if not self._skip_ws():
                    raise self._truncated("inside the top-level object")
            first = False
            key = self._key()
            if key == "traceEvents":
                if self.buf[self.pos:self.pos + 1] != b"[":
                    raise self._fail('"traceEvents" is not an array')
                self.pos += 1
                self.found_events = True
                self._events()
            else:
                top[key] = self._value(key)

    def _truncated(self, where: str) -> _Stop | TraceError:
        reason = self.end.problem or f"the file ends {where} (truncated?)"
        if self.found_events and self.builder.count:
            return _Stop(reason)
        if not self.found_events:
            return self._fail(f"{reason}; no traceEvents before that")
        return self._fail(reason)

    def _key(self) -> str:
        if self.buf[self.pos] != 0x22:
            raise self._broken(self.pos, f"expected a key, found {chr(self.buf[self.pos])!r}")
        end = string_end(self.buf, self.pos)
        while end < 0:
            if len(self.buf) - self.pos > MAX_VALUE_BYTES:
                raise self._fail(f"a key longer than {MAX_VALUE_BYTES >> 20} MiB at byte {self.base + self.pos}")
            if not self._grow():
                raise self._truncated("inside a key")
            end = string_end(self.buf, self.pos)
        try:
            key = msgspec.json.decode(bytes(self.buf[self.pos:end]))
        except Exception:  # any decoder error: its types differ between releases
            raise self._broken(self.pos, "undecodable key") from None
        self.pos = end
        if not self._skip_ws():
            raise self._truncated("after a key")
        if self.buf[self.pos] != 0x3A:  # ':'
            raise self._broken(self.pos, "expected ':' after a key")
        self.pos += 1
        if not self._skip_ws():
            raise self._truncated("after a key")
        return key

    def _value(self, key: str) -> Any:
        while True:
            try:
                end = value_end(self.buf, self.pos, final=self.eof)
            except Malformed as exc:
                raise self._broken(exc.offset, exc.what, exc.invalid) from None
            if end >= 0:
                break
            if self.eof:
                raise self._truncated(f"inside the top-level value {key!r}")
            if len(self.buf) - self.pos > MAX_VALUE_BYTES:
                raise self._fail(f"top-level value {key!r} is larger than {MAX_VALUE_BYTES >> 20} MiB")
            self._grow()
        raw = bytes(self.buf[self.pos:end])
        self.pos = end
        return _top_level_value(raw, key, lambda what, invalid=True: self._broken(end - len(raw), what, invalid))

    # ------------------------------------------------------------------ events

    def _events(self) -> None:
        """The traceEvents array, from just after its '[' to just after its ']'."""
        while True:
            if self.after_event and not self._separator():
                return
            if not self.eof and len(self.buf) - self.pos < self.block_bytes:
                self._check_usable()
                self._more()
                continue
            if self.eof:
                self._events_at_eof()
                return
            split = last_split(self.buf, self.pos)
            if split is not None:
                try:
                    self._decode_range(self.pos, split[0])
                    self.pos = split[1]
                    continue
                except NotJSON:
                    pass  # the boundary was inside a string or a nested object, or past the array's end
            before = self.pos
            if not self._exact_step(final=False):
                return
            if self.pos == before:  # no complete event and separator in the data at hand
                start = skip_ws(self.buf, self.pos)
                if start > self.pos:  # whitespace before the next event, any amount: consumed
                    self.pos = start
                    continue
                try:
                    end = value_end(self.buf, self.pos, final=False)
                except Malformed as exc:
                    raise self._broken(exc.offset, exc.what, exc.invalid) from None
                if end >= 0:  # a complete event, then only whitespace so far: keep it, then look for ',' or ']'
                    self._decode_spans([(self.pos, end)])
                    self.pos = end
                    self.after_event = True
                    continue
                if len(self.buf) - self.pos > MAX_VALUE_BYTES:
                    too_long = f"an event larger than {MAX_VALUE_BYTES >> 20} MiB (or an unterminated one)"
                    raise self._broken(self.pos, too_long, invalid=False)
                self._grow()

    def _separator(self) -> bool:
        """After an event: the ',' before the next one (True) or the array's ']' (False)."""
        self.after_event = False
        if not self._skip_ws():
            raise self._truncated("inside traceEvents")
        char = self.buf[self.pos]
        self.pos += 1
        if char == 0x2C:
            return True
        if char != 0x5D:
            raise self._broken(self.pos - 1, f"expected ',' or ']' after an event, found {chr(char)!r}")
        return False

    def _check_usable(self) -> None:
        """Give up on an array that is mostly not events (element-wise decoding is slow)."""
        bad, good = self.builder.skipped.events, self.builder.count
        if bad > UNUSABLE_LIMIT and bad > 10 * good:
            raise self._fail(f"not a trace: {bad} of the first {bad + good} traceEvents entries are unusable")

    def _events_at_eof(self) -> None:
        """The rest of the array once all data is in: usually a few events, ']' and the tail."""
        tries = 0
        for match in _ARRAY_END.finditer(self.buf, self.pos):
            tries += 1
            if tries > _FAST_END_TRIES:
                break
            try:
                self._decode_range(self.pos, match.start() + 1)
            except NotJSON:
                continue
            self.pos = match.end()
            return
        while self._exact_step(final=True):
            pass

    def _exact_step(self, final: bool) -> bool:
        """Walk elements exactly from pos; False once the array has ended. Raises _Stop when the
        input breaks off or turns invalid after some events, TraceError before any."""
        scan = scan_elements(self.buf, self.pos, final, limit=EXACT_BATCH)
        if scan.spans:
            self._decode_spans(scan.spans)
        self.pos = scan.resume
        if scan.array_end >= 0:
            self.pos = scan.array_end
            return False
        if scan.error is not None:
            raise self._broken(scan.error.offset, scan.error.what, scan.error.invalid)
        if len(scan.spans) == EXACT_BATCH:
            self._check_usable()
            return True
        if final:
            raise self._truncated("inside traceEvents")
        return True

    def _decode_spans(self, spans: list[tuple[int, int]]) -> None:
        start, stop = spans[0][0], spans[-1][1]
        try:
            self._decode_range(start, stop)
            return
        except NotJSON:
            pass
        # One at a time: events that are JSON but unusable are skipped and noted; the first that
        # is not JSON at all ends the reading, keeping every event before it.
        try:
            self.builder.add_elements([(bytes(self.buf[a:b]), self.base + a) for a, b in spans])
        except NotJSON as bad:
            raise self._broken(spans[bad.index][0], "an event is not valid JSON") from None


def _release(*views: memoryview) -> None:
    """Release views of the buffer now, so that it can be resized; when something still holds
    one (decoded values that point into it, kept alive by an exception on its way up), it is
    released with them, and _more copies instead of resizing. Never a BufferError that would
    hide the exception."""
    for view in views:
        try:
            view.release()
        except BufferError:
            pass


def _top_level_value(raw: bytes, key: str, broken: Any) -> Any:
    """A small top-level member's value. Decoded by msgspec; when that fails for any reason, the
    standard library says whether the text is JSON at all (a number beyond float range is, and
    becomes infinity), so that the message never depends on msgspec's error types."""
    try:
        return msgspec.json.decode(raw)
    except Exception:
        pass
    try:
        return json.loads(raw.decode("utf-8"), parse_int=bounded_int)
    except UnicodeDecodeError:
        raise broken(f"invalid UTF-8 in top-level value {key!r}") from None
    except RecursionError:
        raise broken(f"top-level value {key!r} is nested too deeply", invalid=False) from None
    except ValueError:
        raise broken(f"top-level value {key!r} is not valid JSON") from None


# The fields of deviceProperties and distributedInfo that analyses read: (type, lowest, highest).
DEVICE_FIELDS: dict[str, tuple[type, int, int]] = {
    "id": (int, 0, (1 << 15) - 1), "name": (str, 0, 256), "totalGlobalMem": (int, 0, 1 << 60),
    "computeMajor": (int, 0, 1000), "computeMinor": (int, 0, 1000), "numSms": (int, 0, 1 << 20),
}
DISTRIBUTED_FIELDS: dict[str, tuple[type, int, int]] = {
    "rank": (int, 0, (1 << 31) - 1), "world_size": (int, 1, 1 << 31), "backend": (str, 0, 64),
}


def _checked_fields(
    block: dict[str, Any], fields: dict[str, tuple[type, int, int]], where: str, builder: ColumnBuilder
) -> dict[str, Any]:
    """A metadata block with the fields analyses read kept only when of the right type and in
    range (an int, or a str of bounded length); anything else there is noted and left out."""
    checked: dict[str, Any] = {}
    for key, value in block.items():
        rule = fields.get(key)
        if rule is None:
            checked[key] = value
            continue
        kind, low, high = rule
        size = len(value) if isinstance(value, str) else value
        if isinstance(value, kind) and not isinstance(value, bool) and low <= size <= high:
            checked[key] = value
        else:
            builder.skipped.add(f"{where}[{key!r}] of the wrong type or out of range ignored", events=False)
    return checked


def _fill_metadata(metadata: TraceMetadata, top: dict[str, Any], builder: ColumnBuilder) -> None:
    def pick(key: str, kind: type | tuple[type, ...]) -> Any:
        value = top.pop(key, None)
        if value is None:
            return None
        if isinstance(value, kind) and not isinstance(value, bool) and not (isinstance(value, int) and abs(value) >= 1 << 63):
            return value
        top[key] = value  # unexpected type: kept as it is, in extra
        return None

    metadata.schema_version = pick("schemaVersion", int)
    properties = pick("deviceProperties", list) or []
    metadata.device_properties = [
        _checked_fields(p, DEVICE_FIELDS, f"deviceProperties[{i}]", builder) for i, p in enumerate(properties) if isinstance(p, dict)
    ]
    info = pick("distributedInfo", dict)
    metadata.distributed_info = None if info is None else _checked_fields(info, DISTRIBUTED_FIELDS, "distributedInfo", builder)
    metadata.base_time_ns = pick("baseTimeNanoseconds", int)
    metadata.trace_name = pick("traceName", str)
    metadata.display_time_unit = pick("displayTimeUnit", str)
    shapes = top.pop("record_shapes", None)
    metadata.record_shapes = bool(shapes) or len(builder.input_dims) > 1
    metadata.extra = top
