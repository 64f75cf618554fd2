"""Decoding chunks of the ``traceEvents`` array into compact columns.

A chunk is a JSON array of event objects. msgspec decodes it into small structs that declare
only the fields the analysis reads (everything else in an event is skipped by the decoder
without being materialised); :class:`ColumnBuilder` turns each decoded chunk into numpy
columns and interns names and input shapes, and the structs are dropped with the chunk.

Timestamps: Kineto writes ``ts``/``dur`` in microseconds, as integers (older versions) or with
three decimals (nanosecond resolution). Decoded as a float64, a value below 2**43 us (~100 days
of the profiler clock) is converted to integer nanoseconds exactly; traces whose clock is the
Unix epoch in fractional microseconds (~1.7e15 us) are beyond float64's precision, so when a
chunk holds such values it is decoded again with ``ts`` kept as raw text, parsed exactly.
"""

from __future__ import annotations

import json
import math
import zlib
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from perfdoctor.trace.categories import Category, category_of
from perfdoctor.trace.model import COLUMNS, STRING_ID_BASE, MemoryEvents, SkippedInput, TraceMetadata

_NO_RAW = msgspec.Raw(b"")
EXACT_FLOAT_LIMIT_US = float(1 << 43)  # below this, float64 us -> int ns is exact for 3 decimals
MAX_ABS_US = 9.0e15  # int64 nanoseconds end near 9.22e15 us
MEMORY_EVENT = "[memory]"


class _Args(msgspec.Struct, frozen=True, gc=False):
    external_id: int = msgspec.field(default=-1, name="External id")
    external_id_v1: int = msgspec.field(default=-1, name="external id")  # GPU events, PyTorch <= 1.9
    correlation: int = -1
    device: int = -1
    stream: int | str = -1  # ROCm's runtime calls write it as a pointer in hex text ("0x0")
    nbytes: int = msgspec.field(default=-1, name="bytes")
    flops: float = -1.0  # recorded with with_flops=True
    input_dims: msgspec.Raw = msgspec.field(default=_NO_RAW, name="Input Dims")
    label: Any = msgspec.field(default=None, name="name")  # "M" events: thread/process name
    labels: Any = None  # "M" process_labels: "CPU", "GPU 0"
    # "[memory]" instant events (profile_memory=True): one allocation (Bytes > 0) or free (< 0)
    mem_bytes: int = msgspec.field(default=0, name="Bytes")
    addr: int = msgspec.field(default=-1, name="Addr")
    device_type: int = msgspec.field(default=-1, name="Device Type")  # 0 CPU, 1 CUDA
    device_id: int = msgspec.field(default=-1, name="Device Id")


_NO_ARGS = _Args()


class _Event(msgspec.Struct, gc=False):
    ph: str = ""
    cat: str = ""
    name: str = ""
    ts: float = float("nan")
    dur: float = float("nan")
    pid: int | str = 0
    tid: int | str = 0
    args: _Args = _NO_ARGS


class _ExactEvent(msgspec.Struct, gc=False):
    """Like _Event, with ts kept as its literal text (see the module docstring)."""

    ph: str = ""
    cat: str = ""
    name: str = ""
    ts: msgspec.Raw = _NO_RAW
    dur: float = float("nan")
    pid: int | str = 0
    tid: int | str = 0
    args: _Args = _NO_ARGS


class NotJSON(Exception):
    """A chunk, or the element at `index` of a list of elements, is not well-formed JSON."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _finite_float(value: Any) -> float:
    """A float; infinity for an integer beyond float range (out of range, like 1e400); NaN for
    what is not a number at all (NaN marks the field missing)."""
    try:
        return float(value)
    except OverflowError:
        return float("-inf") if value < 0 else float("inf")
    except (TypeError, ValueError):
        return float("nan")


MAX_INT_DIGITS = 1000  # a longer integer is no count or time: infinity, like a float beyond range


def bounded_int(text: str) -> int | float:
    """json.loads' parse_int: Python refuses to convert integers of more than 4300 digits (and
    is slow on long ones); such a number in a trace is unusable, not a syntax error."""
    if len(text) <= MAX_INT_DIGITS:
        return int(text)
    return float("-inf") if text.startswith("-") else float("inf")


def _number_literal(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return b"nan"
    if isinstance(value, float) and not math.isfinite(value):
        return b"nan"
    return repr(value).encode()


def _decimal(text: str) -> int | None:
    """The int64 a string holds as numpy's int conversion (Python's int()) reads it, else None."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _text_int(value: Any) -> int:
    number = _decimal(value) if type(value) is str else None
    return -1 if number is None else number


