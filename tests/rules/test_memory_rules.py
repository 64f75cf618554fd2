"""memory-growth, out-of-memory and memory-rank-imbalance fire where the problem is real and stay
silent on a healthy run; gpu-memory-near-limit reads the allocator's view."""

from __future__ import annotations

import msgspec

from conftest import make_run
from gpu_runs import GIB, check, gpu_run
from perfdoctor.model.memory import ExpectedLength, GpuAllocator, MemorySection, MemoryTrend, OomEvent, RankMemory
from perfdoctor.rules.gpu.memory import GpuMemoryNearLimit
from perfdoctor.rules.memory import MemoryGrowth, MemoryRankImbalance, OutOfMemory

MIB = 2**20


def trend(subject="host_process", per_step=3 * MIB, growing=True, seconds=900.0, limit_at=6000, **changes) -> MemoryTrend:
    base = MemoryTrend(
        subject=subject, from_step=60, to_step=300, points=220, bytes_per_step=per_step, bytes_per_step_low=per_step * 0.98,
        bytes_per_step_high=per_step * 1.02, late_bytes_per_step=per_step, projected_bytes_per_step=per_step,
        bytes_per_hour=per_step * 36000, growth_bytes=per_step * 240, noise_bytes=MIB, drawdown_bytes=0,
        level_bytes=1.4 * GIB, fitted_end_bytes=1.4 * GIB, growing=growing,
        reason="grows steadily through the run's later part" if growing else "no growth", limit_bytes=24 * GIB,
        headroom_bytes=20 * GIB, seconds_to_limit=seconds if growing else None, limit_at_step=limit_at if growing else None,
    )
    return msgspec.structs.replace(base, **changes)


def memory(*trends: MemoryTrend, **changes) -> MemorySection:
    section = MemorySection(
        samples=300, sample_cost_share=0.0005, host_limit_bytes=24 * GIB, host_limit_source="ram", host_used_bytes=4 * GIB,
        process_rss_peak_bytes=int(1.4 * GIB), workers_rss_peak_bytes=None, seconds_per_step=0.15, trends=list(trends),
    )
    return msgspec.structs.replace(section, **changes)


def run_with(section: MemorySection | None, data=None):
    data = data or make_run()
    data.memory = section
    return data


class TestMemoryGrowth:
    def test_a_leak_reaching_the_limit_within_the_hour_is_critical(self):
        finding = check(MemoryGrowth, run_with(memory(trend())))
        assert finding is not None and finding.id == "memory-growth" and finding.severity == "critical"
        assert finding.estimated_saving == 0.0
        evidence = finding.evidence
        assert evidence["growth_mb_per_step"] == 3.0 and evidence["minutes_to_limit"] == 15.0
        assert evidence["limit_at_step"] == 6000 and evidence["growth_mb_per_hour"] == 108000
        assert "3.0 MiB per step" in finding.title and "15 min" in finding.title
        assert ".item()" in finding.advice and "losses.append(loss.item())" in finding.fix

    def test_severity_follows_the_time_to_the_limit(self):
        assert check(MemoryGrowth, run_with(memory(trend(seconds=5 * 3600.0)))).severity == "warning"
        assert check(MemoryGrowth, run_with(memory(trend(seconds=100 * 3600.0)))).severity == "info"
        assert check(MemoryGrowth, run_with(memory(trend(seconds=5 * 3600.0))), warning_hours=2.0).severity == "info"

    def test_the_jobs_own_length_decides_when_it_is_known(self):
        within = memory(trend(seconds=5 * 3600.0, limit_at=6000), expected=ExpectedLength(steps=10_000, source="--steps 10000"))
        finding = check(MemoryGrowth, run_with(within))
        assert finding.severity == "critical" and "before the job's 10,000 steps end" in finding.title
        assert finding.evidence["job_steps"] == 10_000
        short = memory(trend(seconds=900.0, limit_at=6000), expected=ExpectedLength(steps=300, source="--steps 300"))
        assert check(MemoryGrowth, run_with(short)).severity == "warning"  # the job ends first: still a leak

    def test_silent_on_a_healthy_run_and_on_small_growth(self):
        assert check(MemoryGrowth, run_with(None)) is None
        assert check(MemoryGrowth, run_with(memory(trend(growing=False)))) is None
        assert check(MemoryGrowth, run_with(memory(trend(per_step=16 * 1024)))) is None  # 3.75 MiB in all
        assert check(MemoryGrowth, run_with(memory(trend(per_step=16 * 1024))), min_growth_mb=1.0) is not None

    def test_the_series_that_runs_out_first_and_its_advice(self):
        workers = trend(subject="host_workers", seconds=300.0)
        finding = check(MemoryGrowth, run_with(memory(trend(seconds=900.0), workers)))
        assert finding.evidence["series"] == "host_workers" and finding.evidence["also_growing"] == ["host_process"]
        assert "copy-on-read" in finding.advice
        reserved = trend(subject="gpu_reserved", limit_bytes=80 * GIB)
        assert "expandable_segments" in check(MemoryGrowth, run_with(memory(reserved))).advice

    def test_without_a_limit_it_is_a_warning(self):
        finding = check(MemoryGrowth, run_with(memory(trend(seconds=None, limit_at=None, limit_bytes=None, headroom_bytes=None))))
        assert finding.severity == "warning" and "limit" not in finding.title


