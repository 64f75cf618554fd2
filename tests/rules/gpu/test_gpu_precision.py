"""Precision rules: tf32-disabled and amp-not-enabled (which defers to it, in the engine)."""

from __future__ import annotations

import pytest

from gpu_runs import P100, V100, check, gpu_run
from perfdoctor.config import Config
from perfdoctor.rules.registry import evaluate
from perfdoctor.rules.gpu.precision import AmpNotEnabled, Tf32Disabled


FP32_A100 = {"matmul_half_ms": 0.0, "conv_half_ms": 0.0, "matmul_fp32_ms": 40.0, "conv_fp32_ms": 0.0, "dominant_precision": "fp32"}
TF32_OFF = {"matmul_allow_tf32": False, "float32_matmul_precision": "highest"}


class TestTf32Disabled:
    def test_fires_on_fp32_matmuls_of_an_ampere_gpu_with_tf32_off(self):
        finding = check(Tf32Disabled, gpu_run(backends=TF32_OFF, kernels=FP32_A100))
        assert finding is not None and finding.id == "tf32-disabled"
        assert finding.evidence["fp32_matmul_ms"] == 40.0 and finding.evidence["fp32_share"] == 0.4
        assert finding.estimated_saving == pytest.approx(0.4 * (1 - 1 / 2.0)) and finding.severity == "warning"
        assert "matmul.allow_tf32 = True" in finding.fix and "cudnn.allow_tf32" not in finding.fix

    def test_counts_fp32_convolutions_when_cudnn_tf32_is_off(self):
        data = gpu_run(backends={**TF32_OFF, "cudnn_allow_tf32": False}, kernels={**FP32_A100, "conv_fp32_ms": 20.0})
        finding = check(Tf32Disabled, data)
        assert finding.evidence["fp32_share"] == 0.6 and "cudnn.allow_tf32 = True" in finding.fix

    def test_silent_before_ampere_or_with_tf32_on(self):
        assert check(Tf32Disabled, gpu_run(backends=TF32_OFF, kernels=FP32_A100, device=V100)) is None
        assert check(Tf32Disabled, gpu_run(kernels=FP32_A100)) is None

    def test_amp_not_enabled_defers_to_it_in_the_engine(self):
        data = gpu_run(backends=TF32_OFF, kernels=FP32_A100)
        assert check(Tf32Disabled, data) is not None and check(AmpNotEnabled, data) is not None  # both see it
        assert AmpNotEnabled.defers_to == ("tf32-disabled",)
        reported = {finding.id for finding in evaluate(data, Config())}
        assert "tf32-disabled" in reported and "amp-not-enabled" not in reported  # one cause, said once


class TestAmpNotEnabled:
    def test_fires_on_tf32_work_of_an_ampere_gpu_and_suggests_bf16(self):
        kernels = {**FP32_A100, "matmul_fp32_ms": 0.0, "matmul_tf32_ms": 30.0, "conv_tf32_ms": 30.0, "dominant_precision": "tf32"}
        finding = check(AmpNotEnabled, gpu_run(kernels=kernels))
        assert finding is not None and finding.id == "amp-not-enabled"
        assert finding.evidence["tf32_matmul_conv_ms"] == 60.0 and finding.evidence["share"] == 0.6
        assert finding.estimated_saving == pytest.approx(0.3) and finding.severity == "warning"  # numerics change: never critical
        assert "torch.bfloat16" in finding.fix and "GradScaler" not in finding.fix

    def test_fires_on_a_v100_and_suggests_fp16_with_a_scaler(self):
        kernels = {**FP32_A100, "matmul_fp32_ms": 25.0, "conv_fp32_ms": 35.0}
        finding = check(AmpNotEnabled, gpu_run(kernels=kernels, device=V100))
        assert finding.evidence["fp32_matmul_conv_ms"] == 60.0 and finding.evidence["compute_capability"] == "7.0"
        assert "torch.float16" in finding.fix and "GradScaler" in finding.fix

    def test_silent_with_half_kernels_a_grad_scaler_or_no_tensor_cores(self):
        assert check(AmpNotEnabled, gpu_run()) is None  # half kernels ran
        scaler = {**FP32_A100, "amp_scaler_ops": True}
        assert check(AmpNotEnabled, gpu_run(kernels=scaler)) is None
        assert check(AmpNotEnabled, gpu_run(kernels=FP32_A100, device=P100)) is None
        assert check(AmpNotEnabled, gpu_run(kernels={**FP32_A100, "matmul_fp32_ms": 4.0})) is None
