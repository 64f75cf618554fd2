"""Step windows and the attribution of device work to the step that launched it."""

from __future__ import annotations

import numpy as np
from trace_builders import annotation, cpu_training_events, gpu_training_events, op, shared_trace, write_trace

from perfdoctor.trace import Category, read_trace
from perfdoctor.trace.steps import step_of_events, step_windows
from perfdoctor.trace.threads import ThreadId, autograd_threads, main_thread


def test_windows_from_profiler_steps(tmp_path):
    events = [annotation("ProfilerStep#7", 100, 50), annotation("ProfilerStep#6", 0, 100),
              annotation("ProfilerStep#8", 150, 10), op("aten::add", 5, 1), op("aten::x", 0, 500, tid=2)]
    trace = read_trace(write_trace(tmp_path, events))
    windows = step_windows(trace)
    assert [(w.number, w.start_ns, w.end_ns, w.synthetic) for w in windows] == [
        (6, 0, 100_000, False), (7, 100_000, 150_000, False), (8, 150_000, 160_000, False)]
    assert windows[0].duration_ns == 100_000
    assert main_thread(trace) == ThreadId(1, 1)


def test_old_schema_profiler_step_as_cpu_op(tmp_path):
    events = [op("ProfilerStep#1", 0, 10, cat="Operator"), op("ProfilerStep#2", 10, 10, cat="Operator")]
    assert [w.number for w in step_windows(read_trace(write_trace(tmp_path, events)))] == [1, 2]


def test_no_profiler_step_is_one_synthetic_window(tmp_path):
    events = [op("aten::add", 10, 5), op("aten::mul", 40, 20, tid=3),
              op("PyTorch Profiler (0)", 0, 10_000, cat="Trace", pid="Spans", tid="PyTorch Profiler")]
    trace = read_trace(write_trace(tmp_path, events))
    (window,) = step_windows(trace)
    assert window.synthetic and window.number == 0
    assert (window.start_ns, window.end_ns) == (10_000, 60_000)  # the profiler's own span is not the trace
    assert main_thread(trace) == ThreadId(1, 3)  # the busiest thread, without ProfilerSteps


def test_duplicate_and_overlapping_steps(tmp_path):
    events = [annotation("ProfilerStep#1", 0, 120), annotation("ProfilerStep#1", 0, 50),
              annotation("ProfilerStep#2", 100, 100)]
    windows = step_windows(read_trace(write_trace(tmp_path, events)))
    assert [(w.number, w.start_ns, w.end_ns) for w in windows] == [(1, 0, 100_000), (2, 100_000, 200_000)]


def test_autograd_thread_detected(tmp_path):
    trace = read_trace(write_trace(tmp_path, cpu_training_events(tid2=2)))
    assert main_thread(trace) == ThreadId(1, 1)
    assert autograd_threads(trace) == [ThreadId(1, 2)]
    assert autograd_threads(read_trace(write_trace(tmp_path, cpu_training_events()))) == []


def test_device_work_belongs_to_the_launching_step(tmp_path):
    trace = read_trace(write_trace(tmp_path, gpu_training_events()))
    windows = step_windows(trace)
    step = step_of_events(trace, windows)
    name = {trace.names[n]: i for i, n in enumerate(trace.name_id)}
    # launched at 980 us in step 1, ran at 1010-1050 us: still step 1
    assert trace.ts_ns[name["void at::native::elementwise_kernel<128, 2>"]] > windows[0].end_ns
    assert step[name["void at::native::elementwise_kernel<128, 2>"]] == 0
    assert step[name["void at::native::elementwise_kernel<128, 4>"]] == 1
    kernels = trace.cat == Category.KERNEL
    assert np.bincount(step[kernels]).tolist() == [6, 1]


def test_real_traces_steps():
    ddp = read_trace(shared_trace("a100_ddp_nccl_2rank/rank0.pt.trace.json.gz"))
    windows = step_windows(ddp)
    assert [w.number for w in windows] == [4, 5, 6]
    assert [round(w.duration_ns / 1e6, 3) for w in windows] == [222.442, 219.727, 224.936]
    assert autograd_threads(ddp) == [ThreadId(2910249, 2919752)]
    v100 = read_trace(shared_trace("v100_training/rank0.pt.trace.json.gz"))
    assert [w.number for w in step_windows(v100)] == [101, 102, 103, 104, 105]
    alexnet = step_windows(read_trace(shared_trace("a100_alexnet_sync/trace.pt.trace.json.gz")))
    assert len(alexnet) == 1 and alexnet[0].synthetic
