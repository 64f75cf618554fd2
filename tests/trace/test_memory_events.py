"""Memory events in traces (torch.profiler's profile_memory=True): read into their own columns,
and turned into the ops whose allocations every profiled step leaves behind."""

from __future__ import annotations

import json

import torch

from perfdoctor.analysis.memory_events import leak_sites
from perfdoctor.trace import read_trace
from trace_builders import op

MIB = 2**20


def memory(ts: float, size: int, addr: int, *, device_type: int = 0, device_id: int = -1, tid: int = 1) -> dict:
    return {"ph": "i", "cat": "cpu_instant_event", "s": "t", "name": "[memory]", "pid": 1, "tid": tid, "ts": ts,
            "args": {"Total Reserved": 0, "Total Allocated": 0, "Bytes": size, "Addr": addr, "Device Type": device_type,
                     "Device Id": device_id}}


def traced(tmp_path, steps: int = 4, leak: bool = True, gpu: bool = False) -> list[dict]:
    events = []
    for k in range(steps):
        t0 = 1000.0 + 1000 * k
        events.append(op(f"ProfilerStep#{k + 6}", t0, 900, cat="user_annotation"))
        events.append(op("aten::linear", t0 + 10, 100))
        events.append(op("aten::addmm", t0 + 20, 50))
        events.append(op("aten::relu", t0 + 200, 100))
        events.append(op("aten::clamp_min", t0 + 210, 50))
        events.append(memory(t0 + 25, 4 * MIB, 0x1000 + k))  # addmm's output: freed within the step
        events.append(memory(t0 + 600, -4 * MIB, 0x1000 + k))
        kept = 3 * MIB if leak else 0
        device = {"device_type": 1, "device_id": 0} if gpu else {}
        events.append(memory(t0 + 220, 3 * MIB, 0x9000 + k, **device))  # relu's output: kept for good when leaking
        if not leak:
            events.append(memory(t0 + 800, -3 * MIB, 0x9000 + k, **device))
        events.append(memory(t0 + 700, 128, 0x5000 + k))  # a small survivor: bookkeeping
        if kept and k == 0:
            events.append(memory(t0 + 230, 2 * MIB, 0x7777))  # made once (a lazily made buffer), kept
            events.append(memory(t0 + 400, 8 * MIB, 0x8888))  # ... and outside any op
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": events}))
    return read_trace(path)


def test_memory_events_are_read_in_time_order(tmp_path):
    trace = traced(tmp_path)
    assert trace.memory is not None and len(trace.memory) == 4 * 4 + 2
    assert list(trace.memory.ts_ns) == sorted(trace.memory.ts_ns)
    assert trace.memory.ts_ns[0] == 1_025_000 and trace.memory.bytes[0] == 4 * MIB
    assert len(trace) == 4 * 5  # the instant events are not complete events



def test_leak_sites(tmp_path):
    sites = leak_sites(traced(tmp_path))
    assert [(s.op, s.device, s.bytes_per_step, s.allocations_per_step) for s in sites] == [("aten::clamp_min", "cpu", 3 * MIB, 1.0)]  # not the one-offs
    gpu = leak_sites(traced(tmp_path, gpu=True))
    assert gpu[0].device == "cuda:0"
    assert leak_sites(traced(tmp_path, leak=False)) == []
    assert leak_sites(traced(tmp_path, steps=2)) == []  # too few steps to see a pattern
    assert leak_sites(None) == []


def test_a_real_profile_names_the_op_behind_a_leak(tmp_path):
    from torch.profiler import ProfilerActivity, profile, schedule

    model = torch.nn.Sequential(torch.nn.Linear(16, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    kept = []

    def step():
        optimizer.zero_grad()
        hidden = model[1](model[0](torch.randn(64, 16)))
        model[2](hidden).sum().backward()
        optimizer.step()
        kept.append(hidden)  # 64 x 4096 float32: 1 MiB a step

    for _ in range(3):
        step()
    path = tmp_path / "real.json"
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                 schedule=schedule(wait=0, warmup=1, active=4), on_trace_ready=lambda p: p.export_chrome_trace(str(path))) as prof:
        for _ in range(5):
            step()
            prof.step()
    sites = leak_sites(read_trace(path))
    assert sites and sites[0].bytes_per_step == MIB and sites[0].device == "cpu"
    assert sites[0].op in ("aten::clamp_min", "aten::relu")
