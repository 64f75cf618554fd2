"""Places in a trace that findings point at: where they are, what they show, and the findings that
carry them (on real GPU traces)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from perfdoctor.analysis.places import CONTEXT_NS, trace_places
from perfdoctor.trace import read_trace
from perfdoctor.trace.steps import step_windows

REPO = Path(__file__).resolve().parents[2]
CPU_TRACE = next((REPO / "tests" / "data" / "run_reference_cnn" / "tb").rglob("*.pt.trace.json.gz"))


def test_the_slowest_step_and_the_longest_dataloader_wait():
    trace = read_trace(CPU_TRACE)
    places = trace_places(trace, "tb/x.pt.trace.json.gz")
    windows = step_windows(trace)
    slowest = max(windows, key=lambda w: w.duration_ns)
    assert places.slowest_step is not None
    assert (places.slowest_step.step, places.slowest_step.start_ns, places.slowest_step.end_ns) == (slowest.number, slowest.start_ns, slowest.end_ns)
    wait = places.longest_dataloader_wait
    assert wait is not None and wait.op == "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__"
    waits = [i for i in range(len(trace)) if trace.name(i) == wait.op]
    longest = max(waits, key=lambda i: trace.dur_ns[i])
    # The window holds the wait and some context either side, inside its step.
    step = next(w for w in windows if w.number == wait.step)
    assert step.start_ns <= wait.start_ns <= trace.ts_ns[longest] and trace.end_ns[longest] <= wait.end_ns <= step.end_ns
    assert wait.end_ns - wait.start_ns >= min(step.duration_ns, CONTEXT_NS)
    assert "the longest DataLoader wait" in wait.label and f"step {wait.step}" in wait.label
    assert places.syncs == {} and places.pageable_copies == {}  # a CPU trace: neither


def test_syncs_and_pageable_copies_per_op_on_a_gpu_trace(shared_traces):
    trace = read_trace(shared_traces / "a100_alexnet_sync" / "trace.pt.trace.json.gz")
    places = trace_places(trace, "trace.pt.trace.json.gz", rank=0)
    assert set(places.syncs) >= {"aten::to", "(no CPU op)"}
    copy = places.pageable_copies["aten::to"]
    assert copy.op == "Memcpy HtoD (Pageable -> Device)" and copy.rank == 0
    # The longest pageable copy issued by aten::to is inside the window shown.
    copies = [i for i in range(len(trace)) if trace.name(i) == copy.op]
    longest = max(copies, key=lambda i: trace.dur_ns[i])
    assert copy.start_ns <= trace.ts_ns[longest] and trace.end_ns[longest] <= copy.end_ns
    assert "34.78 ms" in copy.label


def test_findings_carry_their_places(shared_traces, tmp_path):
    from perfdoctor.cli import main

    folder = shutil.copytree(shared_traces / "a100_alexnet_sync", tmp_path / "a100")
    assert main(["report", "-q", str(folder)]) == 0
    findings = {f["id"]: f for f in json.loads((folder / "perfdoctor-report" / "report.json").read_text())["findings"]}
    sync = findings["host-device-sync"]["locations"]
    assert [place["op"] for place in sync][:1] == ["aten::to"] and all(place["trace"].endswith("trace.pt.trace.json.gz") for place in sync)
    assert findings["pageable-memcpy"]["locations"][0]["op"] == "Memcpy HtoD (Pageable -> Device)"
    # A finding about the run as a whole points nowhere in particular.
    assert all(f["locations"] == [] for key, f in findings.items() if key not in ("host-device-sync", "pageable-memcpy"))
