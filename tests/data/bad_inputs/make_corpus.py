"""Writes the regression corpus of issue 14 (trace inputs of `perfdoctor report`) beside this file,
with manifest.json saying what each must give. Run it again after changing a case:

    .venv/bin/python tests/data/bad_inputs/make_corpus.py

Cases that cannot be files in a repository (FIFOs, sockets, devices, symlink loops, names that
are not UTF-8, a gigabyte of whitespace) are made by fixtures in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent
DEPTH = 1500  # beyond Python's default recursion limit of 1000

STEP = [
    {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0, "dur": 1000},
    {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "pid": 1, "tid": 1, "ts": 100, "dur": 300},
    {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "pid": 1, "tid": 1, "ts": 120, "dur": 250},
    {"ph": "X", "cat": "user_annotation", "name": "Optimizer.step#SGD.step", "pid": 1, "tid": 1, "ts": 600, "dur": 300},
]


def events_text(extra: str = "", before: str = "", after: str = "") -> str:
    """A small trace as text, with `extra` (raw JSON text) appended to its events."""
    body = ",\n".join(json.dumps(event) for event in STEP)
    if extra:
        body += ",\n" + extra
    head = f"{before},\n" if before else ""
    tail = f",\n{after}" if after else ""
    return '{"schemaVersion": 1,\n' + head + '"traceEvents": [\n' + body + "\n]" + tail + "}\n"


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


CASES: dict[str, tuple[bytes, dict]] = {
    "dur_1e400.json": (
        events_text('{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 500, "dur": 1e400}').encode(),
        {"exit": 0, "note": "out-of-range dur"},
    ),
    "ts_1e400.json": (
        events_text('{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 1e400, "dur": 5}').encode(),
        {"exit": 0, "note": "without a valid ts"},
    ),
    "dur_400_digits.json": (
        events_text('{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 500, "dur": ' + "9" * 400 + "}").encode(),
        {"exit": 0, "note": "out-of-range dur"},
    ),
    "ts_5000_digits.json": (  # past Python's 4300-digit limit for int(): valid JSON all the same
        events_text('{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": ' + "9" * 5000 + ', "dur": 5}').encode(),
        {"exit": 0, "note": "ts"},
    ),
    "deep_event_args.json": (
        events_text('{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 500, "dur": 5, "args": {"x": ' + nested(DEPTH) + "}}").encode(),
        {"exit": 0, "note": "nested too deeply"},
    ),
    "deep_input_dims.json": (
        events_text('{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 500, "dur": 5, "args": {"Input Dims": ' + nested(DEPTH) + "}}").encode(),
        {"exit": 0, "note": "nested too deeply"},
    ),
    "deep_event_object.json": (
        events_text('{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 500, "dur": 5, "args": ' + '{"a": ' * DEPTH + "1" + "}" * DEPTH + "}").encode(),
        {"exit": 0, "note": "nested too deeply"},
    ),
    "deep_metadata_event.json": (
        events_text('{"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": ' + nested(DEPTH) + "}}").encode(),
        {"exit": 0, "note": "nested too deeply"},
    ),
    "deep_header_first.json": (
        events_text(before='"deviceProperties": ' + nested(DEPTH)).encode(),
        {"exit": 2, "stderr": "top-level value 'deviceProperties' is nested too deeply"},
    ),
    "deep_header_last.json": (
        events_text(after='"distributedInfo": ' + nested(DEPTH, '{"rank": 0}')).encode(),
        {"exit": 0, "note": "'distributedInfo' is nested too deeply"},
    ),
    "header_400_digits.json": (
        events_text(before='"schemaVersion": ' + "9" * 400 + ', "baseTimeNanoseconds": ' + "9" * 5000).encode(),
        {"exit": 0},
    ),
    "metadata_wrong_types.json": (
        events_text(before=json.dumps({
            "deviceProperties": [{"id": "zero", "name": ["A100"], "totalGlobalMem": "big", "computeMajor": 1e400,
                                  "computeMinor": None, "numSms": -5}],
            "distributedInfo": {"rank": True, "world_size": 10 ** 40, "backend": {"nccl": 1}},
        })[1:-1].replace("Infinity", "1e400")).encode(),
        {"exit": 0, "note": "of the wrong type or out of range ignored"},
    ),
    "control_characters.json": (
        events_text(
            '{"ph": "X", "cat": "cpu_op", "name": "aten::\\u001b[2J\\u001b]0;owned\\u0007mm\\u009b31m\\u202e", "pid": 1, "tid": 1, "ts": 500, "dur": 50},\n'
            '{"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "\\u001b[31mred"}}',
            before='"deviceProperties": [{"id": 0, "name": "GPU\\u001b[31m\\r\\nperfdoctor: fake line", "computeMajor": 8, "computeMinor": 0}],\n'
                   '"distributedInfo": {"rank": 0, "world_size": 1, "backend": "\\u001b]8;;http://x\\u0007nccl"}',
        ).encode(),
        {"exit": 0},
    ),
    "empty.json": (b"", {"exit": 2, "stderr": "the file is empty"}),
    "whitespace.json": (b" \t\r" * 300 + b"\n", {"exit": 2, "stderr": "only whitespace (901 bytes)"}),
    "array_not_object.json": (b"[1, 2, 3]", {"exit": 2, "stderr": "the JSON is an array"}),
    "truncated_header.json.gz": (gzip.compress(events_text().encode(), mtime=0)[:40], {"exit": 2, "stderr": "gzip stream is truncated"}),
    "truncated_events.json": (events_text().encode()[:-120], {"exit": 0, "note": "truncated"}),
    "gzip_garbage.json.gz": (b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4, {"exit": 2, "stderr": "corrupt gzip data"}),
    "utf16.json": (events_text().encode("utf-16"), {"exit": 2, "stderr": "UTF-16"}),
    "binary.json": (bytes(range(256)), {"exit": 2, "stderr": "not a JSON trace"}),
    "not_utf8_in_event.json": (
        events_text('{"ph": "X", "cat": "cpu_op", "name": "caf\\u00e9", "pid": 1, "tid": 1, "ts": 500, "dur": 5}').encode().replace(b"caf\\u00e9", b"caf\xe9"),
        {"exit": 0, "note": "invalid UTF-8"},
    ),
    "no_complete_events.json": (b'{"traceEvents": [{"ph": "M", "name": "x", "pid": 1, "tid": 1}]}', {"exit": 2, "stderr": "no complete"}),
    "report.json": (events_text().encode(), {"exit": 0}),  # a trace that happens to be named like our report
}


def main() -> None:
    manifest = {}
    for name, (data, expected) in CASES.items():
        (HERE / name).write_bytes(data)
        manifest[name] = expected
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
