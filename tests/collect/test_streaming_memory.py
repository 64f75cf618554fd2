"""perfdoctor's own memory stays flat as steps grow: what the collectors buffer inside the step
is drained by the stream writer once written (before streaming it grew ~0.15 KB a step)."""

import tracemalloc

import torch
from torch.utils.data import DataLoader, TensorDataset

from collect_helpers import Harness
from perfdoctor.collect.collectors.dataloader import DataLoaderProbe
from perfdoctor.collect.collectors.ddp import DdpCollector


def test_memory_is_flat_over_thousands_of_steps(tmp_path):
    harness = Harness(tmp_path, steps=True)
    harness.writer.interval_s = 0.05
    collectors = [DataLoaderProbe(), DdpCollector()]
    harness.clock.install()
    for collector in collectors:
        collector.start(harness.ctx)
    harness.writer.start()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(torch.randn(1000, 2)), batch_size=1)

    def steps(epochs):
        for _ in range(epochs):
            for (x,) in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()

    try:
        steps(1)  # warm-up: allocations that happen once
        harness.writer.flush()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        steps(4)  # 4,000 more steps and batches
        harness.writer.flush()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        for collector in collectors:
            collector.stop()
        harness.clock.uninstall()
        harness.writer.stop()
    ours = [stat for stat in after.compare_to(before, "filename") if "/perfdoctor/" in (stat.traceback[0].filename or "")]
    growth = sum(stat.size_diff for stat in ours)
    assert growth < 40_000, [str(stat) for stat in ours[:5]]  # < 10 bytes a step (0.15 KB a step before streaming)
    assert len(harness.rundir.read_raw_file("steps", None)["end_ns"]) == 5000  # and every step was written
    assert len(harness.rundir.read_raw_file("dataloader", None)["loaders"][0]["batch_wait_ns"]) == 5000
