"""Benchmark: perfdoctor's trace reader against json, orjson and HTA on large CPU training traces.

Generates realistic Kineto traces by scaling up a real CPU training trace recorded with
torch.profiler (``tests/data/traces/cpu_training_torch2.13.pt.trace.json.gz``): its ProfilerStep
windows are repeated with shifted timestamps and fresh ids until the requested number of events
is reached, and written pretty-printed exactly as PyTorch 2.x writes them, plain and gzipped.

Every candidate runs in a fresh subprocess (so peak RSS is its own), several times; the table
shows the median wall time, the peak RSS (``ru_maxrss`` at the end of the process, which
includes the interpreter and imports) and the ratio of each to perfdoctor's.

    python benchmarks/trace_reader.py                      # 100k and 1M events, 3 repeats
    python benchmarks/trace_reader.py --sizes 100000 --repeats 1   # under a minute

HTA (``pip install HolisticTraceAnalysis``) is measured when the interpreter running this
script can import it, else skipped with a note; only its parse (``TraceAnalysis()``) is timed,
since its analyses need GPU kernels. It takes minutes at 1M events, so it runs ``--hta-repeats``
times (default once).
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
        ext_span = max(exts, default=0) - ext0 + 1
        flow_span = max(flows, default=0) - flow0 + 1
        result.append(_SeedStep(templates, end - start, ext_span, flow_span))
    metadata = [e for e in events if e.get("ph") == "M"]
    return result, metadata


def generate_trace(n_events: int, out_path: Path, seed_path: Path = SEED) -> int:
    """Write a Kineto-shaped CPU training trace of about n_events events; returns the count."""
    with gzip.open(seed_path, "rt") as f:
        seed = json.load(f)
    steps, metadata = _seed_steps(seed)
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


def write_gzip(plain: Path, out: Path, level: int = 6) -> None:
    with open(plain, "rb") as src, gzip.open(out, "wb", compresslevel=level) as dst:
        while block := src.read(1 << 22):
            dst.write(block)


# ---------------------------------------------------------------- candidates (run in a worker process)

def _run_perfdoctor(path: Path) -> str:
    sys.path.insert(0, str(REPO))
    from perfdoctor.trace import read_trace
    from perfdoctor.trace.comm import comm_steps
    from perfdoctor.trace.cpu import cpu_breakdown, host_op_stats, top_operators
    from perfdoctor.trace.gpu import gpu_steps
    from perfdoctor.trace.steps import step_windows

    trace = read_trace(path)
    windows = step_windows(trace)
    cpu_breakdown(trace, windows)
    top_operators(trace, windows)
    host_op_stats(trace, windows)
    gpu_steps(trace, windows)
    comm_steps(trace, windows)
    return f"{len(trace)} complete events, {len(windows)} steps"


def _open_text(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _run_json(path: Path) -> str:
    with _open_text(path) as fh:
        trace = json.load(fh)
    return f"{len(trace['traceEvents'])} events"


def _run_orjson(path: Path) -> str:
    import orjson

    with _open_text(path) as fh:
        trace = orjson.loads(fh.read())
    return f"{len(trace['traceEvents'])} events"


def _run_hta(path: Path) -> str:
    import shutil

    from hta.trace_analysis import TraceAnalysis

    # HTA reads a directory of per-rank traces; give it one holding only this file.
    folder = Path(tempfile.mkdtemp(prefix="hta-"))
    try:
        shutil.copy(path, folder / f"rank-0.{path.name}")
        # Parsing is what TraceAnalysis() does; its analyses (temporal breakdown...) need GPU
        # kernels and fail on a CPU-only trace, so only the parse is timed.
        analyzer = TraceAnalysis(trace_dir=str(folder))
        return f"TraceAnalysis() parse: {len(analyzer.t.get_trace(0))} rows"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


CANDIDATES = {
    "perfdoctor": (_run_perfdoctor, None),
    "json.load": (_run_json, None),
    "orjson.loads": (_run_orjson, "orjson"),
    "HTA": (_run_hta, "hta"),
}


def _worker(name: str, path: Path) -> None:
    import resource

    start = time.perf_counter()
    note = CANDIDATES[name][0](path)
    seconds = time.perf_counter() - start
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "rss_mib": rss_kib / 1024, "note": note}))


# ---------------------------------------------------------------- driver

@dataclass
class Result:
    candidate: str
    size: int
    fmt: str
    seconds: float | None = None
    rss_mib: float | None = None
    note: str = ""


def _available(module: str | None) -> bool:
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def measure(name: str, path: Path, repeats: int, timeout: float) -> tuple[float | None, float | None, str]:
    times, peaks, note = [], [], ""
    for _ in range(repeats):
        try:
            done = subprocess.run(
                [sys.executable, __file__, "--worker", name, str(path)],
                capture_output=True, text=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return None, None, f"timed out after {timeout:.0f} s"
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            return None, None, f"failed: {lines[-1] if lines else done.returncode}"
        report = json.loads(done.stdout.strip().splitlines()[-1])
        times.append(report["seconds"])
        peaks.append(report["rss_mib"])
        note = report["note"]
    return statistics.median(times), max(peaks), note


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.2f} {unit}" if unit == "s" else f"{value:.0f} {unit}"


def _ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.1f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="events per trace")
    parser.add_argument("--repeats", type=int, default=3, help="runs per candidate (median time, max RSS)")
    parser.add_argument("--hta-repeats", type=int, default=1, help="runs for HTA (minutes per run at 1M events)")
    parser.add_argument("--formats", nargs="+", default=["json", "json.gz"], choices=["json", "json.gz"])
    parser.add_argument("--skip", nargs="*", default=[], choices=list(CANDIDATES), help="candidates to leave out")
    parser.add_argument("--dir", type=Path, help="where to write the traces (default: a temporary folder)")
    parser.add_argument("--seed", type=Path, default=SEED, help="trace to scale up")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is abandoned")
    parser.add_argument("--worker", nargs=2, metavar=("CANDIDATE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], Path(args.worker[1]))
        return 0

    folder = args.dir or Path(tempfile.mkdtemp(prefix="perfdoctor-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; traces in {folder}")
    skipped_notes = []
    for name, (_, module) in CANDIDATES.items():
        if name not in args.skip and not _available(module):
            skipped_notes.append(f"{name}: not installed ({module}), skipped")
    results: list[Result] = []
    for size in args.sizes:
        plain = folder / f"cpu_training_{size}.pt.trace.json"
        if not plain.exists():
            start = time.perf_counter()
            written = generate_trace(size, plain, args.seed)
            print(f"generated {plain.name}: {written} events, {plain.stat().st_size / 2**20:.0f} MiB "
                  f"in {time.perf_counter() - start:.1f} s")
        packed = plain.with_name(plain.name + ".gz")
        if "json.gz" in args.formats and not packed.exists():
            write_gzip(plain, packed)
        for fmt in args.formats:
            path = plain if fmt == "json" else packed
            for name, (_, module) in CANDIDATES.items():
                if name in args.skip or not _available(module):
                    continue
                repeats = args.hta_repeats if name == "HTA" else args.repeats
                seconds, rss, note = measure(name, path, repeats, args.timeout)
                results.append(Result(name, size, fmt, seconds, rss, note))
                print(f"  {size:>9,} {fmt:<7} {name:<12} {_fmt(seconds, 's'):>9} {_fmt(rss, 'MiB'):>9}  {note}",
                      flush=True)

    print()
    header = "| events | file | reader | median time | peak RSS | time vs perfdoctor | RSS vs perfdoctor |"
    print(header)
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        for fmt in args.formats:
            rows = [r for r in results if r.size == size and r.fmt == fmt]
            base = next((r for r in rows if r.candidate == "perfdoctor"), None)
            for r in rows:
                print(f"| {size:,} | .{fmt} | {r.candidate} | {_fmt(r.seconds, 's')} | {_fmt(r.rss_mib, 'MiB')} | "
                      f"{_ratio(r.seconds, base.seconds if base else None)} | "
                      f"{_ratio(r.rss_mib, base.rss_mib if base else None)} |")
    for note in skipped_notes:
        print(f"note: {note}")
    print("time: median wall time inside a fresh process (imports included); RSS: ru_maxrss of that process.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
