"""Collective communication: device time, overlap with compute, host ranges, counts by type."""

from __future__ import annotations

import pytest
from trace_builders import annotation, gpu_training_events, op, shared_trace, write_trace

from perfdoctor.trace import read_trace
from perfdoctor.trace.comm import collective_type, comm_steps

US = 1000


def test_overlap_and_exposed_time(tmp_path):
    first, second = comm_steps(read_trace(write_trace(tmp_path, gpu_training_events())))
    # ncclKernel [600,800) on stream 20; compute kernel [700,900) on stream 7
    assert first.device_comm_ns == 200 * US
    assert (first.overlapped_ns, first.exposed_ns) == (100 * US, 100 * US)
    assert first.overlap_share == pytest.approx(0.5)
    assert first.host_comm_ns == 15 * US  # c10d::allreduce_ [545,560) around nccl:all_reduce
    assert first.collectives == {"all_reduce": 1}
    assert (second.device_comm_ns, second.collectives) == (0, {})


def test_cpu_only_gloo(tmp_path):
    events = [
        annotation("ProfilerStep#3", 0, 1000),
        annotation("gloo:all_reduce", 100, 200, tid=7),
        annotation("gloo:all_reduce", 250, 100, tid=8),  # overlaps the first: the union counts
        op("c10d::broadcast_", 500, 50),
        op("c10d::_allgather_base_", 600, 10),
        op("c10d::alltoall_base_", 700, 10),
        op("c10d::barrier", 800, 10),
        op("c10d::reduce_scatter_tensor_coalesced_", 900, 10),
    ]
    (step,) = comm_steps(read_trace(write_trace(tmp_path, events)))
    assert step.device_comm_ns == 0
    assert step.host_comm_ns == (250 + 50 + 40) * US
    assert step.collectives == {"all_gather": 1, "all_reduce": 2, "all_to_all": 1, "barrier": 1,
                                "broadcast": 1, "reduce_scatter": 1}


@pytest.mark.parametrize("name, kind", [
    ("nccl:all_reduce", "all_reduce"), ("c10d::allreduce_", "all_reduce"), ("nccl:_all_gather_base", "all_gather"),
    ("nccl:all_to_all", "all_to_all"),
    ("ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<4096ul>)", "all_gather"),
    ("ncclKernel_Broadcast_RING_LL_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)", "broadcast"),
    ("ncclDevKernel_ReduceScatter_Sum_f32_RING_LL", "reduce_scatter"), ("ncclDevKernel_SendRecv", "send_recv"),
    ("gloo:broadcast", "broadcast"), ("nccl:recv 0<-1", "send_recv"), ("c10d::monitored_barrier_", "barrier"),
    ("nccl:whatever", "other"),
])
def test_collective_type(name, kind):
    assert collective_type(name) == kind


def test_ddp_trace():
    steps = comm_steps(read_trace(shared_trace("a100_ddp_nccl_2rank/rank0.pt.trace.json.gz")))
    assert [s.collectives for s in steps] == [{"all_reduce": 5, "broadcast": 2}] * 3
    for s in steps:
        assert 0 < s.overlapped_ns < s.device_comm_ns
        assert s.exposed_ns == s.device_comm_ns - s.overlapped_ns
        assert s.host_comm_ns > 0
    # step 4: 2 broadcasts (31.0 + 7.8 us) and 5 all-reduces (3307.0 + 2424.4 + 2368.5 + 2160.8 + 1689.6 us)
    assert steps[0].device_comm_ns == pytest.approx((30.975 + 7.775 + 3306.963 + 2424.415 + 2368.513 + 2160.803
                                                     + 1689.577) * US, abs=1)


def test_sampled_128_rank_job():
    for rank in (0, 1):
        steps = comm_steps(read_trace(shared_trace(f"sampled_128rank_job/rank{rank}.pt.trace.json.gz")))
        assert [s.collectives for s in steps] == [{"all_gather": 1, "all_reduce": 2, "all_to_all": 2}] * 2
        assert all(0 <= s.overlap_share <= 1 and s.device_comm_ns > 0 for s in steps)


def test_cpu_only_real_trace():
    (step,) = comm_steps(read_trace(shared_trace("cpu_only/rank34.pt.trace.json.gz")))
    assert step.collectives == {"all_reduce": 2}
    assert step.device_comm_ns == 0 and step.host_comm_ns > 0
