from dataclasses import replace

import pytest
from msgspec.structs import replace as changed

from conftest import make_run
from perfdoctor.analysis.rundata import TraceSummary
from perfdoctor.model.ddp import DataParallelInstance, DdpInstance, DdpSection, RankRow, Straggler
from perfdoctor.rules.ddp import (
    DataParallelInsteadOfDdp,
    DdpAccumulationWithoutNoSync,
    DdpBackendNotNccl,
    DdpCommunicationBound,
    DdpFindUnusedParameters,
    DdpStraggler,
)

BACKWARD_HEAVY = {"dataloader": 0.01, "forward": 0.10, "backward": 0.85, "optimizer": 0.02, "other": 0.02}


def check(rule, data, **overrides):
    return rule.check(data, replace(rule.Thresholds(), **overrides))


def rank_row(rank, node, **changes):
    row = RankRow(
        rank=rank, node=node, status="completed", steps=100, step_p50_ms=100.0, local_p50_ms=40.0, dataloader_ms=1.0,
        forward_ms=20.0, backward_ms=77.0, optimizer_ms=1.0, other_ms=1.0, comm_ms=3.0, exposed_comm_ms=2.0,
    )
    return changed(row, **changes)


INSTANCE = DdpInstance(
    module="Net", find_unused_parameters=False, parameter_devices=["cpu"], bucket_cap_mb=25.0, gradient_as_bucket_view=False,
    static_graph=False, parameter_bytes=100 * 2**20, logged={"unused_parameter_size": 0, "iteration": 10},
)


def straggler(**changes):
    return changed(
        Straggler(rank=1, local_p50_ms=40.0, others_local_p50_ms=40.0, others_wait_ms_per_step=0.0, step_p50_ms=100.0), **changes
    )


def ddp_section(**changes):
    """A healthy two-rank gloo job on CPU, with `changes` to its fields."""
    section = DdpSection(
        backend="gloo",
        world_size=2,
        ranks_reported=2,
        ranks=[rank_row(0, "a"), rank_row(1, "b")],
        straggler=straggler(),
        comm_ms_per_backward=3.0,
        exposed_comm_ms_per_backward=2.0,
        comm_source="DDP logger, rank 1",
        collectives_per_step=None,
        instances=[INSTANCE],
        data_parallel=[],
        synced_forwards_per_step_max=1,
        synced_forwards_per_step_median=1.0,
        unsynced_forwards_total=0,
        logged={"total_parameter_size_bytes": 100 * 2**20},
    )
    return changed(section, **changes)


def ddp_run(trace=None, **changes):
    data = make_run(BACKWARD_HEAVY, step_ms=100.0, trace=trace)
    data.ddp = ddp_section(**changes)
    return data


HEALTHY_RULES = [DdpCommunicationBound, DdpStraggler, DdpFindUnusedParameters, DdpAccumulationWithoutNoSync, DataParallelInsteadOfDdp, DdpBackendNotNccl]


@pytest.mark.parametrize("rule", HEALTHY_RULES)
def test_a_healthy_ddp_run_fires_nothing(rule):
    assert check(rule(), ddp_run()) is None


@pytest.mark.parametrize("rule", HEALTHY_RULES)
def test_a_run_without_ddp_fires_nothing(rule):
    assert check(rule(), make_run(BACKWARD_HEAVY)) is None


class TestCommunicationBound:
    def test_fires_on_exposed_all_reduce_of_large_gradients(self):
        finding = check(DdpCommunicationBound(), ddp_run(exposed_comm_ms_per_backward=45.0, comm_ms_per_backward=60.0))
        assert finding is not None and finding.evidence["exposed_comm_share"] == pytest.approx(0.45)
        assert finding.estimated_saving == pytest.approx(0.45) and "bucket_cap_mb" in finding.advice

    def test_small_gradients_are_latency_not_volume(self):
        small = ddp_section(exposed_comm_ms_per_backward=45.0, logged={"total_parameter_size_bytes": 444_400})
        data = make_run(BACKWARD_HEAVY, step_ms=100.0)
        data.ddp = small
        assert check(DdpCommunicationBound(), data) is None

    def test_extra_syncs_from_accumulation_are_not_counted_twice(self):
        data = ddp_run(exposed_comm_ms_per_backward=12.0, synced_forwards_per_step_median=4.0)
        assert check(DdpCommunicationBound(), data) is None
        assert check(DdpAccumulationWithoutNoSync(), data) is not None