def _short_text(value: Any) -> str:
    """A non-string name or id as text, bounded: a deep or huge value must not blow up."""
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError, TypeError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 200 else text[:200] + "..."


FAST_DECODER = msgspec.json.Decoder(list[_Event])
EXACT_DECODER = msgspec.json.Decoder(list[_ExactEvent])
_ONE_FAST = msgspec.json.Decoder(_Event)
_ONE_EXACT = msgspec.json.Decoder(_ExactEvent)
RAW_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])

_get_ph = attrgetter("ph")
_get_name = attrgetter("name")
_get_cat = attrgetter("cat")
_get_ts = attrgetter("ts")
_get_dur = attrgetter("dur")
_get_pid = attrgetter("pid")
_get_tid = attrgetter("tid")
_get_args = attrgetter("args")
_ARG_GETTERS = {
    "external_id": attrgetter("external_id"),
    "external_id_v1": attrgetter("external_id_v1"),
    "correlation": attrgetter("correlation"),
    "device": attrgetter("device"),
    "stream": attrgetter("stream"),
    "nbytes": attrgetter("nbytes"),
}
_ARG_NAMES = {field.name: field.encode_name for field in msgspec.structs.fields(_Args)}
_get_dims = attrgetter("input_dims")
_get_flops = attrgetter("flops")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_GPU_CATEGORIES = {int(c) for c in (Category.KERNEL, Category.MEMCPY, Category.MEMSET, Category.CUDA_SYNC,
                                    Category.GPU_USER_ANNOTATION)}


def us_to_ns(values: np.ndarray) -> np.ndarray:
    """float64 microseconds (|x| < 2**43 for exactness) to int64 nanoseconds."""
    whole = np.floor(values)
    return whole.astype(np.int64) * 1000 + np.rint((values - whole) * 1000.0).astype(np.int64)


def literal_us_to_ns(text: bytes) -> int | None:
    """A JSON number literal in microseconds to exact integer nanoseconds (None if not a number)."""
    try:
        literal = text.decode("ascii").strip()
        if "e" in literal or "E" in literal:
            value = float(literal)
            return round(value * 1000) if abs(value) < MAX_ABS_US else None
        negative = literal.startswith("-")
        whole, _, frac = literal.lstrip("-").partition(".")
        if not whole.isdigit() or (frac and not frac.isdigit()):
            return None
        if len(frac) <= 3:
            ns = int(whole) * 1000 + (int(frac) * 10 ** (3 - len(frac)) if frac else 0)
        else:  # sub-nanosecond digits: round to the nearest nanosecond
            ns = int(whole) * 1000 + (int(frac[:3]) if frac[:3] else 0) + (1 if frac[3] >= "5" else 0)
        if ns >= int(MAX_ABS_US * 1000):
            return None
        return -ns if negative else ns
    except (UnicodeDecodeError, ValueError):
        return None


def needs_exact_ts(ts_us: np.ndarray) -> bool:
    """Whether float64 microseconds lose nanoseconds here (large and fractional values)."""
    finite = ts_us[np.isfinite(ts_us)]
    if finite.size == 0 or np.abs(finite).max() < EXACT_FLOAT_LIMIT_US:
        return False
    return bool(np.any(finite != np.floor(finite)))


