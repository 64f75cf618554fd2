"""Malformed input: a one-line TraceError, or the usable part with `skipped` saying what was not."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trace_builders import cpu_training_events, kineto_text

from perfdoctor.trace import Trace, TraceError, read_trace

GOOD = {
    "schemaVersion": 1,
    "deviceProperties": [{"id": 0, "name": "GPU"}],
    "traceEvents": cpu_training_events(),
    "traceName": "t.json",
}
GOOD_TEXT = kineto_text(GOOD, "kineto").encode()


def _write(tmp_path: Path, data: bytes, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _error(path: Path) -> str:
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert caught.value.exit_code == 2
    return message


@pytest.mark.parametrize("data, expected", [
    (b"", "the file is empty"),
    (b"  \n\t ", "the file holds only whitespace (5 bytes), no JSON"),
    (b'[{"ph": "X", "ts": 1, "dur": 1}]', "the JSON is an array"),
    (b'{"schemaVersion": 1}', 'no "traceEvents" array'),
    (b'{"traceEvents": {"a": 1}}', '"traceEvents" is not an array'),
    (b'{"traceEvents": []}', 'no complete ("X") events'),
    (b'{"traceEvents": [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 1}]}', 'no complete ("X") events'),
    (b'{"traceEvents": [{"ph": X}]}', "invalid JSON at byte"),
    (b'{"schemaVersion": 1, "deviceProp', "truncated"),
    (b'{"schemaVersion": nope}', "invalid JSON at byte"),
    (b"\x00\x01\x02binary", "not a JSON trace (starts with binary data)"),
    (b"hello world", "not a JSON trace (starts with 'hello world')"),
    ('{"traceEvents": []}'.encode("utf-16"), "UTF-16"),
    (b'{"traceEvents": [{"ph": "X", "ts": "1", "dur": 1}, {"ph": "X", "ts": 1, "dur": -5}]}',
     "no usable complete event"),
    (b'{"traceEvents": [{"ph": "X", "ts": 1, "dur": 1', "the file ends inside traceEvents (truncated?)"),
])
def test_unusable_input_is_one_clear_line(tmp_path, data, expected):
    assert expected in _error(_write(tmp_path, data))


def test_missing_file_and_directory(tmp_path):
    assert "no such file" in _error(tmp_path / "missing.json")
    assert "is a directory" in _error(tmp_path)


def test_corrupt_gzip(tmp_path):
    assert "corrupt gzip data" in _error(_write(tmp_path, b"\x1f\x8b\x08\x00" + bytes(range(200)), "t.json.gz"))
    assert "gzip stream is truncated" in _error(_write(tmp_path, gzip.compress(GOOD_TEXT)[:15], "u.json.gz"))


def test_truncated_after_complete_events_is_partial(tmp_path):
    cut = GOOD_TEXT.index(b'"aten::relu"')
    trace = read_trace(_write(tmp_path, GOOD_TEXT[:cut]))
    assert [trace.names[n] for n in trace.name_id][-1] == "aten::addmm"
    assert trace.skipped.truncated and "truncated" in trace.skipped.summary()
    gz = gzip.compress(GOOD_TEXT)
    partial = read_trace(_write(tmp_path, gz[: len(gz) * 2 // 3], "t.json.gz"))
    assert partial.skipped.truncated and "gzip stream is truncated" in partial.skipped.reasons
    assert 0 < len(partial) < len(GOOD["traceEvents"])


def test_truncated_in_trailing_metadata_keeps_all_events(tmp_path):
    trace = read_trace(_write(tmp_path, GOOD_TEXT[: GOOD_TEXT.rindex(b'"t.json"') + 3]))
    assert len(trace) == len(GOOD["traceEvents"])
    assert trace.skipped.truncated


def test_invalid_json_after_some_events_is_partial(tmp_path):
    data = GOOD_TEXT.replace(b'"aten::relu"', b'"aten::relu" oops')
    trace = read_trace(_write(tmp_path, data))
    assert 0 < len(trace) < len(GOOD["traceEvents"])
    assert any("invalid JSON at byte" in reason for reason in trace.skipped.reasons)


def test_events_with_wrong_field_types_are_skipped(tmp_path):
    events = [
        {"ph": "X", "name": "ts as text", "ts": "1", "dur": 1},
        {"ph": "X", "name": "negative dur", "ts": 1, "dur": -1},
        {"ph": "X", "name": "no dur", "ts": 1},
        {"ph": "X", "name": "pid as float", "ts": 1, "dur": 1, "pid": 1.5},
        {"ph": "X", "name": 42, "ts": 2, "dur": 1},
        {"ph": "X", "name": "bad external id", "ts": 3, "dur": 1, "args": {"External id": "x", "correlation": 5}},
        {"ph": "X", "name": "huge ts", "ts": 1e300, "dur": 1},
        {"ph": "X", "name": "huge pid", "ts": 4, "dur": 1, "pid": 2 ** 80},
        "not an object",
        {"ph": "X", "name": "ok", "ts": 5, "dur": 1},
    ]
    trace = read_trace(_write(tmp_path, json.dumps({"traceEvents": events}).encode()))
    names = sorted(trace.names[n] for n in trace.name_id)
    assert names == ["42", "bad external id", "huge pid", "ok", "pid as float"]
    assert trace.skipped.events == 5
    assert trace.skipped.reasons["complete event with a negative dur"] == 1
    assert trace.skipped.reasons["complete event without dur"] == 1
    assert "args['External id'] of the wrong type ignored" in trace.skipped.reasons
    bad = trace.names.index("bad external id")
    index = list(trace.name_id).index(bad)
    assert (trace.external_id[index], trace.correlation[index]) == (-1, 5)


def test_invalid_utf8_in_one_event(tmp_path):
    data = (b'{"traceEvents": [{"ph": "X", "ts": 1, "dur": 1, "name": "caf\xe9"}, '
            b'{"ph": "X", "ts": 2, "dur": 1, "name": "ok"}]}')
    trace = read_trace(_write(tmp_path, data))
    assert trace.names == ["ok"] and trace.skipped.reasons == {"event with invalid UTF-8 text": 1}


def test_plain_file_named_gz_and_gzip_named_json(tmp_path):
    assert len(read_trace(_write(tmp_path, GOOD_TEXT, "t.json.gz"))) == len(GOOD["traceEvents"])
    assert len(read_trace(_write(tmp_path, gzip.compress(GOOD_TEXT), "u.json"))) == len(GOOD["traceEvents"])


def test_trailing_garbage_is_noted(tmp_path):
    trace = read_trace(_write(tmp_path, GOOD_TEXT + b"\nxyz"))
    assert len(trace) == len(GOOD["traceEvents"]) and not trace.skipped.truncated
    assert any("data after the JSON object" in reason for reason in trace.skipped.reasons)


# ------------------------------------------------------------------ property-based

def _outcome(path: Path) -> Trace | None:
    """Read, allowing only a Trace or a TraceError."""
    try:
        trace = read_trace(path, block_bytes=64)
    except TraceError as exc:
        assert "\n" not in str(exc)
        return None
    assert isinstance(trace, Trace) and len(trace) > 0
    return trace


FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(json_values, st.sampled_from([0, 1, -1, 2 ** 63, 2 ** 64, 1e308, "X", "stream 7", "}, {"]))
events = st.dictionaries(
    st.sampled_from(["ph", "name", "cat", "ts", "dur", "pid", "tid", "args", "id"]), field_values, max_size=9
).map(lambda e: {**e, "ph": e.get("ph", "X")})


@FAST
@given(st.binary(max_size=300))
def test_random_bytes(tmp_path, data):
    _outcome(_write(tmp_path, data))
    _outcome(_write(tmp_path, b'{"traceEvents": [' + data, "u.json"))


@FAST
@given(st.integers(0, len(GOOD_TEXT)), st.sampled_from(["plain", "gzip"]))
def test_truncation_anywhere(tmp_path, cut, kind):
    packed = gzip.compress(GOOD_TEXT)
    data = GOOD_TEXT[:cut] if kind == "plain" else packed[: cut * len(packed) // len(GOOD_TEXT)]
    trace = _outcome(_write(tmp_path, data, "t.json" if kind == "plain" else "t.json.gz"))
    if trace is not None and cut < len(GOOD_TEXT):
        assert trace.skipped.truncated


@FAST
@given(json_values)
def test_random_json_documents(tmp_path, value):
    _outcome(_write(tmp_path, json.dumps(value).encode()))
    _outcome(_write(tmp_path, json.dumps({"traceEvents": value}).encode(), "u.json"))


@FAST
@given(st.lists(events, max_size=12), st.sampled_from(["kineto", "minified", "pretty"]))
def test_events_with_arbitrary_fields(tmp_path, evs, style):
    trace = _outcome(_write(tmp_path, kineto_text({"traceEvents": evs}, style).encode()))
    if trace is not None:
        assert len(trace) + trace.skipped.events <= len(evs)


@FAST
@given(st.lists(st.tuples(st.integers(0, len(GOOD_TEXT) - 1), st.integers(0, 255)), min_size=1, max_size=5))
def test_byte_flips(tmp_path, flips):
    data = bytearray(GOOD_TEXT)
    for at, value in flips:
        data[at] = value
    _outcome(_write(tmp_path, bytes(data)))


def test_random_large_garbage_is_quick(tmp_path):
    import time

    path = _write(tmp_path, b'{"traceEvents": [' + os.urandom(1 << 20))
    start = time.perf_counter()
    with pytest.raises(TraceError):
        read_trace(path)
    assert time.perf_counter() - start < 5


def test_skips_are_counted_once_when_switching_to_exact_timestamps(tmp_path):
    data = (b'{"traceEvents": [{"ph": "X", "name": "a", "ts": 1712195495406752.797, "dur": 1}, '
            b'{"ph": "X", "name": "b", "ts": "x", "dur": 1}, {"ph": "X", "name": "c\xff", "ts": 1, "dur": 1}]}')
    trace = read_trace(_write(tmp_path, data))
    assert trace.ts_ns.tolist() == [1712195495406752797]
    assert trace.skipped.events == 2
    assert sum(trace.skipped.reasons.values()) == 2
    assert trace.skipped.reasons["event with invalid UTF-8 text"] == 1


# ------------------------------------------------------------------ decoder error types

class _DecoderOfAnotherRelease:
    """Wraps one of the reader's msgspec decoders to fail on invalid UTF-8 the way a given msgspec
    release does: older ones raised UnicodeDecodeError, 0.19+ raise msgspec.DecodeError. With
    `raw=True` it stands for a release whose Raw decoding checks UTF-8 too."""

    def __init__(self, decoder, error, raw=False):
        self.decoder, self.error, self.raw = decoder, error, raw

    def decode(self, data):
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.error is UnicodeDecodeError:
                raise UnicodeDecodeError("utf-8", exc.object, exc.start, exc.end, exc.reason) from None
            raise self.error("Invalid UTF-8 encoded string") from None
        return self.decoder.decode(data)


def _release(monkeypatch, error, raw_checks_utf8):
    from perfdoctor.trace import events as module

    for name in ("FAST_DECODER", "EXACT_DECODER", "_ONE_FAST", "_ONE_EXACT"):
        monkeypatch.setattr(module, name, _DecoderOfAnotherRelease(getattr(module, name), error))
    if raw_checks_utf8:
        monkeypatch.setattr(module, "RAW_LIST_DECODER", _DecoderOfAnotherRelease(module.RAW_LIST_DECODER, error))


ERRORS = pytest.mark.parametrize("error, raw_checks_utf8", [
    (UnicodeDecodeError, False),
    (__import__("msgspec").DecodeError, False),
    (__import__("msgspec").DecodeError, True),
    (ValueError, True),
])


@ERRORS
def test_one_corrupt_byte_in_an_event_name_skips_that_event_whatever_the_decoder_raises(
    tmp_path, monkeypatch, error, raw_checks_utf8
):
    _release(monkeypatch, error, raw_checks_utf8)
    at = GOOD_TEXT.index(b'"aten::relu"') + 3  # inside the name of the first aten::relu
    data = bytearray(GOOD_TEXT)
    data[at] = 0xFF
    trace = read_trace(_write(tmp_path, bytes(data)), block_bytes=256)
    expected = sum(1 for e in GOOD["traceEvents"] if e.get("ph") == "X") - 1
    assert len(trace) == expected and not trace.skipped.truncated
    assert trace.skipped.events == 1 and trace.skipped.reasons == {"event with invalid UTF-8 text": 1}
    assert trace.skipped.first_at["event with invalid UTF-8 text"] == at
    assert f"event with invalid UTF-8 text at byte {at}" in trace.skipped.summary()


@ERRORS
def test_a_syntax_error_still_ends_the_reading_at_the_right_byte(tmp_path, monkeypatch, error, raw_checks_utf8):
    _release(monkeypatch, error, raw_checks_utf8)
    at = GOOD_TEXT.index(b'"aten::relu"')
    data = GOOD_TEXT.replace(b'"aten::relu"', b'"aten::relu" oops', 1)
    trace = read_trace(_write(tmp_path, data), block_bytes=256)
    assert trace.skipped.truncated and 0 < len(trace) < len(GOOD["traceEvents"])
    (reason,) = [r for r in trace.skipped.reasons if "invalid JSON" in r]
    start = GOOD_TEXT.rindex(b"{", 0, at)  # the event holding the error
    assert f"invalid JSON at byte {start}:" in reason


def test_invalid_utf8_in_a_top_level_value_is_one_line(tmp_path):
    data = GOOD_TEXT.replace(b'"traceName": "t.json"', b'"traceName": "t\xff.json"')
    trace = read_trace(_write(tmp_path, data))  # after the events: the events are kept
    assert len(trace) and any("invalid UTF-8 in top-level value 'traceName'" in r for r in trace.skipped.reasons)
    early = b'{"deviceProperties": "\xff", ' + GOOD_TEXT[1:]
    assert "invalid UTF-8 in top-level value 'deviceProperties'" in _error(_write(tmp_path, early, "u.json"))


# ------------------------------------------------------------------ sizes past what a block holds

EVENT = b'{"ph": "X", "name": "a", "ts": 1, "dur": 1}'


def test_whitespace_between_events_of_any_length(tmp_path, monkeypatch):
    from perfdoctor.trace import reader

    monkeypatch.setattr(reader, "MAX_VALUE_BYTES", 4096)
    pad = b" \n" * 20_000  # ten times MAX_VALUE_BYTES, hundreds of blocks
    data = b'{"traceEvents": [' + pad + EVENT + pad + b"," + pad + EVENT + pad + b"]" + pad + b"}"
    trace = read_trace(_write(tmp_path, data), block_bytes=64)
    assert len(trace) == 2 and not trace.skipped
    empty = b'{"traceEvents": [' + pad + b"]}"
    assert 'no complete ("X") events' in _error(_write(tmp_path, empty, "u.json"))


def test_a_key_too_long_is_said_so(tmp_path, monkeypatch):
    from perfdoctor.trace import reader

    monkeypatch.setattr(reader, "MAX_VALUE_BYTES", 4096)
    data = b'{"' + b"k" * 400_000 + b'": 1, "traceEvents": [' + EVENT + b"]}"  # past the first read
    with pytest.raises(TraceError, match="a key longer than 0 MiB at byte 1"):
        read_trace(_write(tmp_path, data), block_bytes=64)


def test_megabytes_of_brackets_are_given_up_on_quickly(tmp_path):
    import time

    from perfdoctor.trace.jsonscan import MAX_VALUE_TOKENS

    start = time.perf_counter()
    for name, body in (("open.json", b"[" * (4 << 20)), ("pairs.json", b"[" + b"[]," * (2 << 20))):
        trace = read_trace(_write(tmp_path, b'{"traceEvents": [' + EVENT + b"," + body, name))
        assert len(trace) == 1 and trace.skipped.truncated  # the event before is kept
        (reason,) = trace.skipped.reasons
        assert reason == f"at byte 61: a value of more than {MAX_VALUE_TOKENS} strings and brackets, not an event"
    assert time.perf_counter() - start < 20