class TestStraggler:
    def test_names_the_slow_rank_and_the_wait(self):
        ranks = [rank_row(0, "a"), rank_row(1, "b", local_p50_ms=72.0, other_ms=33.0)]
        slow = straggler(local_p50_ms=72.0, others_wait_ms_per_step=32.0)
        finding = check(DdpStraggler(), ddp_run(ranks=ranks, straggler=slow))
        assert finding is not None and finding.evidence["straggler_rank"] == 1
        assert finding.evidence["others_wait_per_step_ms"] == 32.0 and finding.evidence["slowest_phase"] == "other"
        assert finding.estimated_saving == pytest.approx(0.32) and "Rank 1" in finding.title
        assert finding.locations == []  # no trace of the slow rank: nowhere to point

    def test_points_at_the_slow_ranks_slowest_step_in_its_trace(self):
        from perfdoctor.model.finding import TraceLocation

        place = TraceLocation(label="step 8, the slowest profiled step", trace="tb/train/rank1.pt.trace.json.gz", start_ns=10, end_ns=20, step=8, rank=1)
        ranks = [rank_row(0, "a"), rank_row(1, "b", local_p50_ms=72.0, other_ms=33.0)]
        slow = straggler(local_p50_ms=72.0, others_wait_ms_per_step=32.0, trace_step=place)
        finding = check(DdpStraggler(), ddp_run(ranks=ranks, straggler=slow))
        assert finding is not None and finding.locations == [place]

    def test_a_rank_that_is_only_sometimes_slowest_is_noise(self):
        sometimes = straggler(local_p50_ms=72.0, others_wait_ms_per_step=32.0, slowest_step_share=0.55)
        assert check(DdpStraggler(), ddp_run(straggler=sometimes)) is None

    def test_a_small_imbalance_is_noise(self):
        slightly = straggler(local_p50_ms=42.0, others_wait_ms_per_step=2.0)
        assert check(DdpStraggler(), ddp_run(straggler=slightly)) is None


class TestFindUnusedParameters:
    def unused_flag(self, unused_bytes=0):
        return [changed(INSTANCE, find_unused_parameters=True, logged={"unused_parameter_size": unused_bytes, "iteration": 10})]

    def test_fires_when_nothing_was_unused_with_the_measured_search_cost(self):
        trace = TraceSummary(files=["t"], windows=5, named_op_ms={"search_unused_parameters": 3.0})
        finding = check(DdpFindUnusedParameters(), ddp_run(trace=trace, instances=self.unused_flag()))
        assert finding is not None and finding.evidence["search_per_step_ms"] == 3.0
        assert finding.estimated_saving == pytest.approx(0.03) and finding.severity == "info"

    def test_silent_when_parameters_really_are_unused(self):
        assert check(DdpFindUnusedParameters(), ddp_run(instances=self.unused_flag(unused_bytes=4096))) is None


class TestAccumulation:
    def test_fires_when_every_micro_batch_syncs(self):
        finding = check(DdpAccumulationWithoutNoSync(), ddp_run(synced_forwards_per_step_median=4.0, exposed_comm_ms_per_backward=10.0))
        assert finding is not None and finding.evidence["wasted_per_step_ms"] == 30.0
        assert finding.estimated_saving == pytest.approx(0.30) and "no_sync" in finding.fix

    def test_silent_with_no_sync(self):
        assert check(DdpAccumulationWithoutNoSync(), ddp_run(synced_forwards_per_step_median=1.0, unsynced_forwards_total=120)) is None


def test_dataparallel_over_several_gpus():
    finding = check(DataParallelInsteadOfDdp(), ddp_run(data_parallel=[DataParallelInstance(module="Net", device_ids=[0, 1, 2, 3])]))
    assert finding is not None and finding.evidence["devices"] == 4
    assert check(DataParallelInsteadOfDdp(), ddp_run(data_parallel=[DataParallelInstance(module="Net", device_ids=[])])) is None


def test_gloo_on_cuda_gradients():
    instances = [changed(INSTANCE, parameter_devices=["cuda"])]
    finding = check(DdpBackendNotNccl(), ddp_run(instances=instances, exposed_comm_ms_per_backward=20.0))
    assert finding is not None and finding.estimated_saving == pytest.approx(0.20)
    assert check(DdpBackendNotNccl(), ddp_run(instances=instances, backend="nccl")) is None
