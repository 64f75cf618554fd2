"""The peak-FLOPs table, FLOPs counted from input shapes, and MFU."""

from __future__ import annotations

import pytest

from perfdoctor.analysis.gpu.mfu import StepFlops, _conv_flops, _matmul_flops, mfu_section, peak_for, peak_tflops

# Device names as torch.cuda.get_device_name / NVML / trace deviceProperties write them.
NAMES = {
    "Tesla V100-SXM2-32GB": ("V100 SXM2", 15.7, None, 125.0),
    "Tesla V100-PCIE-16GB": ("V100 PCIe", 14.0, None, 112.0),
    "Tesla V100S-PCIE-32GB": ("V100S PCIe", 16.4, None, 130.0),
    "Tesla T4": ("T4", 8.1, None, 65.0),
    "NVIDIA A10": ("A10", 31.2, 62.5, 125.0),
    "NVIDIA A10G": ("A10G", 35.0, 35.0, 70.0),
    "NVIDIA A30": ("A30", 10.3, 82.0, 165.0),
    "NVIDIA A40": ("A40", 37.4, 74.8, 149.7),
    "NVIDIA A100-SXM4-40GB": ("A100", 19.5, 156.0, 312.0),
    "NVIDIA A100-SXM4-80GB": ("A100", 19.5, 156.0, 312.0),
    "NVIDIA A100-PCIE-40GB": ("A100", 19.5, 156.0, 312.0),
    "NVIDIA A100 80GB PCIe": ("A100", 19.5, 156.0, 312.0),
    "NVIDIA A100-PG509-200": ("A100", 19.5, 156.0, 312.0),
    "NVIDIA L4": ("L4", 30.3, 60.0, 121.0),
    "NVIDIA L40": ("L40", 90.5, 90.5, 181.05),
    "NVIDIA L40S": ("L40S", 91.6, 183.0, 362.05),
    "NVIDIA H100 80GB HBM3": ("H100 SXM", 66.9, 494.7, 989.4),
    "NVIDIA H100 PCIe": ("H100 PCIe", 51.2, 378.0, 756.0),
    "NVIDIA H100 NVL": ("H100 NVL", 60.0, 417.5, 835.5),
    "NVIDIA H200": ("H200 SXM", 66.9, 494.7, 989.4),
    "NVIDIA H200 NVL": ("H200 NVL", 60.0, 417.5, 835.5),
    "NVIDIA GH200 480GB": ("GH200", 66.9, 494.7, 989.4),
    "NVIDIA B200": ("B200", None, 1100.0, 2250.0),
    "NVIDIA GeForce RTX 3090": ("GeForce RTX 3090", 35.6, 35.6, 71.0),
    "NVIDIA GeForce RTX 4090": ("GeForce RTX 4090", 82.6, 82.6, 165.2),
    "NVIDIA RTX A6000": ("RTX A6000", 38.7, 77.4, 154.8),
}


@pytest.mark.parametrize("name, expected", sorted(NAMES.items()))
def test_device_names_find_their_peaks(name, expected):
    model, fp32, tf32, half = expected
    peak = peak_for(name)
    assert peak is not None and peak.model == model
    assert (peak_tflops(peak, "fp32"), peak_tflops(peak, "tf32"), peak_tflops(peak, "half")) == (fp32, tf32, half)


@pytest.mark.parametrize("name", ["NVIDIA H100", "NVIDIA GeForce RTX 3090 Ti", "NVIDIA GeForce GTX 1080", "Tesla V100", "", None, "AMD Instinct MI250X"])
def test_unknown_or_ambiguous_devices_have_no_peak(name):
    assert peak_for(name) is None


def test_flops_of_a_matmul_and_a_convolution_from_their_shapes():
    assert _matmul_flops([[64, 128], [128, 256]], 0) == 2 * 64 * 128 * 256
    assert _matmul_flops([[256], [64, 128], [128, 256], [], []], 1) == 2 * 64 * 128 * 256  # addmm: bias first
    assert _matmul_flops([[4, 64, 128], [4, 128, 32]], 0) == 2 * 4 * 64 * 128 * 32  # bmm
    assert _matmul_flops([[64, 128], [127, 256]], 0) == 0  # inner sizes disagree: not counted
    # convolution_backward(grad_output [N, Cout, H, W], input, weight [Cout, Cin/groups, kh, kw])
    assert _conv_flops([[8, 16, 30, 30], [8, 3, 32, 32], [16, 3, 3, 3]]) == 2 * 8 * 16 * 30 * 30 * 3 * 3 * 3
    assert _conv_flops([[8, 32, 30, 30], [8, 32, 32, 32], [32, 1, 3, 3]]) == 2 * 8 * 32 * 900 * 9  # depthwise


def test_mfu_is_achieved_over_peak_for_the_precision_in_use():
    section = mfu_section(StepFlops(156e12 * 0.1 / 4, "shapes", {"aten::mm": 1.0}), 100.0, "NVIDIA A100-SXM4-80GB", "tf32")
    # 3.9 TFLOP in 0.1 s is 39 TFLOPS, a quarter of the A100's 156 TF32 TFLOPS.
    assert section.achieved_tflops == pytest.approx(39.0)
    assert section.peak_tflops == 156.0 and section.mfu == pytest.approx(0.25)
    assert mfu_section(StepFlops(3.9e12, "trace", {}), 100.0, "NVIDIA A100-SXM4-80GB", "half").mfu == pytest.approx(0.125)


def test_no_mfu_rather_than_a_wrong_one():
    flops = StepFlops(1e12, "shapes", {"aten::mm": 1e12})
    unknown = mfu_section(flops, 100.0, "NVIDIA H100", "half")
    assert unknown.mfu is None and "not in the peak-FLOPs table" in unknown.reason
    assert unknown.achieved_tflops == pytest.approx(10.0)  # still worth showing
    no_bf16 = mfu_section(flops, 100.0, "Tesla T4", "tf32")
    assert no_bf16.mfu is None and "no tf32 peak" in no_bf16.reason
    nothing = mfu_section(StepFlops(None, "none", {}), 100.0, "NVIDIA A100-SXM4-80GB", "tf32")
    assert nothing.mfu is None and "no FLOPs" in nothing.reason
