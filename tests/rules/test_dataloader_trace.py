"""dataloader-bottleneck on a foreign trace's evidence: the waits and the iterator class, nothing
more (rules/dataloader_trace.py); and the data-loading rules that need what a trace lacks stay
silent on it."""

from __future__ import annotations

import pytest

from conftest import make_run
from gpu_runs import gpu_run
from perfdoctor.analysis.rundata import LoaderSummary
from perfdoctor.rules.dataloader import DataLoaderBottleneck, DataLoaderCpuSaturated, DataLoaderPersistentWorkers, DataLoaderPinMemory

LOADING = {"dataloader": 0.40, "forward": 0.25, "backward": 0.20, "optimizer": 0.14, "other": 0.01}
HEALTHY = {"dataloader": 0.01, "forward": 0.40, "backward": 0.40, "optimizer": 0.18, "other": 0.01}


def trace_loader(iterator: str | None, wait_ms: float, batches: int = 6) -> LoaderSummary:
    """As analysis/trace_loaders.py builds it."""
    workers = 0 if iterator == "_SingleProcessDataLoaderIter" else None
    return LoaderSummary(
        loader_id=0, args={} if workers is None else {"num_workers": workers}, dataset={}, batches=batches,
        wait_total_ms=wait_ms * batches, epoch_start_wait_ms=0.0, wait_p50_ms=wait_ms, wait_p95_ms=wait_ms,
        epochs=[], source="trace", iterator=iterator,
    )


def check(rule_class, data):
    return rule_class().check(data, rule_class.Thresholds())


def test_single_process_loader_in_a_trace():
    data = make_run(LOADING, step_ms=175.0, loaders=[trace_loader("_SingleProcessDataLoaderIter", 70.0)])
    data.host = None  # a trace has no host samples
    finding = check(DataLoaderBottleneck, data)
    evidence = finding.evidence
    assert evidence["wait_per_step_ms"] == 70.0 and evidence["compute_per_step_ms"] == 105.0
    assert evidence["suggested_num_workers"] == 2 and finding.estimated_saving == pytest.approx(0.4)
    assert evidence["evidence_source"] == "trace" and evidence["usable_cores"] is None
    assert "worker_cpu_percent" not in evidence  # nothing measured it


def test_loading_slower_than_compute_needs_more_workers():
    data = make_run({"dataloader": 0.75, "forward": 0.10, "backward": 0.10, "optimizer": 0.04, "other": 0.01}, step_ms=100.0, loaders=[trace_loader("_SingleProcessDataLoaderIter", 75.0)])
    finding = check(DataLoaderBottleneck, data)
    # 75 ms of loading per batch behind 25 ms of compute: 3 workers keep up, and the step is 25 ms.
    assert finding.evidence["suggested_num_workers"] == 3 and finding.estimated_saving == pytest.approx(0.75)


def test_multiprocess_loader_in_a_trace_claims_an_upper_bound():
    data = make_run(LOADING, step_ms=175.0, loaders=[trace_loader("_MultiProcessingDataLoaderIter", 70.0)])
    finding = check(DataLoaderBottleneck, data)
    assert finding.evidence["num_workers"] is None and "suggested_num_workers" not in finding.evidence
    assert finding.estimated_saving == pytest.approx(0.4) and "upper bound" in finding.advice


@pytest.mark.parametrize("iterator", ["_SingleProcessDataLoaderIter", "_MultiProcessingDataLoaderIter", None])
def test_a_trace_loader_that_keeps_up_is_silent(iterator):
    data = make_run(HEALTHY, step_ms=130.0, loaders=[trace_loader(iterator, 1.3)])
    assert check(DataLoaderBottleneck, data) is None


@pytest.mark.parametrize("rule_class", [DataLoaderCpuSaturated, DataLoaderPersistentWorkers])
def test_rules_that_need_probe_evidence_are_silent_on_a_trace(rule_class):
    data = make_run(LOADING, step_ms=175.0, loaders=[trace_loader("_MultiProcessingDataLoaderIter", 70.0)])
    assert check(rule_class, data) is None


def test_pin_memory_is_not_in_a_trace():
    data = gpu_run(loaders=[trace_loader("_SingleProcessDataLoaderIter", 2.0)], steps={"pageable_htod_copies": 2.0, "pageable_htod_ms": 2.0})
    assert check(DataLoaderPinMemory, data) is None
    probed = gpu_run(loaders=[trace_loader("_SingleProcessDataLoaderIter", 2.0)], steps={"pageable_htod_copies": 2.0, "pageable_htod_ms": 2.0})
    probed.dataloaders[0].source = "probe"
    assert check(DataLoaderPinMemory, probed) is not None  # the same copies from a probed, unpinned loader
