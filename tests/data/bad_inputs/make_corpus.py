"""Writes the regression corpus of issue 14 beside this file, with manifest.json saying what each
case must give. Run it again after changing a case:

    .venv/bin/python tests/data/bad_inputs/make_corpus.py

Three kinds of case:
- `NAME.json[.gz]`: a trace for `perfdoctor report` (CASES);
- `runs/CASE/`: damaged raw files of a run directory. The manifest names the recorded run they
  belong to (`base`, in tests/data/); a test copies that run and puts the case's files over it,
  then runs `perfdoctor report` on it (RUN_CASES);
- `reports/NAME.json`: a report.json for `perfdoctor check` and `perfdoctor diff` (REPORT_CASES).

Cases that cannot be files in a repository (FIFOs, sockets, devices, symlinks out of a run
directory, symlink loops, names that are not UTF-8, a gigabyte of whitespace) are made by
fixtures in tests/test_bad_inputs.py, tests/test_bad_runs.py and tests/gate/test_bad_reports.py.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Callable

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


# --- run directories ------------------------------------------------------------------------------

DATA = HERE.parent
STREAMED, LEGACY = "run_stream_cnn", "run_reference_cnn"


def raw_lines(base: str, name: str) -> list[bytes]:
    return (DATA / base / "raw" / name).read_bytes().splitlines(keepends=True)


def with_line(base: str, name: str, line: str, at: int | None = None, keep: int | None = None) -> bytes:
    """A stream of the base run (its first `keep` lines, else all) with one line added (at index
    `at`, else at the end)."""
    found = raw_lines(base, name)[:keep]
    found.insert(len(found) if at is None else at, line.encode() + b"\n")
    return b"".join(found)


def edited_json(base: str, name: str, change: Callable[[dict], Any], text: Callable[[str], str] = lambda t: t) -> bytes:
    """A raw .json file of the base run, changed as a dict and then as text."""
    data = json.loads((DATA / base / "raw" / name).read_text())
    change(data)
    return text(json.dumps(data)).encode()


def first_record(base: str, name: str, kind: str) -> dict:
    return next(json.loads(line) for line in raw_lines(base, name) if kind in json.loads(line))


STEPS = first_record(STREAMED, "steps.jsonl", "steps")["steps"]
RUN_CASES: dict[str, tuple[str, dict[str, bytes], dict]] = {
    "stream_dataloader_wrong_types": (STREAMED, {"raw/dataloader.jsonl": with_line(
        STREAMED, "dataloader.jsonl", '{"waits": {"loader": 0, "ns": ["12", null]}}',
    )}, {"exit": 0, "note": "record(s) in raw/dataloader.jsonl were not in the shape this perfdoctor reads"}),
    "stream_host_wrong_types": (STREAMED, {"raw/host.jsonl": with_line(
        STREAMED, "host.jsonl", '{"sample": {"t_ns": 5, "step": 2, "rss": "big", "core_cpu": []}}', at=5, keep=40,
    )}, {"exit": 0, "note": "record(s) in raw/host.jsonl were not in the shape"}),
    "stream_settings_wrong_types": (STREAMED, {"raw/settings.jsonl": with_line(
        STREAMED, "settings.jsonl", '{"update": {"cpu": {"logical_cores": "two"}, "taken_at": 5}}',
    )}, {"exit": 0, "note": "raw/settings.jsonl cpu is not in the shape"}),
    "stream_gpu_wrong_types": (STREAMED, {"raw/gpu.jsonl": b"".join(raw_lines(STREAMED, "gpu.jsonl")[:1]) + (
        b'{"meta": {"driver_version": "550", "devices": [{"index": "zero", "name": "GPU"}]}}\n'
        b'{"sample": {"t_ns": 5, "step": 1, "devices": [{"index": 0, "utilization_gpu": 150}]}}\n'
    )}, {"exit": 0, "note": "2 record(s) in raw/gpu.jsonl were not in the shape"}),
    "stream_steps_string_column": (STREAMED, {"raw/steps.jsonl": with_line(
        STREAMED, "steps.jsonl", json.dumps({"steps": {**STEPS, "first": 3, "dataloader_ns": ["47375343"]}}), at=8,
    )}, {"exit": 0, "note": "record(s) in raw/steps.jsonl were not in the shape"}),
    "stream_steps_nan": (STREAMED, {"raw/steps.jsonl": with_line(
        STREAMED, "steps.jsonl", '{"steps": {"first": 8, "start_ns": [NaN], "end_ns": [Infinity]}}',
    )}, {"exit": 0, "note": "1 damaged record(s) in raw/steps.jsonl were skipped"}),
    "stream_numbers_out_of_range": (STREAMED, {"raw/steps.jsonl": with_line(
        STREAMED, "steps.jsonl", '{"steps": {"first": 8, "start_ns": [1e400], "end_ns": [' + "9" * 400 + "]}}",
    )}, {"exit": 0, "note": "1 damaged record(s) in raw/steps.jsonl were skipped"}),
    "stream_negative_durations": (STREAMED, {"raw/steps.jsonl": with_line(
        STREAMED, "steps.jsonl", json.dumps({"steps": {**STEPS, "first": 8, "forward_ns": [-5]}}),
    )}, {"exit": 0, "note": "Expected `int` >= 0"}),
    "stream_a_gap_in_the_steps": (STREAMED, {"raw/steps.jsonl": b"".join(
        line for line in raw_lines(STREAMED, "steps.jsonl") if b'"first":3,' not in line
    )}, {"exit": 0, "note": "The times of step 3 were lost (a damaged record): the 4 recorded after them are left out"}),
    "stream_profiler_absolute_trace": (STREAMED, {"raw/profiler.jsonl": with_line(
        STREAMED, "profiler.jsonl", '{"trace": {"path": "/etc/passwd", "export_s": 0.1}}',
    )}, {"exit": 0, "note": "/etc/passwd is an absolute path"}),
    "stream_profiler_trace_up_and_out": (STREAMED, {"raw/profiler.jsonl": with_line(
        STREAMED, "profiler.jsonl", '{"trace": {"path": "tb/../../../outside.pt.trace.json", "export_s": 0.1}}',
    )}, {"exit": 0, "note": "goes up out of the run directory"}),
    "stream_unknown_record_kinds": (STREAMED, {"raw/steps.jsonl": with_line(
        STREAMED, "steps.jsonl", '{"mystery": {"first": 0, "start_ns": "x"}}', at=3,
    )}, {"exit": 0}),
    "stream_deep_nesting": (STREAMED, {"raw/host.jsonl": with_line(
        STREAMED, "host.jsonl", '{"sample": ' + nested(DEPTH) + "}", at=4, keep=40,
    )}, {"exit": 0, "note": "1 damaged record(s) in raw/host.jsonl were skipped"}),
    "stream_deep_loader_args": (STREAMED, {"raw/dataloader.jsonl": with_line(
        STREAMED, "dataloader.jsonl", '{"loader": {"id": 7, "args": {"nested": ' + nested(400) + "}}}",
    )}, {"exit": 0}),
    "stream_truncated_steps": (STREAMED, {"raw/steps.jsonl": (DATA / STREAMED / "raw" / "steps.jsonl").read_bytes()[:-150]},
                               {"exit": 0, "note": "damaged record(s) in raw/steps.jsonl were skipped"}),
    "stream_run_header_only": (STREAMED, {"raw/run.jsonl": raw_lines(STREAMED, "run.jsonl")[0]},
                               {"exit": 0, "note": "How this run ended was not recorded"}),
    "stream_run_wrong_types": (STREAMED, {"raw/run.jsonl": with_line(
        STREAMED, "run.jsonl", '{"outcome": {"status": "stopped", "argv": "--lr 1", "world_size": 0, "error": {"type": 5}}}',
    )}, {"exit": 0, "note": "record(s) in raw/run.jsonl were not in the shape"}),
    "stream_binary_garbage": (STREAMED, {"raw/host.jsonl": bytes(range(256)) * 4},
                              {"exit": 0, "note": "damaged record(s) in raw/host.jsonl were skipped"}),
    "legacy_dataloader_wrong_types": (LEGACY, {"raw/dataloader.json": edited_json(
        LEGACY, "dataloader.json", lambda d: d["loaders"][0].update(batch_wait_ns=["1", None]),
    )}, {"exit": 0, "note": "raw/dataloader.json is not in the shape this perfdoctor reads"}),
    "legacy_host_wrong_types": (LEGACY, {"raw/host.json": edited_json(
        LEGACY, "host.json", lambda d: d["samples"].update(rss=["big"] * 5),
    )}, {"exit": 0, "note": "raw/host.json is not in the shape"}),
    "legacy_host_columns_of_different_lengths": (LEGACY, {"raw/host.json": edited_json(
        LEGACY, "host.json", lambda d: d["samples"].update(system_cpu=[1.0]),
    )}, {"exit": 0, "note": "system_cpu has 1 values for 5 t_ns values"}),
    "legacy_settings_wrong_types": (LEGACY, {"raw/settings.json": edited_json(
        LEGACY, "settings.json", lambda d: d.update(cpu="many", threads={"intra_op": [2]}),
    )}, {"exit": 0, "note": "raw/settings.json cpu is not in the shape"}),
    "legacy_gpu_wrong_types": (LEGACY, {"raw/gpu.json": b'{"schema": "perfdoctor.raw/1", "available": "yes", "devices": 5}'},
                               {"exit": 0, "note": "raw/gpu.json is not in the shape"}),
    "legacy_steps_string_column": (LEGACY, {"raw/steps.json": edited_json(
        LEGACY, "steps.json", lambda d: d.update(start_ns=[str(v) for v in d["start_ns"]]),
    )}, {"exit": 0, "note": "raw/steps.json is not in the shape"}),
    "legacy_steps_nan": (LEGACY, {"raw/steps.json": edited_json(
        LEGACY, "steps.json", lambda d: d["forward_ns"].__setitem__(2, float("nan")),
    )}, {"exit": 0, "note": "raw/steps.json could not be read (not JSON"}),
    "legacy_profiler_absolute_trace": (LEGACY, {"raw/profiler.json": edited_json(
        LEGACY, "profiler.json", lambda d: d.update(traces=["/etc/passwd"]),
    )}, {"exit": 0, "note": "/etc/passwd is an absolute path"}),
    "legacy_run_not_json": (LEGACY, {"raw/run.json": b'{"schema": "perfdoctor.raw/1", "script": '},
                            {"exit": 2, "stderr": "raw/run.json: not JSON"}),
}


# --- report.json -----------------------------------------------------------------------------------
# `exit` and `stderr`: what `check` with the CHECK budget gives; `diff_exit`, where it differs, what
# `diff` gives (a report that decodes can be compared even when a budget cannot be checked on it).

REFERENCE_REPORT = (DATA / "report_reference_cnn.json").read_text()
CHECK = ["--max-step-time-ms", "1000"]  # the reference's median is 22.351 ms: a report that decodes passes


def report_text(change: Callable[[dict], Any] = lambda r: None, text: Callable[[str], str] = lambda t: t) -> bytes:
    report = json.loads(REFERENCE_REPORT)
    change(report)
    return text(json.dumps(report)).encode()


def p50(value: str) -> Callable[[str], str]:
    return lambda text: text.replace('"p50": 22.351', f'"p50": {value}', 1)


HOSTILE = "\u001b[2J\u001b]0;owned\u0007\r\n::error title=forged::\u202eevil"
REPORT_CASES: dict[str, tuple[bytes, dict]] = {
    "negative_step_time.json": (report_text(text=p50("-5.0")), {"exit": 2, "stderr": "Expected `float` >= 0.0 - at `$.steps.time_ms.p50`"}),
    "nan_step_time.json": (report_text(text=p50("NaN")), {"exit": 2, "stderr": "is not valid JSON"}),
    "infinite_step_time.json": (report_text(text=p50("1e400")), {"exit": 2, "stderr": "is not valid JSON: Number out of range"}),
    "string_step_time.json": (report_text(text=p50('"22.351"')), {"exit": 2, "stderr": "Expected `float | null`, got `str` - at `$.steps.time_ms.p50`"}),
    "null_step_time.json": (report_text(text=p50("null")), {"exit": 2, "stderr": "has no step times", "diff_exit": 0}),
    "int_400_digits.json": (report_text(text=lambda t: t.replace('"rss_peak_bytes": 408055808', '"rss_peak_bytes": ' + "9" * 400)),
                            {"exit": 2, "stderr": "an integer beyond 64 bits at $.host.rss_peak_bytes"}),
    "deep_nesting.json": (report_text(text=lambda t: t[:-1] + ', "extra": ' + nested(DEPTH) + "}"), {"exit": 2, "stderr": "nested too deeply"}),
    "deep_evidence.json": (report_text(lambda r: r["findings"].append({
        "id": "deep", "severity": "info", "title": "t", "evidence": {"x": json.loads(nested(400))}, "estimated_saving": 0.01,
        "advice": "", "fix": "", "docs": "", "area": "cpu"})), {"exit": 0}),
    "share_above_one.json": (report_text(lambda r: r["steps"]["breakdown"].update(dataloader=1.5)),
                             {"exit": 2, "stderr": "a share of step time above 1 (dataloader: 1.5) - at `$.steps`"}),
    "saving_above_one.json": (report_text(lambda r: r["findings"].append({
        "id": "x", "severity": "info", "title": "t", "evidence": {}, "estimated_saving": 2.0, "advice": "", "fix": "", "docs": "",
        "area": "cpu"})), {"exit": 2, "stderr": "Expected `float` <= 1.0 - at `$.findings[0].estimated_saving`"}),
    "negative_step_count.json": (report_text(lambda r: r["steps"].update(count=-1)), {"exit": 2, "stderr": "Expected `int` >= 0 - at `$.steps.count`"}),
    "negative_series_duration.json": (report_text(lambda r: r["steps"]["series"]["duration_ms"].__setitem__(3, -1.0)),
                                      {"exit": 2, "stderr": "at `$.steps.series.duration_ms[3]`"}),
    "control_characters.json": (report_text(lambda r: (
        r["run"].update(script=f"/tmp/{HOSTILE}.py"),
        r["findings"].append({"id": HOSTILE, "severity": "info", "title": HOSTILE, "evidence": {}, "estimated_saving": 0.01,
                              "advice": "", "fix": "", "docs": "", "area": "cpu"}),
    )), {"exit": 0}),
    "array_not_object.json": (b"[1, 2, 3]", {"exit": 2, "stderr": "is not a perfdoctor report (expected a JSON object)"}),
    "empty.json": (b"", {"exit": 2, "stderr": "is not valid JSON: empty"}),
    "utf16.json": (REFERENCE_REPORT.encode("utf-16"), {"exit": 2, "stderr": "is not valid JSON: invalid UTF-8"}),
    "other_schema.json": (report_text(lambda r: r.update(schema="perfdoctor.report/2")), {"exit": 2, "stderr": "has schema 'perfdoctor.report/2'"}),
}


def corpus() -> tuple[dict[str, bytes], dict[str, dict]]:
    """Every file of the corpus (path relative to this folder -> bytes) and the manifest."""
    files: dict[str, bytes] = {}
    manifest: dict[str, dict] = {}
    for name, (data, expected) in CASES.items():
        files[name] = data
        manifest[name] = expected
    for case, (base, damaged, expected) in RUN_CASES.items():
        for relative, data in damaged.items():
            files[f"runs/{case}/{relative}"] = data
        manifest[f"runs/{case}"] = {"base": base, **expected}
    for name, (data, expected) in REPORT_CASES.items():
        files[f"reports/{name}"] = data
        manifest[f"reports/{name}"] = {"check": CHECK, **expected}
    return files, manifest


def main() -> None:
    import shutil

    files, manifest = corpus()
    for folder in ("runs", "reports"):
        shutil.rmtree(HERE / folder, ignore_errors=True)
    for name, data in files.items():
        (HERE / name).parent.mkdir(parents=True, exist_ok=True)
        (HERE / name).write_bytes(data)
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
