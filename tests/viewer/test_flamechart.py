"""A trace as the vendored viewer reads it: nested begin/end pairs per track, the window cut out,
the focused event's track first, no metadata that stops speedscope's import."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfdoctor.trace import read_trace
from perfdoctor.trace.steps import step_windows
from perfdoctor.viewer.flamechart import Window, clamp, viewer_document, whole

REPO = Path(__file__).resolve().parents[2]
CPU_TRACE = next((REPO / "tests" / "data" / "run_reference_cnn" / "tb").rglob("*.pt.trace.json.gz"))


def tracks(document):
    """Per track: its name and its B/E events in the order written."""
    names = {e["pid"]: e["args"]["name"] for e in document["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    events: dict[int, list[dict]] = {pid: [] for pid in names}
    for event in document["traceEvents"]:
        if event["ph"] in ("B", "E"):
            events[event["pid"]].append(event)
    return names, events


def assert_properly_nested(events, span_us):
    """What speedscope needs: every E closes the innermost open B, in time order, inside the root."""
    stack = []
    last = 0.0
    for event in events:
        assert event["ts"] >= last - 1e-9, "events out of time order"
        last = event["ts"]
        if event["ph"] == "B":
            stack.append(event["name"])
        else:
            assert stack and stack[-1] == event["name"], f"{event['name']} ends while {stack[-1:]} is open"
            stack.pop()
    assert not stack
    assert 0.0 <= last <= span_us + 1e-6


def test_every_track_nests_and_shares_the_window(shared_traces):
    trace = read_trace(shared_traces / "v100_training" / "rank0.pt.trace.json.gz")  # Kineto's ranges overlap by rounding here
    window = whole(trace)
    document = viewer_document(trace, window, title="whole")
    names, events = tracks(document)
    assert len(names) >= 3 and any("GPU" in name or "stream" in name for name in names.values())
    for pid, track in events.items():
        assert track, f"track {names[pid]} has no events (speedscope rejects a named thread without any)"
        assert track[0] == {"ph": "B", "name": "whole", "ts": 0.0, "pid": pid, "tid": pid}  # one time axis for all
        assert_properly_nested(track, window.duration_ns / 1e3)
    # Names only: speedscope would make every call a frame of its own with its args in the name.
    assert all("args" not in e for e in document["traceEvents"] if e["ph"] in ("B", "E"))


def test_the_training_loop_thread_comes_first_and_the_focus_before_it(shared_traces):
    trace = read_trace(shared_traces / "a100_alexnet_sync" / "trace.pt.trace.json.gz")
    names, _ = tracks(viewer_document(trace, whole(trace)))
    assert list(names.values())[0].startswith("host · training loop")
    focused, _ = tracks(viewer_document(trace, whole(trace), focus="Memcpy HtoD (Pageable -> Device)"))
    assert "GPU" in list(focused.values())[0] and "stream" in list(focused.values())[0]


def test_a_window_keeps_only_what_overlaps_it_clipped_to_it():
    trace = read_trace(CPU_TRACE)
    step = step_windows(trace)[1]
    window = clamp(trace, step.start_ns, step.end_ns)
    assert window == Window(step.start_ns, step.end_ns)
    _, events = tracks(viewer_document(trace, window, title="step"))
    (main,) = [track for track in events.values() if any(e["name"].startswith("ProfilerStep#") for e in track)]
    steps = {e["name"] for e in main if e["name"].startswith("ProfilerStep#")}
    assert steps == {f"ProfilerStep#{step.number}"}
    assert max(e["ts"] for e in main) == pytest.approx(step.duration_ns / 1e3)


def test_a_window_outside_the_trace_is_none():
    trace = read_trace(CPU_TRACE)
    full = whole(trace)
    assert clamp(trace, full.end_ns + 10, full.end_ns + 20) is None
    assert clamp(trace, None, None) == full


def test_a_range_cut_by_the_window_does_not_cut_the_step_that_encloses_the_rest():
    """The previous step's optimizer range often ends just after the next ProfilerStep starts: cut
    at the window's start, it begins with the step and must not become the step's parent."""
    trace = read_trace(CPU_TRACE)
    step = step_windows(trace)[1]
    straddling = [trace.name(i) for i in range(len(trace)) if trace.ts_ns[i] < step.start_ns < trace.end_ns[i]]
    assert "Optimizer.step#Adam.step" in straddling  # step 4's optimizer range ends inside step 5
    window = Window(step.start_ns, step.end_ns)
    _, events = tracks(viewer_document(trace, window, title="step"))
    (main,) = [track for track in events.values() if any(e["name"].startswith("ProfilerStep#") for e in track)]
    opened = next(e for e in main if e["name"] == f"ProfilerStep#{step.number}" and e["ph"] == "B")
    closed = next(e for e in main if e["name"] == f"ProfilerStep#{step.number}" and e["ph"] == "E")
    assert opened["ts"] == 0.0 and closed["ts"] == pytest.approx(step.duration_ns / 1e3)  # the whole step, not cut short
    assert main[1] == opened  # right under the window's root
    assert_properly_nested(main, step.duration_ns / 1e3)
