"""Per-window CUDA peaks without the script noticing: perfdoctor's resets fold the peaks they clear
into a shadow, and the script's own reads and resets of the allocator's peaks see exactly what they
would without perfdoctor. Over a fake torch._C (no GPU here) that keeps torch's statistics."""

from __future__ import annotations

import threading
import types

from perfdoctor.collect.cuda_peaks import RESET, STATS, peak_shadow


class FakeAllocator:
    """torch._C's two entry points over one device's counters, as the caching allocator keeps them."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.reserved = 0
        self.reserved_peak = 0

    def alloc(self, n: int) -> None:
        self.current += n
        self.peak = max(self.peak, self.current)
        self.reserved = max(self.reserved, self.current)
        self.reserved_peak = max(self.reserved_peak, self.reserved)

    def free(self, n: int) -> None:
        self.current -= n

    def module(self) -> types.SimpleNamespace:
        allocator = self

        def stats(device: int) -> dict:
            return {
                "allocated_bytes": {"all": {"current": allocator.current, "peak": allocator.peak, "allocated": 0, "freed": 0},
                                    "large_pool": {"current": allocator.current, "peak": allocator.peak}},
                "reserved_bytes": {"all": {"current": allocator.reserved, "peak": allocator.reserved_peak}},
                "num_alloc_retries": 0,
            }

        def reset(device: int) -> None:
            allocator.peak = allocator.current
            allocator.reserved_peak = allocator.reserved

        return types.SimpleNamespace(**{STATS: stats, RESET: reset})


def script_peak(module) -> int:
    """What torch.cuda.max_memory_allocated() would return to the script."""
    return getattr(module, STATS)(0)["allocated_bytes"]["all"]["peak"]


def test_windows_have_their_own_peaks_and_the_script_keeps_its_own():
    allocator = FakeAllocator()
    module = allocator.module()
    shadow = peak_shadow(module)
    assert shadow is not None
    allocator.alloc(1000)
    allocator.free(900)  # a step peaking at 1000
    first = shadow.window(0)
    assert first["allocated_bytes"]["all"]["peak"] == 1000
    allocator.alloc(300)
    allocator.free(300)  # a smaller step: 400 at its peak
    second = shadow.window(0)
    assert second["allocated_bytes"]["all"]["peak"] == 400  # this window's own peak
    assert script_peak(module) == 1000  # the script still sees the run's
    assert getattr(module, STATS)(0)["allocated_bytes"]["large_pool"]["peak"] == 1000
    assert getattr(module, STATS)(0)["reserved_bytes"]["all"]["peak"] == 1000
    assert getattr(module, STATS)(0)["allocated_bytes"]["all"]["current"] == 100  # never a current value


def test_the_scripts_reset_clears_what_perfdoctor_kept():
    allocator = FakeAllocator()
    module = allocator.module()
    shadow = peak_shadow(module)
    allocator.alloc(1000)
    allocator.free(1000)
    shadow.window(0)
    getattr(module, RESET)(0)  # torch.cuda.reset_peak_memory_stats() in the script
    allocator.alloc(10)
    assert script_peak(module) == 10
    shadow.window(0)
    assert script_peak(module) == 10


def test_installed_once_per_module_and_not_without_the_functions():
    allocator = FakeAllocator()
    module = allocator.module()
    first = peak_shadow(module)
    wrapped = getattr(module, STATS)
    assert peak_shadow(module) is first and getattr(module, STATS) is wrapped
    assert wrapped.__wrapped__ is first.read
    assert peak_shadow(types.SimpleNamespace()) is None


def test_reads_from_other_threads_never_see_a_peak_go_down():
    allocator = FakeAllocator()
    module = allocator.module()
    shadow = peak_shadow(module)
    allocator.alloc(5000)
    allocator.free(5000)
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.append(script_peak(module))

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(200):
        allocator.alloc(10)
        allocator.free(10)
        shadow.window(0)
    stop.set()
    thread.join()
    assert seen and min(seen) == 5000
