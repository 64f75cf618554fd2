"""The training loop's DataLoader waits, by iterator class, counted for the step they start in."""

from __future__ import annotations

from trace_builders import KINETO_RESNET50_WORKERS_0, KINETO_RESNET50_WORKERS_4, annotation, op, write_trace

from perfdoctor.trace import read_trace
from perfdoctor.trace.dataloader import MULTI_PROCESS, SINGLE_PROCESS, iterator_of, loader_waits
from perfdoctor.trace.steps import step_windows

SINGLE = f"enumerate(DataLoader)#{SINGLE_PROCESS}.__next__"
MULTI = f"enumerate(DataLoader)#{MULTI_PROCESS}.__next__"


def test_iterator_classes_from_range_names():
    assert iterator_of(SINGLE) == SINGLE_PROCESS and iterator_of(MULTI) == MULTI_PROCESS
    assert iterator_of("enumerate(DataLoader)#_CombinedIter.__next__") == "_CombinedIter"
    assert iterator_of("enumerate(DataLoader)#something else") is None


def test_waits_are_top_level_main_thread_ranges_in_their_step(tmp_path):
    events = [
        annotation("ProfilerStep#7", 0, 1000),
        annotation(MULTI, 10, 100),
        annotation(MULTI, 20, 50),  # nested in the first (a wrapper's own next()): part of the same wait
        annotation("ProfilerStep#8", 1000, 1000),
        annotation(MULTI, 1010, 300),
        annotation(SINGLE, 1500, 40),  # a second, single-process loader (validation, say)
        annotation(MULTI, 2100, 70),  # after the last step: outside every window
        annotation(MULTI, 1020, 30, tid=2),  # another thread's (pin-memory thread, a worker thread): not the loop's wait
    ]
    trace = read_trace(write_trace(tmp_path, events))
    windows = step_windows(trace)
    multi, single = loader_waits(trace, windows)
    assert (multi.iterator, multi.num_workers, multi.multiprocess) == (MULTI_PROCESS, None, True)
    assert multi.step.tolist() == [0, 1, -1] and (multi.duration_ns // 1000).tolist() == [100, 300, 70]
    assert (single.iterator, single.num_workers) == (SINGLE_PROCESS, 0)
    assert single.step.tolist() == [1]


def test_no_dataloader_no_waits(tmp_path):
    trace = read_trace(write_trace(tmp_path, [annotation("ProfilerStep#1", 0, 100), op("aten::mm", 10, 50)]))
    assert loader_waits(trace, step_windows(trace)) == []


def test_real_traces_of_both_iterators():
    single = read_trace(KINETO_RESNET50_WORKERS_0)
    (waits,) = loader_waits(single, step_windows(single))
    assert waits.iterator == SINGLE_PROCESS and waits.step.tolist() == [0, 1, 2, 3, 4, 5]
    assert 65_000_000 < int(waits.duration_ns.mean()) < 75_000_000  # ~70 ms of loading in the loop, per batch
    multi = read_trace(KINETO_RESNET50_WORKERS_4)
    (waits,) = loader_waits(multi, step_windows(multi))
    assert waits.iterator == MULTI_PROCESS and waits.num_workers is None
