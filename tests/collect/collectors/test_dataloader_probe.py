"""The DataLoader probe, in-process: per-loader arguments, batches, per-epoch first-batch latency,
the StopIteration that ends each epoch, and several epochs with and without persistent workers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data import dataloader as dl

from collect_helpers import Harness
from perfdoctor.collect.collectors.dataloader import DataLoaderProbe


class Numbers(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([float(index)])


@pytest.fixture
def probe(tmp_path):
    originals = (dl.DataLoader.__init__, dl.DataLoader.__iter__, dl._BaseDataLoaderIter.__next__)
    harness = Harness(tmp_path)
    probe = DataLoaderProbe()
    probe.start(harness.ctx)
    probe.clock = harness.clock
    probe.harness = harness
    try:
        yield probe
    finally:
        probe.stop()
        assert (dl.DataLoader.__init__, dl.DataLoader.__iter__, dl._BaseDataLoaderIter.__next__) == originals


def only_loader(probe: DataLoaderProbe) -> dict:
    (loader,) = probe.harness.read("dataloader")["loaders"]
    return loader


def test_arguments_batches_and_epochs_in_process(probe):
    loader = DataLoader(TensorDataset(torch.randn(10, 3)), batch_size=4, drop_last=False, pin_memory=False)
    seen = [sum(1 for _ in loader) for _ in range(2)]
    assert seen == [3, 3]
    record = only_loader(probe)
    assert record["args"]["batch_size"] == 4
    assert record["args"]["num_workers"] == 0
    assert record["args"]["persistent_workers"] is False
    assert record["args"]["sampler"] == "SequentialSampler"
    assert record["dataset"] == {"type": "TensorDataset", "length": 10}
    assert len(record["batch_wait_ns"]) == 6 and all(wait > 0 for wait in record["batch_wait_ns"])
    assert [epoch["batches"] for epoch in record["epochs"]] == [3, 3]
    for epoch in record["epochs"]:
        assert epoch["first_batch_ns"] is not None and epoch["first_batch_ns"] > 0
        assert epoch["end_ns"] > 0  # the next() that raised StopIteration was timed, and not as a batch
        assert epoch["wait_ns"] >= 0
    assert record["epochs"][0]["start_ns"] < record["epochs"][1]["start_ns"]
    # No optimizer: every batch was one step of the clock, and the epoch end closed none extra.
    probe.clock.finish()
    assert len(probe.clock.steps) == 6 and list(probe.clock.steps.batches) == [1] * 6


def test_partial_epoch_and_a_loader_made_before_the_probe(tmp_path):
    early = DataLoader(Numbers(8), batch_size=2)  # created before perfdoctor started
    harness = Harness(tmp_path)
    probe = DataLoaderProbe()
    probe.start(harness.ctx)
    probe.harness = harness
    try:
        for index, _ in enumerate(early):
            if index == 1:
                break  # the loop left the epoch early: no StopIteration
        assert sum(1 for _ in early) == 4
    finally:
        probe.stop()
    record = only_loader(probe)
    assert record["dataset"] == {"type": "Numbers", "length": 8}
    assert [epoch["batches"] for epoch in record["epochs"]] == [2, 4]
    assert record["epochs"][0]["end_ns"] == 0 and record["epochs"][1]["end_ns"] > 0


def test_several_loaders_are_told_apart(probe):
    train = DataLoader(Numbers(6), batch_size=3, shuffle=True)
    val = DataLoader(Numbers(4), batch_size=4)
    for _ in range(2):
        for _ in train:
            pass
        for _ in val:
            pass
    loaders = probe.harness.read("dataloader")["loaders"]
    assert [loader["id"] for loader in loaders] == [0, 1]
    assert loaders[0]["args"]["sampler"] == "RandomSampler" and loaders[0]["args"]["batch_size"] == 3
    assert [epoch["batches"] for epoch in loaders[0]["epochs"]] == [2, 2]
    assert [epoch["batches"] for epoch in loaders[1]["epochs"]] == [1, 1]


@pytest.mark.parametrize("persistent", [False, True])
def test_worker_epochs_persistent_or_not(probe, persistent):
    loader = DataLoader(
        Numbers(6), batch_size=2, num_workers=1, multiprocessing_context="fork", persistent_workers=persistent
    )
    iterators = []
    for _ in range(3):
        iterator = iter(loader)
        iterators.append(iterator)
        assert sum(1 for _ in iterator) == 3
    assert (iterators[0] is iterators[2]) is persistent  # persistent workers: one iterator, reset
    record = only_loader(probe)
    assert record["args"]["num_workers"] == 1
    assert record["args"]["persistent_workers"] is persistent
    assert record["args"]["multiprocessing_context"] == "fork"
    assert [epoch["batches"] for epoch in record["epochs"]] == [3, 3, 3]
    assert all(epoch["first_batch_ns"] > 0 and epoch["end_ns"] > 0 for epoch in record["epochs"])
    assert len(record["batch_wait_ns"]) == 9


def test_an_error_in_the_dataset_still_reaches_the_user(probe):
    class Broken(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            raise KeyError("planted dataset failure")

    with pytest.raises(KeyError, match="planted dataset failure"):
        next(iter(DataLoader(Broken(), batch_size=2)))
    assert only_loader(probe)["epochs"][0]["batches"] == 0


class SlowDataset(Dataset):
    def __len__(self):
        return 48

    def __getitem__(self, index):
        import time

        time.sleep(0.004)  # slow storage
        return torch.zeros(4), index


def test_waits_for_delivered_batches_are_told_from_starving(probe):
    import time

    fast_workers = DataLoader(TensorDataset(torch.zeros(48, 256)), batch_size=4, num_workers=2)
    for _ in fast_workers:
        time.sleep(0.01)  # a slow step: the workers are always ahead
    slow_workers = DataLoader(SlowDataset(), batch_size=4, num_workers=1)
    for _ in slow_workers:
        pass  # a fast step: the worker can never be ahead
    ahead, behind = probe.harness.read("dataloader")["loaders"]
    assert ahead["ready_wait_ns"] >= 0.8 * sum(ahead["batch_wait_ns"][1:])  # after the first batch, all were ready
    assert behind["ready_wait_ns"] <= 0.2 * sum(behind["batch_wait_ns"])


def test_thread_demand_takes_contention_out():
    from perfdoctor.collect.collectors.dataloader import thread_demand

    ms = 1_000_000
    cpu_bound = {(1, 1): (50 * ms, 50 * ms)}  # ran half the wait, held off a CPU the other half
    sleeper = {(1, 2): (5 * ms, 45 * ms)}  # slept 50 ms; woken, queued 45 ms behind others
    gone = {(1, 3): (0, 0)}  # read before the wait only: a worker that exited
    before = {(1, 1): (0, 0), (1, 2): (0, 0), **gone}
    assert thread_demand(before, cpu_bound, 100 * ms) == (50 * ms, 50 * ms, 100 * ms)
    assert thread_demand(before, sleeper, 100 * ms) == (5 * ms, 45 * ms, 100 * ms * 5 // 55)
    assert thread_demand(before, {**cpu_bound, **sleeper}, 100 * ms)[2] == 100 * ms + 100 * ms * 5 // 55


class Sleeping(Numbers):
    def __getitem__(self, index: int) -> torch.Tensor:
        import time

        time.sleep(0.004)  # storage
        return super().__getitem__(index)


class Spinning(Numbers):
    def __getitem__(self, index: int) -> torch.Tensor:
        import time

        end = time.thread_time() + 0.004  # CPU time: the same work however long the wait for a CPU
        while time.thread_time() < end:
            pass
        return super().__getitem__(index)


@pytest.mark.parametrize("dataset, asks_for_a_core", [(Sleeping, False), (Spinning, True)], ids=["sleeping", "cpu-bound"])
def test_what_the_loading_thread_asks_for_holds_on_a_busy_machine(probe, dataset, asks_for_a_core):
    """A loader sleeping on storage asks for little CPU, a CPU-bound one for a whole core, while
    every core is busy with other processes (tests/loadgen.py)."""
    from loadgen import busy_cores
    from perfdoctor.analysis.dataloader import job_cores_in_waits

    for _ in DataLoader(dataset(16), batch_size=4, num_workers=0):
        pass  # first-time costs (lazy initialisation in torch and in the probe), measured apart
    with busy_cores():
        for _ in DataLoader(dataset(80), batch_size=4, num_workers=0):
            pass
    warm_up, measured = probe.harness.read("dataloader")["loaders"]
    demand, _ = job_cores_in_waits(measured["cpu_in_long_waits"])
    assert demand is not None
    assert (demand > 0.7) if asks_for_a_core else (demand < 0.3), demand