def oom(**changes) -> OomEvent:
    return OomEvent(**{"kind": "cuda", "step": 1234, "phase": "backward", "module_type": "Attention",
                       "module_path": "GPT.blocks.3.attn", "source": "train.py:88 in train: loss.backward()",
                       "error_type": "OutOfMemoryError", "message": "CUDA out of memory. Tried to allocate 2.00 GiB.",
                       "allocated_bytes": 60 * GIB, "reserved_bytes": 78 * GIB, "peak_allocated_bytes": 77 * GIB,
                       "peak_reserved_bytes": 78 * GIB, "total_bytes": 80 * GIB, "alloc_retries": 2, "summary": "|== summary ==|",
                       **changes})

    def test_on_a_shared_machine_the_time_to_the_limit_is_medium_confidence(self):
        from conftest import make_host
        from perfdoctor.model.host import CpuContention

        quiet = run_with(memory(trend()))
        assert check(MemoryGrowth, quiet).confidence == "high"
        busy = run_with(memory(trend()))
        busy.host = make_host()
        busy.host.contention = CpuContention(samples=20, interval_s=0.5, usable_cores=2, others_cpu_cores=1.7, shared=True)
        finding = check(MemoryGrowth, busy)
        assert finding.confidence == "medium" and "1.7 cores" in finding.confidence_reason
        assert "comes sooner" in finding.confidence_reason and finding.severity == "critical"
        # Without a limit in sight there is no time to doubt: the growth per step stands.
        unlimited = run_with(memory(trend(seconds=None, limit_at=None, limit_bytes=None, headroom_bytes=None)), busy)
        assert check(MemoryGrowth, unlimited).confidence == "high"


    def test_a_trend_on_few_samples_says_so(self):
        sparse = check(MemoryGrowth, run_with(memory(trend(points=11))))
        assert sparse.confidence == "medium" and "only 11 samples" in sparse.confidence_reason
        assert check(MemoryGrowth, run_with(memory(trend(points=20)))).confidence == "high"


class TestOutOfMemory:
    def test_a_cuda_oom_names_the_step_phase_and_module(self):
        finding = check(OutOfMemory, run_with(memory(oom=oom())))
        assert finding.id == "out-of-memory" and finding.severity == "critical" and finding.estimated_saving == 0
        assert "step 1234" in finding.title and "backward" in finding.title and "GPT.blocks.3.attn" in finding.title
        evidence = finding.evidence
        assert evidence["peak_allocated_gb"] == 77.0 and evidence["allocator_summary"] == "|== summary ==|"
        assert evidence["reserved_unallocated_share"] == round(18 / 78, 3) and evidence["alloc_retries"] == 2
        assert "expandable_segments" not in finding.advice  # 23% unallocated: below the fragmentation bar

    def test_fragmentation_and_growth_lead_the_advice(self):
        fragmented = oom(allocated_bytes=30 * GIB)
        finding = check(OutOfMemory, run_with(memory(trend(subject="gpu_allocated"), oom=fragmented)))
        assert "expandable_segments" in finding.advice and "memory-growth" in finding.advice
        assert finding.fix.startswith("PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True")

    def test_a_host_error_and_an_oom_kill(self):
        host = check(OutOfMemory, run_with(memory(oom=oom(kind="host", phase="dataloader", module_type=None, module_path=None, rss_bytes=9 * GIB))))
        assert host.severity == "critical" and "host out-of-memory" in host.title and host.evidence["rss_gb"] == 9.0
        killed = OomEvent(kind="host_killed", step=420, phase=None, error_type="SIGKILL", used_bytes=int(15.5 * GIB),
                          limit_bytes=16 * GIB, limit_source="cgroup", oom_kills=1)
        finding = check(OutOfMemory, run_with(memory(trend(), oom=killed)))
        assert finding.title == "The kernel's OOM killer ended the run after 420 steps"
        assert finding.evidence["in_use_share"] == 0.969 and finding.evidence["cgroup_oom_kills"] == 1
        assert "memory-growth" in finding.advice and "container" in finding.advice

    def test_silent_without_an_oom(self):
        assert check(OutOfMemory, run_with(memory())) is None
        assert check(OutOfMemory, run_with(None)) is None


