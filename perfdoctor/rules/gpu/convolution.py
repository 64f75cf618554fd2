"""Convolutions: cuDNN's autotuner left off for static shapes, and NCHW tensors that Tensor Core
convolutions must transpose."""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.rundata import RunData
from ...model.numbers import rounded
from ..base import Finding, Rule


class CudnnBenchmarkOff(Rule):
    """Convolutions with the same shapes every step, and cuDNN's autotuner (benchmark) off."""

    id = "cudnn-benchmark-off"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html#enable-cudnn-auto-tuner"

    @dataclass(frozen=True)
    class Thresholds:
        min_conv_share: float = 0.10  # convolution kernel time as a share of the step
        expected_gain: float = 0.20  # share of convolution time the autotuned kernels save

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        gpu, flags = data.gpu, data.environment.backends
        steps = gpu.trace_steps() if gpu else None
        if gpu is None or steps is None or flags is None or flags.cudnn_benchmark is not False or flags.cudnn_enabled is False:
            return None
        conv = gpu.conv
        if conv is None or conv.static_shapes is not True:
            return None  # changing shapes: benchmark would re-tune for every new shape
        conv_time = gpu.kernels.conv_ms() if gpu.kernels else 0.0
        share = conv_time / steps.step_ms
        if share < limits.min_conv_share:
            return None
        return self.finding(
            title=f"cuDNN autotuning is off while convolutions take {share:.0%} of the step, with the same shapes every step",
            evidence={
                "cudnn_benchmark": False,
                "conv_kernel_ms": rounded(conv_time),
                "conv_share": rounded(share, 4),
                "step_ms": rounded(steps.step_ms),
                "conv_ops_per_step": conv.ops_per_step,
                "distinct_conv_shapes": conv.distinct_shapes,
                "profiled_steps": steps.profiled,
                "expected_gain_share": limits.expected_gain,
            },
            saving=share * limits.expected_gain,
            advice=(
                f"Every profiled step ran its {conv.ops_per_step:g} convolutions with the same input shapes, "
                "and torch.backends.cudnn.benchmark is False, so cuDNN picks each kernel by heuristics. With "
                "benchmark=True it times the candidate algorithms once per shape and keeps the fastest. The estimate "
                f"assumes a {limits.expected_gain:.0%} faster convolution time."
            ),
            fix="import torch\ntorch.backends.cudnn.benchmark = True  # before the first forward pass",
        )


class ChannelsLast(Rule):
    """Tensor Core convolutions on NCHW tensors: cuDNN transposes them to NHWC and back."""

    id = "channels-last"
    area = "gpu"
    docs = "https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html"

    @dataclass(frozen=True)
    class Thresholds:
        min_transform_share: float = 0.01  # NCHW<->NHWC transform kernels, share of the step

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        gpu = data.gpu
        steps = gpu.trace_steps() if gpu else None
        cc = gpu.capability() if gpu else None
        kernels = gpu.kernels if gpu else None
        if steps is None or kernels is None or cc is None or cc < (7, 0):
            return None
        tensor_core_conv = kernels.conv_half_ms + kernels.conv_tf32_ms
        transforms = kernels.layout_transform_ms
        share = transforms / steps.step_ms
        if tensor_core_conv <= 0 or share < limits.min_transform_share:
            return None
        return self.finding(
            title=f"cuDNN spends {share:.1%} of the step converting NCHW tensors to NHWC and back",
            evidence={
                "layout_transform_ms": rounded(transforms),
                "layout_transforms_per_step": kernels.layout_transforms,
                "tensor_core_conv_ms": rounded(tensor_core_conv),
                "half_conv_ms": kernels.conv_half_ms,
                "tf32_conv_ms": kernels.conv_tf32_ms,
                "step_ms": rounded(steps.step_ms),
                "share": rounded(share, 4),
            },
            saving=share,
            advice=(
                "Tensor Core convolutions (FP16/BF16 with autocast, or TF32) work in NHWC layout; with the default NCHW "
                "tensors cuDNN transposes inputs and outputs around each of them. Convert the model and the inputs to "
                "channels_last once: the transposes go away, and the convolutions themselves often get faster."
            ),
            fix="model = model.to(memory_format=torch.channels_last)\ninputs = inputs.to('cuda', memory_format=torch.channels_last, non_blocking=True)",
        )
