"""Convolution rules: cudnn-benchmark-off and channels-last."""

from __future__ import annotations

import pytest

from gpu_runs import V100, check, gpu_run
from perfdoctor.rules.gpu.convolution import ChannelsLast, CudnnBenchmarkOff


class TestCudnnBenchmarkOff:
    def test_fires_on_static_conv_shapes_with_benchmark_off(self):
        finding = check(CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}))
        assert finding is not None and finding.id == "cudnn-benchmark-off"
        assert finding.evidence["conv_share"] == 0.35 and finding.evidence["conv_kernel_ms"] == 35.0
        assert finding.estimated_saving == pytest.approx(0.35 * 0.20)
        assert "cudnn.benchmark = True" in finding.fix

    def test_silent_when_shapes_change_or_are_unknown(self):
        assert check(CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}, conv={"static_shapes": False})) is None
        assert check(CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}, conv={"static_shapes": None})) is None

    def test_silent_when_benchmark_is_on_unknown_or_convs_are_small(self):
        assert check(CudnnBenchmarkOff, gpu_run()) is None
        data = gpu_run(backends={"cudnn_benchmark": False})
        data.environment.backends = None  # a foreign trace: the setting is unknown
        assert check(CudnnBenchmarkOff, data) is None
        assert check(CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}, kernels={"conv_half_ms": 5.0})) is None

class TestChannelsLast:
    def test_fires_on_layout_transforms_around_half_convolutions(self):
        finding = check(ChannelsLast, gpu_run(kernels={"layout_transform_ms": 6.0, "layout_transforms": 120.0}))
        assert finding is not None and finding.id == "channels-last"
        assert finding.evidence["layout_transform_ms"] == 6.0 and finding.evidence["tensor_core_conv_ms"] == 35.0
        assert finding.estimated_saving == pytest.approx(0.06) and "channels_last" in finding.fix

    def test_silent_without_tensor_core_convolutions_or_transforms(self):
        fp32 = {"conv_half_ms": 0.0, "conv_fp32_ms": 35.0, "layout_transform_ms": 6.0}
        assert check(ChannelsLast, gpu_run(kernels=fp32, device=V100)) is None
        assert check(ChannelsLast, gpu_run()) is None  # 0.2 ms of transforms