def ranked(*peaks_gib, limit=80 * GIB, gpu=True) -> MemorySection:
    rows = [
        RankMemory(rank=i, host_rss_peak_bytes=int(p * GIB), gpu_peak_allocated_bytes=int(p * GIB) if gpu else None,
                   gpu_peak_reserved_bytes=int(p * GIB) if gpu else None, gpu_limit_bytes=limit if gpu else None)
        for i, p in enumerate(peaks_gib)
    ]
    return memory(ranks=rows)


class TestRankImbalance:
    def test_the_heavy_rank_is_named(self):
        finding = check(MemoryRankImbalance, run_with(ranked(40, 41, 72, 40)))
        assert finding.id == "memory-rank-imbalance" and finding.evidence["rank"] == 2
        assert finding.evidence["excess_gb"] == 32.0 and finding.severity == "warning"  # 72 of 80 GiB: 90%
        assert finding.evidence["per_rank_peak_gb"] == {"0": 40.0, "1": 41.0, "2": 72.0, "3": 40.0}

    def test_info_with_room_left_and_host_memory_without_gpus(self):
        assert check(MemoryRankImbalance, run_with(ranked(20, 30))).severity == "info"
        finding = check(MemoryRankImbalance, run_with(ranked(2, 2, 4, gpu=False)))
        assert finding.evidence["memory"] == "host_rss" and finding.severity == "info"

    def test_silent_when_balanced_small_or_alone(self):
        assert check(MemoryRankImbalance, run_with(ranked(40, 41, 42, 40))) is None
        assert check(MemoryRankImbalance, run_with(ranked(0.2, 0.5, gpu=False))) is None  # 300 MiB more: below the bar
        assert check(MemoryRankImbalance, run_with(ranked(40))) is None
        assert check(MemoryRankImbalance, run_with(None)) is None


def allocator(**changes) -> GpuAllocator:
    return GpuAllocator(**{"device": 0, "name": "A100", "total_bytes": 80 * GIB, "limit_bytes": 80 * GIB,
                           "peak_allocated_bytes": 38 * GIB, "peak_reserved_bytes": 40 * GIB, "allocated_bytes": 30 * GIB,
                           "reserved_bytes": 40 * GIB, "reserved_unused_bytes": 2 * GIB, "inactive_split_peak_bytes": GIB,
                           "alloc_retries": 0, "alloc_conf": None, "expandable_segments": False, "peaks_per_window": True,
                           **changes})


class TestGpuMemoryAllocatorView:
    def test_retries_fire_even_below_the_share(self):
        data = gpu_run()
        data.memory = memory(gpu=allocator(alloc_retries=4))
        finding = check(GpuMemoryNearLimit, data)
        assert finding is not None and finding.severity == "warning" and "retried 4" in finding.title
        assert finding.evidence["alloc_retries"] == 4

    def test_fragmentation_from_the_samples_and_expandable_segments_already_on(self):
        data = gpu_run(memory={"peak_share": 0.96, "torch_peak_reserved_bytes": 77 * GIB, "torch_peak_allocated_bytes": 70 * GIB})
        data.memory = memory(gpu=allocator(peak_reserved_bytes=77 * GIB, reserved_unused_bytes=20 * GIB))
        finding = check(GpuMemoryNearLimit, data)
        assert finding.evidence["reserved_unallocated_share"] == round(20 / 77, 3)
        assert "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True" in finding.advice
        data.memory = memory(gpu=allocator(peak_reserved_bytes=77 * GIB, reserved_unused_bytes=20 * GIB, expandable_segments=True,
                                           alloc_conf="expandable_segments:True"))
        finding = check(GpuMemoryNearLimit, data)
        assert "already on" in finding.advice and "PYTORCH_CUDA_ALLOC_CONF" not in finding.fix

    def test_a_healthy_allocator_stays_silent(self):
        data = gpu_run()
        data.memory = memory(gpu=allocator())
        assert check(GpuMemoryNearLimit, data) is None


def test_every_memory_rule_is_silent_on_a_healthy_run():
    data = run_with(memory(trend(growing=False), ranks=[]))
    for rule in (MemoryGrowth, OutOfMemory, MemoryRankImbalance):
        assert check(rule, data) is None
