"""ddp-straggler with a cause: a rank slower because it waited for a CPU is reported as such, at
info, not as an imbalance of work or data."""

from __future__ import annotations

from conftest import make_run
from perfdoctor.model.ddp import DdpSection, RankRow, Straggler
from perfdoctor.rules.ddp import DdpStraggler


def row(rank: int, local: float, cpu_wait: float | None, shared: bool) -> RankRow:
    return RankRow(
        rank=rank, node="n", status="completed", steps=100, step_p50_ms=20.0, local_p50_ms=local, dataloader_ms=1.0,
        forward_ms=local / 2, backward_ms=8.0, optimizer_ms=1.0, other_ms=0.5, comm_ms=2.0, exposed_comm_ms=1.0,
        cpu_wait_ms_per_step=cpu_wait, machine_shared=shared,
    )


def job(extra_wait: float | None, shared: bool) -> DdpSection:
    return DdpSection(
        backend="gloo", world_size=2, ranks_reported=2,
        ranks=[row(0, 10.0, 0.5, shared), row(1, 14.0, None if extra_wait is None else 0.5 + extra_wait, shared)],
        straggler=Straggler(rank=1, local_p50_ms=14.0, others_local_p50_ms=10.0, others_wait_ms_per_step=4.0, step_p50_ms=20.0,
                            slowest_step_share=0.9, extra_cpu_wait_ms=extra_wait),
        comm_ms_per_backward=2.0, exposed_comm_ms_per_backward=1.0, comm_source="trace", collectives_per_step=None,
        instances=[], data_parallel=[], synced_forwards_per_step_max=1, synced_forwards_per_step_median=1.0,
        unsynced_forwards_total=0, logged={},
    )


def check(ddp: DdpSection):
    data = make_run(step_ms=20.0)
    data.ddp = ddp
    return DdpStraggler().check(data, DdpStraggler.Thresholds())


def test_a_rank_that_waited_for_a_cpu_is_named_with_that_cause_at_info():
    finding = check(job(extra_wait=3.5, shared=True))
    assert finding is not None and finding.severity == "info" and finding.evidence["cause"] == "cpu-wait"
    assert "waited" in finding.title and "not for more work" in finding.title and finding.confidence == "medium"


def test_a_rank_with_more_work_is_still_a_warning_straggler():
    finding = check(job(extra_wait=0.2, shared=False))
    assert finding is not None and finding.severity == "warning" and "cause" not in finding.evidence
    assert check(job(extra_wait=None, shared=False)).severity == "warning"
