"""Benchmark: perfdoctor's trace reader against json, orjson and HTA on large CPU training traces.

Generates realistic Kineto traces by scaling up a real CPU training trace recorded with
torch.profiler (``tests/data/traces/cpu_training_torch2.13.pt.trace.json.gz``): its ProfilerStep
windows are repeated with shifted timestamps and fresh ids until the requested number of events
is reached, and written pretty-printed exactly as PyTorch 2.x writes them, plain and gzipped.

Every candidate runs in a fresh subprocess (so peak RSS is its own), several times; the table
shows the median wall time, the peak RSS (``ru_maxrss`` at the end of the process, which
includes the interpreter and imports) and the ratio of each to perfdoctor's.

    python benchmarks/trace_reader.py                      # 100k and 1M events, 3 repeats
    python benchmarks/trace_reader.py --sizes 100000 --repeats 1 --skip hta   # under a minute
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "tests" / "data" / "traces" / "cpu_training_torch2.13.pt.trace.json.gz"


# ---------------------------------------------------------------- trace generation

def _fmt_num(value: float | int) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _render_args(args: dict) -> str:
    return ", ".join(f"{json.dumps(k)}: {json.dumps(v, separators=(', ', ': '))}" for k, v in args.items())


def _esc(text: str) -> str:
    return text.replace("%", "%%")


def _event_template(event: dict, step_start: float) -> tuple[str, float]:
    """One seed event as a %-template with slots for ts, External id, Ev Idx, flow id and step."""
    ph = event["ph"]
    ts_rel = float(event["ts"]) - step_start
    if ph == "X":
        args = dict(event.get("args", {}))
        has_ext = args.pop("External id", None) is not None
        has_idx = args.pop("Ev Idx", None) is not None
        name = event["name"]
        name_json = '"ProfilerStep#%(step)d"' if name.startswith("ProfilerStep#") else _esc(json.dumps(name))
        parts = (['"External id": %(ext)d'] if has_ext else []) + ([_esc(_render_args(args))] if args else [])
        if has_idx:
            parts.append('"Ev Idx": %(idx)d')
        text = (
            '  {\n    "ph": "X",\n    "cat": ' + _esc(json.dumps(event["cat"])) + ',\n    "name": ' + name_json
            + ',\n    "pid": %d,\n    "tid": %d,\n' % (event["pid"], event["tid"])
            + '    "ts": %(ts).3f,\n    "dur": ' + _fmt_num(float(event["dur"])) + "\n    ,\n"
            + '    "args": {\n      ' + (parts[0] + "," + ", ".join(parts[1:]) if len(parts) > 1 else "".join(parts))
            + "\n    }\n  }"
        )
        return text, ts_rel
    bp = ',\n    "bp": "e"' if ph == "f" else ""
    text = (
        '  {\n    "ph": "%s",\n    "id": %%(flow)d,\n    "pid": %d,\n    "tid": %d,\n    "ts": %%(ts).3f,\n'
        '    "cat": "fwdbwd",\n    "name": "fwdbwd"%s\n    \n  }' % (ph, event["pid"], event["tid"], bp)
    )
    return text, ts_rel


@dataclass
class _SeedStep:
    templates: list[tuple[str, float, int, int]]  # (template, ts offset, ext offset, flow offset)
    duration_us: float
    ext_span: int
    flow_span: int


def _seed_steps(seed: dict) -> tuple[list[_SeedStep], list[dict]]:
    events = seed["traceEvents"]
    steps = sorted(
        (e for e in events if e.get("ph") == "X" and str(e.get("name", "")).startswith("ProfilerStep#")),
        key=lambda e: e["ts"],
    )
    result = []
    for step in steps:
        start, end = float(step["ts"]), float(step["ts"]) + float(step["dur"])
        members = [
            e for e in events
            if e.get("ph") in ("X", "s", "f") and e.get("cat") != "Trace" and start <= float(e["ts"]) <= end
        ]
        exts = [e["args"]["External id"] for e in members if e["ph"] == "X" and "External id" in e.get("args", {})]
        flows = [e["id"] for e in members if e["ph"] in ("s", "f")]
        ext0, flow0 = min(exts, default=0), min(flows, default=0)
        templates = []
        for e in sorted(members, key=lambda e: float(e["ts"])):
            text, ts_rel = _event_template(e, start)
            ext_off = e.get("args", {}).get("External id", ext0) - ext0 if e["ph"] == "X" else 0
            flow_off = e.get("id", flow0) - flow0 if e["ph"] != "X" else 0
            templates.append((text, ts_rel, ext_off, flow_off))
        result.append(_SeedStep(templates, end - start, max(exts, default=0) - ext0 + 1, max(flows, default=0) - flow0 + 1))
    metadata = [e for e in events if e.get("ph") == "M"]
    return result, metadata


def generate_trace(n_events: int, out_path: Path, seed_path: Path = SEED) -> int:
    """Write a Kineto-shaped CPU training trace of about n_events events; returns the count."""
    with gzip.open(seed_path, "rt") as f:
        seed = json.load(f)
    steps, metadata = _seed_steps(seed)
    pid = metadata[0]["pid"] if metadata else 1
    base_ts = float(min(e["ts"] for e in seed["traceEvents"] if isinstance(e.get("ts"), (int, float))))
    written = 0
    ts0 = base_ts + 100.0
    ext, flow, ev_idx, step_no = 1000, 1, 0, 1
    with open(out_path, "w") as out:
        out.write(
            ' {\n    "schemaVersion": 1,\n    "deviceProperties": [],\n    \n'
            '      "record_shapes": 1,\n      "host_name": "benchmark",\n'
            '    "displayTimeUnit": "ms",\n    "baseTimeNanoseconds": 1790857026000000000,\n'
            '    "traceEvents": [\n    \n'
        )
        pieces = []
        for m in metadata:
            pieces.append("  " + json.dumps(m, indent=2).replace("\n", "\n  "))
            written += 1
        while written < n_events:
            step = steps[(step_no - 1) % len(steps)]
            buf = []
            for template, ts_rel, ext_off, flow_off in step.templates:
                buf.append(template % {
                    "ts": ts0 + ts_rel, "ext": ext + ext_off, "idx": ev_idx, "flow": flow + flow_off, "step": step_no,
                })
                ev_idx += 1
            pieces.extend(buf)
            written += len(buf)
            ts0 += step.duration_us + 5.0
            ext += step.ext_span
            flow += step.flow_span
            step_no += 1
            if len(pieces) > 20000:
                out.write(",\n".join(pieces) + ",\n")
                pieces = []
        pieces.append(
            '  {\n    "ph": "X",\n    "cat": "Trace",\n    "name": "PyTorch Profiler (0)",\n'
            '    "pid": "Spans",\n    "tid": "PyTorch Profiler",\n    "ts": %.3f,\n    "dur": %.3f\n'
            '    ,\n    "args": {\n      "Op count": 0\n    }\n  }' % (base_ts, ts0 - base_ts)
        )
        out.write(",\n".join(pieces))
        out.write('\n  ],"traceName": "%s" }' % out_path.name)
    return written + 1


if __name__ == "__main__":
    main = None
