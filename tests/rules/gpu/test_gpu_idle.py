"""A device waiting on the host: gpu-idle-launch-bound and gpu-low-utilization."""

from __future__ import annotations

import pytest

from gpu_runs import check, gpu_run
from perfdoctor.model.gpu import StallOp
from perfdoctor.rules.gpu.idle import GpuIdleLaunchBound, GpuLowUtilization


LAUNCH_BOUND = {"kernels": 900.0, "idle_launch_gaps_ms": 50.0, "idle_host_wait_ms": 60.0, "idle_ms": 65.0, "short_kernel_share": 0.6}


class TestLaunchBound:
    def test_fires_when_the_device_waits_between_many_short_kernels(self):
        finding = check(GpuIdleLaunchBound, gpu_run(steps=LAUNCH_BOUND, utilization=0.35))
        assert finding is not None and finding.id == "gpu-idle-launch-bound"
        assert finding.evidence["launch_gap_share"] == 0.5 and finding.evidence["kernels_per_step"] == 900.0
        assert finding.estimated_saving == pytest.approx(0.25) and "torch.compile" in finding.fix

    def test_silent_with_few_kernels_or_short_gaps(self):
        assert check(GpuIdleLaunchBound, gpu_run(steps={**LAUNCH_BOUND, "kernels": 30.0})) is None
        assert check(GpuIdleLaunchBound, gpu_run(steps={**LAUNCH_BOUND, "idle_launch_gaps_ms": 10.0})) is None


STALLING = {"idle_host_stalls_ms": 40.0, "idle_other_ms": 10.0, "idle_ms": 60.0}
DATA_WAIT = {"dataloader": 0.05, "forward": 0.40, "backward": 0.45, "optimizer": 0.05, "other": 0.05}


class TestLowUtilization:
    def test_fires_on_idle_no_other_rule_explains(self):
        stall_ops = [StallOp(op="aten::copy_", ms_per_step=30.0), StallOp(op="(Python, outside any op)", ms_per_step=10.0)]
        data = gpu_run(steps=STALLING, utilization=0.3, stall_ops=stall_ops, breakdown=DATA_WAIT)
        finding = check(GpuLowUtilization, data)
        assert finding is not None and finding.id == "gpu-low-utilization"
        # 40 ms stalls + 10 ms other idle - 5 ms waiting on the DataLoader
        assert finding.evidence["unexplained_idle_ms"] == 45.0 and finding.evidence["dataloader_wait_ms"] == 5.0
        assert finding.evidence["host_ops_during_stalls_ms"] == {"aten::copy_": 30.0, "(Python, outside any op)": 10.0}
        assert finding.estimated_saving == pytest.approx(0.45) and "aten::copy_" in finding.advice

    def test_defers_to_the_specific_rules(self):
        # the same low utilization, made of launch gaps and idle after syncs: not this rule's
        steps = {"idle_host_stalls_ms": 5.0, "idle_other_ms": 2.0, "idle_launch_gaps_ms": 40.0, "idle_after_sync_ms": 20.0}
        assert check(GpuLowUtilization, gpu_run(steps=steps, utilization=0.3)) is None

    def test_silent_when_busy_enough_or_without_real_steps(self):
        assert check(GpuLowUtilization, gpu_run(steps=STALLING, utilization=0.7)) is None
        assert check(GpuLowUtilization, gpu_run(steps={**STALLING, "synthetic": True}, utilization=0.3)) is None
