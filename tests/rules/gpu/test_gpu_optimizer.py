"""optimizer-foreach: the optimizer step launched parameter by parameter."""

from __future__ import annotations

import pytest

from gpu_runs import check, gpu_run
from perfdoctor.model.gpu import OptimizerConfig
from perfdoctor.rules.gpu.optimizer import OptimizerForeach


PER_PARAMETER = {"host_ms": 20.0, "kernels": 800.0, "kernel_ms": 8.0, "foreach_kernels": 0.0, "foreach_share": 0.0, "names": ["Adam.step"]}


class TestOptimizerForeach:
    def test_fires_on_a_per_parameter_optimizer(self):
        data = gpu_run(optimizer=PER_PARAMETER, optimizers=[OptimizerConfig(type="Adam", foreach=False, fused=None, devices=["cuda"])])
        finding = check(OptimizerForeach, data)
        assert finding is not None and finding.id == "optimizer-foreach"
        assert finding.evidence["optimizer_kernels_per_step"] == 800.0 and finding.evidence["foreach"] is False
        assert finding.estimated_saving == pytest.approx(0.2 * 0.5)
        assert "foreach=False is set" in finding.advice and "torch.optim.Adam(" in finding.fix and "fused=True" in finding.fix

    def test_silent_when_foreach_or_fused_or_few_kernels(self):
        assert check(OptimizerForeach, gpu_run()) is None
        assert check(OptimizerForeach, gpu_run(optimizer={**PER_PARAMETER, "foreach_share": 0.9})) is None
        assert check(OptimizerForeach, gpu_run(optimizer={**PER_PARAMETER, "kernels": 60.0})) is None
        fused = [OptimizerConfig(type="Adam", foreach=None, fused=True, devices=["cuda"])]
        assert check(OptimizerForeach, gpu_run(optimizer=PER_PARAMETER, optimizers=fused)) is None