class ColumnBuilder:
    """Accumulates decoded chunks as numpy columns, interning names, shapes and string ids."""

    def __init__(self, skipped: SkippedInput, metadata: TraceMetadata) -> None:
        self.skipped = skipped
        self.metadata = metadata
        self.exact_ts = False
        self.names: dict[str, int] = {}
        self.input_dims: dict[bytes, int] = {b"": -1}
        self.categories: dict[str, int] = {}
        self.string_ids: dict[str, int] = {}
        self.parts: dict[str, list[np.ndarray]] = {column: [] for column in COLUMNS}
        self.count = 0
        self.memory: list[tuple[int, int, int, int, int, int]] = []

    # ------------------------------------------------------------------ chunks

    def add_chunk(self, data: bytes | memoryview, base: int = 0) -> None:
        """Decode one JSON array of events and append it. `base` is the file offset of data[0],
        for the notes on skipped events. Raises NotJSON when the chunk as a whole is not
        well-formed JSON (the caller then finds the real element boundaries)."""
        decoder = EXACT_DECODER if self.exact_ts else FAST_DECODER
        try:
            events = decoder.decode(data)
        except Exception:  # whatever the decoder raises: its error types change between releases
            self._add_one_by_one(bytes(data), base)
            return
        if self._switch_to_exact(events):
            self.add_chunk(data, base)
            return
        self.add_events(events)

    def add_elements(self, elements: list[tuple[bytes, int]]) -> None:
        """Decode array elements one at a time ((text, file offset) pairs, in order) and append
        them. Raises NotJSON(index) at the first element that is not JSON, after appending the
        ones before it."""
        events, skipped, broken = self._decode_each(elements)
        if not self.exact_ts and self._switch_to_exact(events):
            events, skipped, broken = self._decode_each(elements)
        self._merge(skipped)
        self.add_events(events)
        if broken is not None:
            raise NotJSON(broken)

    def _switch_to_exact(self, events: list) -> bool:
        if self.exact_ts or not events:
            return False
        ts = np.fromiter(map(_get_ts, events), dtype=np.float64, count=len(events))
        if needs_exact_ts(ts):
            self.exact_ts = True
        return self.exact_ts

    def _add_one_by_one(self, data: bytes, base: int) -> None:
        """Slow path for a chunk that does not decode as a whole: an event with a field of the
        wrong type, text that is not UTF-8, a number out of range, or a JSON syntax error."""
        try:
            raw = RAW_LIST_DECODER.decode(data)
        except Exception:
            raise NotJSON(0) from None
        elements, cursor = [], 0
        for element in raw:  # in order, separated only by commas and whitespace
            text = bytes(element)
            found = data.find(text, cursor)
            elements.append((text, base + max(found, 0)))
            cursor = found + len(text) if found >= 0 else cursor
        events, skipped, broken = self._decode_each(elements)
        if not self.exact_ts and self._switch_to_exact(events):
            events, skipped, broken = self._decode_each(elements)
        if broken is not None:
            raise NotJSON(broken)  # nothing appended: the caller walks the chunk exactly
        self._merge(skipped)
        self.add_events(events)

    def _merge(self, skipped: SkippedInput) -> None:
        for reason, count in skipped.reasons.items():
            self.skipped.add(reason, count, events=False, at=skipped.first_at.get(reason))
        self.skipped.events += skipped.events

    def _decode_each(self, elements: list[tuple[bytes, int]]) -> tuple[list, SkippedInput, int | None]:
        """(events, what was skipped, index of the first element that is not JSON or None)."""
        one = _ONE_EXACT if self.exact_ts else _ONE_FAST
        events = []
        skipped = SkippedInput()
        for index, (element, offset) in enumerate(elements):
            try:
                events.append(one.decode(element))
                continue
            except Exception:  # see below what it was, without relying on the decoder's error types
                pass
            try:
                text = element.decode("utf-8")
            except UnicodeDecodeError as error:
                skipped.add("event with invalid UTF-8 text", at=offset + error.start)
                continue
            try:
                obj = json.loads(text, parse_int=bounded_int)
            except RecursionError:
                skipped.add("event nested too deeply", at=offset)
                continue
            except ValueError:
                return events, skipped, index
            event = self._lenient_event(obj, skipped, offset)
            if event is not None:
                events.append(event)
        return events, skipped, None

    def _lenient_event(self, obj: Any, skipped: SkippedInput, offset: int) -> _Event | _ExactEvent | None:
        """Rebuild an event whose fields have unexpected types, keeping what is usable."""
        if not isinstance(obj, dict):
            skipped.add("event that is not a JSON object", at=offset)
            return None
        fields: dict[str, Any] = {}
        for key in ("ph", "cat", "name"):
            value = obj.get(key, "")
            fields[key] = value if isinstance(value, str) else _short_text(value)
        for key in ("pid", "tid"):
            value = obj.get(key, 0)
            fields[key] = value if isinstance(value, (int, str)) and not isinstance(value, bool) else _short_text(value)
        ts, dur = obj.get("ts"), obj.get("dur")
        numeric = (int, float)
        if fields["ph"] == "X" and (
            not isinstance(ts, numeric) or isinstance(ts, bool) or not isinstance(dur, numeric) or isinstance(dur, bool)
        ):
            skipped.add("complete event whose ts or dur is not a number", at=offset)
            return None
        if self.exact_ts:
            fields["ts"] = msgspec.Raw(_number_literal(ts))
        else:
            fields["ts"] = _finite_float(ts)
        fields["dur"] = _finite_float(dur)
        args = obj.get("args")
        if isinstance(args, dict):
            kept: dict[str, Any] = {}
            for field in msgspec.structs.fields(_Args):
                if field.encode_name not in args:
                    continue
                value = args[field.encode_name]
                if field.name == "input_dims":
                    try:
                        kept[field.name] = msgspec.Raw(msgspec.json.encode(value))
                    except Exception:  # nested too deeply, or a number JSON cannot hold
                        skipped.add("args['Input Dims'] that cannot be kept ignored", events=False, at=offset)
                elif field.name in ("label", "labels"):
                    kept[field.name] = value
                elif field.name == "flops" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    kept[field.name] = _finite_float(value)
                elif field.name == "stream" and isinstance(value, str):
                    kept[field.name] = value
                elif isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
                    kept[field.name] = value
                else:
                    skipped.add(f"args[{field.encode_name!r}] of the wrong type ignored", events=False, at=offset)
            fields["args"] = _Args(**kept)
        return (_ExactEvent if self.exact_ts else _Event)(**fields)

    # ------------------------------------------------------------------ columns

    def add_events(self, events: list) -> None:
        complete = [e for e in events if e.ph == "X"]
        if len(complete) != len(events):
            for event in events:
                if event.ph == "M":
                    self._metadata_event(event)
                elif event.ph == "i" and event.name == MEMORY_EVENT:
                    self._memory_event(event)
        if complete:
            self._add_complete(complete)

    def _add_complete(self, events: list) -> None:
        n = len(events)
        if self.exact_ts:
            ts_ns = np.fromiter(
                (v if v is not None else _INT64_MIN for v in map(literal_us_to_ns, map(bytes, map(_get_ts, events)))),
                dtype=np.int64, count=n,
            )
            ts_ok = ts_ns != _INT64_MIN
        else:
            ts_us = np.fromiter(map(_get_ts, events), dtype=np.float64, count=n)
            ts_ok = np.isfinite(ts_us) & (np.abs(ts_us) < MAX_ABS_US)
            ts_ns = us_to_ns(np.where(ts_ok, ts_us, 0.0))
        dur_us = np.fromiter(map(_get_dur, events), dtype=np.float64, count=n)
        dur_ok = np.isfinite(dur_us) & (dur_us >= 0) & (dur_us < MAX_ABS_US)
        keep = ts_ok & dur_ok
        if not keep.all():
            self._count_bad(ts_ok, dur_us)
        dur_ns = us_to_ns(np.where(dur_ok, dur_us, 0.0))

        names = list(map(_get_name, events))
        table = self.names
        if not table.keys() >= set(names):
            for name in names:
                if name not in table:
                    table[name] = len(table)
        name_id = np.fromiter(map(table.__getitem__, names), dtype=np.int32, count=n)

        cats = list(map(_get_cat, events))
        for cat in set(cats) - self.categories.keys():
            self.categories[cat] = int(category_of(cat))
        cat = np.fromiter(map(self.categories.__getitem__, cats), dtype=np.int8, count=n)

        pid = self._ids(list(map(_get_pid, events)))
        tid = self._ids(list(map(_get_tid, events)))

        args = list(map(_get_args, events))
        arg = {key: self._int64s(list(map(get, args)), key) for key, get in _ARG_GETTERS.items()}
        external_id = np.where(arg["external_id"] >= 0, arg["external_id"], arg["external_id_v1"])
        flops = np.fromiter(map(_get_flops, args), dtype=np.float64, count=n)

        dims = list(map(bytes, map(_get_dims, args)))
        dims_table = self.input_dims
        # In order of first appearance (a set's order changes with hash seeds): the same trace
        # always gives the same ids, so reports derived from it are identical.
        for shape in dict.fromkeys(dims):
            if shape not in dims_table:
                dims_table[shape] = len(dims_table) - 1
        input_dims_id = np.fromiter(map(dims_table.__getitem__, dims), dtype=np.int32, count=n)

        device, stream = self._device_and_stream(cat, pid, tid, arg["device"], arg["stream"])
        columns = {
            "name_id": name_id,
            "cat": cat,
            "ts_ns": ts_ns,
            "dur_ns": dur_ns,
            "pid": pid,
            "tid": tid,
            "device": device,
            "stream": stream,
            "correlation": arg["correlation"],
            "external_id": external_id,
            "input_dims_id": input_dims_id,
            "nbytes": arg["nbytes"],
            "flops": flops,
        }
        if not keep.all():
            columns = {key: column[keep] for key, column in columns.items()}
        for key, column in columns.items():
            self.parts[key].append(column.astype(COLUMNS[key], copy=False))
        self.count += int(columns["ts_ns"].shape[0])

    def _count_bad(self, ts_ok: np.ndarray, dur_us: np.ndarray) -> None:
        missing_dur = np.isnan(dur_us)
        self.skipped.add("complete event without a valid ts", int(np.count_nonzero(~ts_ok)))
        rest = ts_ok
        self.skipped.add("complete event without dur", int(np.count_nonzero(rest & missing_dur)))
        self.skipped.add("complete event with a negative dur", int(np.count_nonzero(rest & (dur_us < 0))))
        out_of_range = rest & (np.isinf(dur_us) | (dur_us >= MAX_ABS_US))
        self.skipped.add("complete event with an out-of-range dur", int(np.count_nonzero(out_of_range)))

    def _int64s(self, values: list, key: str) -> np.ndarray:
        """An int column of args; a value beyond int64 (the decoder accepts any integer) is
        unusable: -1, as for a missing one, and noted. A text value (only `stream` may be one:
        ROCm writes the host call's stream handle, "0x0") is its decimal number, else -1: streams
        matter on the device side, where every version writes a number."""
        try:
            return np.fromiter(values, dtype=np.int64, count=len(values))
        except (ValueError, TypeError):
            # As numpy reads the chunk when every value converts: decimal text is its number.
            values = [v if type(v) is int else _text_int(v) for v in values]
            return self._int64s(values, key)
        except OverflowError:
            bad = [v for v in values if not _INT64_MIN <= v <= _INT64_MAX]
            self.skipped.add(f"args[{_ARG_NAMES[key]!r}] beyond 64 bits ignored", len(bad), events=False)
            return np.fromiter((v if _INT64_MIN <= v <= _INT64_MAX else -1 for v in values), dtype=np.int64, count=len(values))

    def _ids(self, values: list) -> np.ndarray:
        """pid/tid values (ints, or strings like "Spans") as int64. A decimal string ("25738", as
        PyTorch 1.x writes tids) is that number whatever else its chunk holds: numpy converts it
        when every value in the chunk converts, so the fallback must too, or one thread would
        get two ids depending on where the reader's blocks happen to end."""
        try:
            return np.fromiter(values, dtype=np.int64, count=len(values))
        except (TypeError, ValueError, OverflowError):
            return np.fromiter(map(self.id_of, values), dtype=np.int64, count=len(values))

    def id_of(self, value: Any) -> int:
        """One pid/tid as int64 (see _ids)."""
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            return value
        if type(value) is str:
            number = _decimal(value)
            if number is not None:
                return number
        return self.string_id(str(value))

    def string_id(self, text: str) -> int:
        """A stable id for a string pid/tid: the same string gets the same id in every trace."""
        known = self.string_ids.get(text)
        if known is not None:
            return known
        taken = set(self.string_ids.values())
        candidate = STRING_ID_BASE - zlib.crc32(text.encode("utf-8", "replace"))
        while candidate in taken:
            candidate -= 1 << 32
        self.string_ids[text] = candidate
        return candidate

    def _device_and_stream(
        self, cat: np.ndarray, pid: np.ndarray, tid: np.ndarray, device: np.ndarray, stream: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """GPU index and stream from args, else (old traces) from pid and "stream N" tids."""
        device = np.where((device >= 0) & (device < (1 << 15)), device, -1)  # beyond the int16 column: unknown
        stream = np.where((stream >= 0) & (stream < (1 << 31)), stream, -1)
        on_gpu = np.isin(cat, list(_GPU_CATEGORIES))
        device = np.where(on_gpu & (device < 0) & (pid >= 0) & (pid < 1024), pid, device)
        device = np.where(on_gpu, device, -1)
        stream = np.where(on_gpu & (stream < 0) & (tid >= 0) & (tid < (1 << 31)), tid, stream)
        if on_gpu.any() and (stream < 0).any() and self.string_ids:
            for text, sid in self.string_ids.items():
                word, _, number = text.strip().partition(" ")
                if word == "stream" and number.isdigit():
                    stream = np.where(on_gpu & (stream < 0) & (tid == sid), int(number), stream)
        stream = np.where(on_gpu, stream, -1)
        return device, stream

    def _memory_event(self, event: Any) -> None:
        args = event.args
        if self.exact_ts:
            ts = literal_us_to_ns(bytes(event.ts))
        elif math.isfinite(event.ts) and abs(event.ts) < MAX_ABS_US:
            whole = math.floor(event.ts)  # as us_to_ns does, one value at a time
            ts = int(whole) * 1000 + round((event.ts - whole) * 1000.0)
        else:
            ts = None
        if ts is None or not args.mem_bytes or args.addr < 0:
            return
        tid = event.tid if type(event.tid) is int else self.string_id(str(event.tid))
        self.memory.append((int(ts), int(args.mem_bytes), int(args.addr), int(args.device_type), int(args.device_id), tid))

    def memory_columns(self) -> MemoryEvents | None:
        """The "[memory]" events in time order, or None when the trace has none."""
        if not self.memory:
            return None
        rows = sorted(self.memory)
        self.memory = []
        columns = list(zip(*rows))
        return MemoryEvents(*(np.array(column, dtype=np.int64) for column in columns))

    def _metadata_event(self, event: Any) -> None:
        label = event.args.label
        pid, tid = self.id_of(event.pid), self.id_of(event.tid)
        if event.name == "thread_name" and isinstance(label, str):
            self.metadata.thread_names[(pid, tid)] = label
        elif event.name == "process_name" and isinstance(label, str):
            self.metadata.process_names[pid] = label
        elif event.name == "process_labels" and isinstance(event.args.labels, str):
            self.metadata.process_labels[pid] = event.args.labels

    # ------------------------------------------------------------------ result

    def columns(self) -> dict[str, np.ndarray]:
        """All columns, concatenated and sorted by (start, longest first)."""
        out = {}
        for key, parts in self.parts.items():
            out[key] = np.concatenate(parts) if parts else np.empty(0, dtype=COLUMNS[key])
            parts.clear()
        ts, dur = out["ts_ns"], out["dur_ns"]
        if ts.size > 1:
            in_order = bool(np.all((ts[1:] > ts[:-1]) | ((ts[1:] == ts[:-1]) & (dur[1:] <= dur[:-1]))))
            if not in_order:
                order = np.lexsort((-dur, ts))
                for key in out:  # one column at a time: peak memory is one extra column, not all
                    out[key] = out[key][order]
        return out

    def name_table(self) -> list[str]:
        return list(self.names)

    def input_dims_table(self) -> list[str]:
        return [key.decode("utf-8", "replace") for key in self.input_dims if key]
