"""gpu-memory-near-limit: a risk, not time."""

from __future__ import annotations

from gpu_runs import GIB, check, gpu_run
from perfdoctor.rules.gpu.memory import GpuMemoryNearLimit


class TestMemoryNearLimit:
    def test_a_risk_not_time_warning_near_the_limit(self):
        memory = {"peak_share": 0.97, "torch_peak_reserved_bytes": 77 * GIB, "torch_peak_allocated_bytes": 60 * GIB}
        finding = check(GpuMemoryNearLimit, gpu_run(memory=memory))
        assert finding is not None and finding.id == "gpu-memory-near-limit"
        assert finding.estimated_saving == 0.0 and finding.severity == "warning"
        assert finding.evidence["peak_share"] == 0.97 and finding.evidence["total_bytes"] == 80 * GIB
        assert "expandable_segments" in finding.advice  # reserved well above allocated: fragmentation

    def test_info_between_the_thresholds_and_silent_below(self):
        assert check(GpuMemoryNearLimit, gpu_run(memory={"peak_share": 0.92})).severity == "info"
        assert check(GpuMemoryNearLimit, gpu_run()) is None
        assert check(GpuMemoryNearLimit, gpu_run(memory={"peak_share": None})) is None
