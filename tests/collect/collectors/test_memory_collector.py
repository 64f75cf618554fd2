"""The memory collector: samples at step ends within its cost budget, the process's and its
children's resident memory, the CUDA allocator's counters (over a fake torch: no GPU here), and an
out-of-memory error recorded with where it happened."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import time
import types

import pytest
import torch

from collect_helpers import Harness
from perfdoctor.collect.collectors.memory import MemoryCollector, child_pids
from perfdoctor.collect.cuda_peaks import RESET, STATS

MIB = 2**20
EVERY_STEP = 1e9  # a budget so large that every step end is sampled


def steps(collector: MemoryCollector, count: int, first: int = 0, work=None) -> None:
    for index in range(first, first + count):
        if work is not None:
            work(index)
        collector._on_step_end(index)


def test_samples_at_step_ends_follow_the_process_memory(tmp_path):
    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=EVERY_STEP)
    collector.start(harness.ctx)
    kept = []

    def touch(index: int) -> None:  # 2 MiB of fresh pages every step (not memory the allocator already holds)
        block = mmap.mmap(-1, 2 * MIB)
        block.write(b"x" * (2 * MIB))
        kept.append(block)

    steps(collector, 30, work=touch)
    collector.stop()
    raw = harness.read("memory")
    samples = raw["samples"]
    assert samples["step"] == list(range(1, 31))  # memory after 1, 2, ... steps
    rss = samples["rss"]
    assert all(value > 10 * MIB for value in rss)
    assert rss[-1] - rss[0] >= 40 * MIB
    assert "cuda_allocated" not in samples or set(samples["cuda_allocated"]) == {None}
    assert raw["meta"]["limit_bytes"] and raw["meta"]["limit_source"] in ("cgroup", "ram")
    assert raw["cost"]["samples"] == 30 and raw["cost"]["ns"] > 0
    assert all(t is not None for t in samples["t_ns"]) and samples["t_ns"] == sorted(samples["t_ns"])


def test_the_budget_spaces_samples_out(tmp_path):
    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=1e-6, samples_per_age=0)  # a sample costing ~10 us waits ~10 s for the next
    collector.start(harness.ctx)
    steps(collector, 200)
    collector.stop()
    assert harness.read("memory")["samples"]["step"] == [1]


def test_a_short_run_still_gets_enough_samples_for_a_trend(tmp_path):
    # The budget alone would allow one sample in this 0.4 s run; the floor (the run's age / 20 at
    # most between samples) keeps sampling through to its end, more often early than late.
    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=1e-6)
    collector.start(harness.ctx)
    steps(collector, 200, work=lambda index: time.sleep(0.002))
    collector.stop()
    raw = harness.read("memory")
    assert raw["meta"]["samples_per_age"] == 20  # the floor is recorded with the budget
    taken = raw["samples"]["step"]
    assert taken[:3] == [1, 2, 3]  # while the run is young, every step end
    late = [step for step in taken if step > 100]
    assert len(late) >= 10 and max(taken) > 180  # ~20 x ln(2) in the last half: enough to fit a trend
    assert len(taken) < 120  # and not every step: the gap grows with the run's age


def test_the_sampling_cost_is_charged_to_perfdoctor(tmp_path):
    harness = Harness(tmp_path, steps=True)
    collector = MemoryCollector(budget_share=EVERY_STEP)
    collector.start(harness.ctx)
    harness.clock._reset_step(harness.clock.now() + harness.clock.origin_ns)
    collector._on_step_end(0)
    assert harness.clock._overhead_ns > 0
    collector.stop()


def test_folded_batch_steps_restart_the_samples(tmp_path):
    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=EVERY_STEP)
    collector.start(harness.ctx)
    steps(collector, 5)  # batch-steps (an evaluation pass before training)
    harness.writer.flush()
    steps(collector, 4)  # the first optimizer step folded them: numbering starts again
    collector.stop()
    assert harness.read("memory")["samples"]["step"] == [1, 2, 3, 4]


def test_children_are_found_and_their_memory_counted(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(40 * 2**20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while child.pid not in child_pids(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in child_pids(os.getpid())
        harness = Harness(tmp_path)
        collector = MemoryCollector(budget_share=EVERY_STEP)
        collector.start(harness.ctx)
        time.sleep(0.5)  # the child has allocated its 40 MiB
        steps(collector, 3)
        collector.stop()
        samples = harness.read("memory")["samples"]
        assert samples["children"][-1] >= 1 and samples["children_rss"][-1] >= 40 * MIB
    finally:
        child.kill()
        child.wait()


def test_a_forked_worker_is_seen_soon_after_it_starts(tmp_path):
    import multiprocessing

    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=EVERY_STEP)
    collector.start(harness.ctx)
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(20,))
    worker.start()
    try:
        deadline = time.monotonic() + 4  # well before the periodic refresh (every 5 s)
        while worker.pid not in {statm.pid for statm in collector._children} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.pid in {statm.pid for statm in collector._children}
    finally:
        worker.kill()
        worker.join()
        collector.stop()


class FakeCuda:
    """torch.cuda and torch._C as the collector uses them, over fake allocator counters."""

    def __init__(self) -> None:
        self.current, self.peak, self.reserved, self.retries = 0, 0, 0, 0
        fake = self

        def stats(device):
            return {
                "allocated_bytes": {"all": {"current": fake.current, "peak": fake.peak}},
                "reserved_bytes": {"all": {"current": fake.reserved, "peak": fake.reserved}},
                "inactive_split_bytes": {"all": {"current": fake.reserved - fake.current, "peak": 0}},
                "num_alloc_retries": fake.retries, "num_ooms": 0,
            }

        def reset(device):
            fake.peak = fake.current

        self._C = types.SimpleNamespace(**{STATS: stats, RESET: reset})
        properties = types.SimpleNamespace(total_memory=80 * 2**30, name="Fake H100")
        self.cuda = types.SimpleNamespace(
            is_initialized=lambda: True, current_device=lambda: 0, get_device_properties=lambda d: properties,
            get_per_process_memory_fraction=lambda d: 1.0,
            memory_allocated=lambda d: fake.current, memory_reserved=lambda d: fake.reserved,
            max_memory_allocated=lambda d: self._C._cuda_memoryStats(d)["allocated_bytes"]["all"]["peak"],
            max_memory_reserved=lambda d: fake.reserved,
            memory_stats=lambda d: {"num_alloc_retries": fake.retries, "num_ooms": 1},
            memory_summary=lambda d: "|===| PyTorch CUDA memory summary |===|",
        )

    def step(self, peak: int, keep: int) -> None:
        self.current += peak
        self.peak = max(self.peak, self.current)
        self.reserved = max(self.reserved, self.current)
        self.current -= peak - keep


def test_cuda_counters_with_per_window_peaks(tmp_path):
    fake = FakeCuda()
    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=EVERY_STEP)
    collector.start(harness.ctx)
    collector._torch = fake
    steps(collector, 4, work=lambda i: fake.step(peak=(8 if i == 1 else 4) * MIB, keep=MIB))  # leaks 1 MiB a step
    collector.stop()
    raw = harness.read("memory")
    assert raw["cuda"]["total_bytes"] == 80 * 2**30 and raw["cuda"]["peaks_per_window"] is True
    samples = raw["samples"]
    assert samples["cuda_allocated"] == [MIB, 2 * MIB, 3 * MIB, 4 * MIB]
    assert samples["cuda_peak_allocated"] == [4 * MIB, 9 * MIB, 6 * MIB, 7 * MIB]  # each window's own
    assert fake.cuda.max_memory_allocated(0) == 9 * MIB  # the script still sees the run's peak
    assert samples["cuda_reserved"][-1] == 9 * MIB and samples["cuda_inactive_split"][-1] == 5 * MIB


class Block(torch.nn.Module):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def forward(self, x):
        raise self.error


class Model(torch.nn.Module):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(2, 2), Block(error))

    def forward(self, x):
        return self.encoder(x)


def raised(call) -> BaseException:
    try:
        call()
    except BaseException as error:  # noqa: BLE001 - the test hands it on as the session would
        return error
    raise AssertionError("nothing was raised")


def test_a_cuda_oom_in_a_forward_is_recorded_with_its_module(tmp_path):
    fake = FakeCuda()
    fake.current = fake.reserved = 70 * 2**30
    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=EVERY_STEP)
    collector.start(harness.ctx)
    collector._torch = fake
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
    model = Model(oom)
    error = raised(lambda: model(torch.zeros(1, 2)))
    collector.script_raised(error)
    collector.stop()
    record = harness.read("memory")["oom"]
    assert record["kind"] == "cuda" and record["phase"] == "forward" and record["step"] == 0
    assert record["module_type"] == "Block" and record["module_path"] == "Model.encoder.1"
    assert record["source"] and "test_memory_collector.py" in record["source"] and "raise self.error" in record["source"]
    assert record["cuda"]["allocated_bytes"] == 70 * 2**30 and "memory summary" in record["cuda"]["summary"]
    assert record["message"].startswith("CUDA out of memory")


def test_phases_from_the_traceback(tmp_path):
    class Exploding(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            raise MemoryError()

    class Greedy(torch.optim.SGD):
        def step(self, closure=None):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory")

    harness = Harness(tmp_path)
    collector = MemoryCollector(budget_share=EVERY_STEP)
    collector.start(harness.ctx)
    x = torch.ones(2, requires_grad=True)
    backward = raised(lambda: Exploding.apply(x).sum().backward())
    optimizer = raised(lambda: Greedy([x], lr=0.1).step())
    other = raised(lambda: [bytearray(1)] and (_ for _ in ()).throw(MemoryError()))
    not_memory = raised(lambda: 1 / 0)
    stream = harness.ctx.stream("memory")
    found = []
    for error in (backward, optimizer, other, not_memory):
        collector.script_raised(error)
        harness.writer.flush()
        found.append(harness.rundir.read_raw_file("memory", None)["oom"])
    collector.stop()
    assert [f["phase"] for f in found[:3]] == ["backward", "optimizer", "other"]
    assert [f["kind"] for f in found[:3]] == ["host", "host", "host"]
    assert found[3] == found[2]  # a ZeroDivisionError is not an out-of-memory error: nothing new
    assert stream is harness.ctx.stream("memory")


@pytest.mark.parametrize("text, kind", [
    ("CUDA out of memory. Tried to allocate 20.00 MiB", "cuda"),
    ("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)", "cuda"),
    ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1000000", "host"),
    ("shape mismatch", None),
])
def test_which_errors_are_out_of_memory(text, kind):
    from perfdoctor.collect.oom import oom_kind

    assert oom_kind(RuntimeError(text)) == kind
    assert oom_kind(torch.cuda.OutOfMemoryError("whatever")) == "cuda"
    wrapped = RuntimeError("DataLoader worker failed")
    wrapped.__cause__ = MemoryError()
    assert oom_kind(wrapped) == "host"
