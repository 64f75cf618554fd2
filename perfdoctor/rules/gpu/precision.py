"""Numeric precision and Tensor Cores: TF32 turned off on an Ampere+ GPU, no mixed precision."""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.rundata import RunData
from ...model.numbers import rounded
from ..base import Finding, Rule, severity_at_most
from . import CUDA_NOTES


class Tf32Disabled(Rule):
    """FP32 matmuls or convolutions on the CUDA cores of an Ampere+ GPU, with TF32 turned off."""

    id = "tf32-disabled"
    area = "gpu"
    docs = f"{CUDA_NOTES}#tensorfloat-32-tf32-on-ampere-and-later-devices"

    @dataclass(frozen=True)
    class Thresholds:
        min_share: float = 0.05  # FP32 matmul/conv kernel time (TF32 off) as a share of the step
        speedup: float = 2.0  # how much faster those kernels run in TF32 (8x peak on A100)

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        gpu = data.gpu
        steps = gpu.trace_steps() if gpu else None
        flags = data.environment.backends
        off = flags.tf32_off() if flags else None
        cc = gpu.capability() if gpu else None
        if gpu is None or steps is None or gpu.kernels is None or flags is None or off is None or cc is None or cc < (8, 0):
            return None
        # The FP32 matmuls and convolutions that TF32 would move to Tensor Cores.
        matmul = gpu.kernels.matmul_fp32_ms if off[0] else 0.0
        conv = gpu.kernels.conv_fp32_ms if off[1] else 0.0
        share = (matmul + conv) / steps.step_ms
        if share < limits.min_share:
            return None
        lines = []
        if matmul:
            lines.append("torch.backends.cuda.matmul.allow_tf32 = True  # or torch.set_float32_matmul_precision('high')")
        if conv:
            lines.append("torch.backends.cudnn.allow_tf32 = True")
        saving = share * (1 - 1 / limits.speedup)
        return self.finding(
            title=f"TF32 is off: FP32 matmuls and convolutions take {share:.0%} of the step on the CUDA cores of {gpu.device_name()}",
            evidence={
                "fp32_matmul_ms": rounded(matmul),
                "fp32_conv_ms": rounded(conv),
                "fp32_share": rounded(share, 4),
                "step_ms": rounded(steps.step_ms),
                "matmul_allow_tf32": flags.matmul_allow_tf32,
                "float32_matmul_precision": flags.float32_matmul_precision,
                "cudnn_allow_tf32": flags.cudnn_allow_tf32,
                "compute_capability": f"{cc[0]}.{cc[1]}",
                "assumed_speedup": limits.speedup,
            },
            saving=saving,
            severity=severity_at_most(saving, "warning"),  # numerics change: validate
            advice=(
                f"{gpu.device_name()} runs FP32 matrix multiplications on its Tensor Cores in TF32 (10-bit mantissa, "
                "FP32 range) at several times the FP32 rate, but PyTorch leaves TF32 off for matmuls by default. "
                "Most training is insensitive to it; turn it on, or go further with autocast (bf16)."
            ),
            fix="import torch\n" + "\n".join(lines),
        )


class AmpNotEnabled(Rule):
    """FP32 matmuls and convolutions on a Tensor Core GPU, and no half-precision kernels at all."""

    id = "amp-not-enabled"
    area = "gpu"
    docs = "https://pytorch.org/docs/stable/amp.html"
    defers_to = ("tf32-disabled",)  # turn TF32 on first; what is left shows in the next run

    @dataclass(frozen=True)
    class Thresholds:
        min_share: float = 0.05  # FP32/TF32 matmul and conv kernel time as a share of the step
        speedup: float = 2.0  # how much faster those kernels run in FP16/BF16

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        gpu = data.gpu
        steps = gpu.trace_steps() if gpu else None
        cc = gpu.capability() if gpu else None
        kernels = gpu.kernels if gpu else None
        if gpu is None or steps is None or cc is None or cc < (7, 0) or kernels is None:
            return None
        if kernels.precision_ms("half") > 0 or kernels.amp_scaler_ops:
            return None
        fp32, tf32 = kernels.precision_ms("fp32"), kernels.precision_ms("tf32")
        share = (fp32 + tf32) / steps.step_ms
        if share < limits.min_share:
            return None
        bf16 = cc >= (8, 0)
        dtype = "torch.bfloat16" if bf16 else "torch.float16"
        scaler = "" if bf16 else "scaler = torch.amp.GradScaler('cuda')\n"
        backward = "loss.backward()\noptimizer.step()" if bf16 else "scaler.scale(loss).backward()\nscaler.step(optimizer)\nscaler.update()"
        saving = share * (1 - 1 / limits.speedup)
        return self.finding(
            title=f"No mixed precision: FP32/TF32 matmuls and convolutions take {share:.0%} of the step on {gpu.device_name()}",
            evidence={
                "fp32_matmul_conv_ms": rounded(fp32),
                "tf32_matmul_conv_ms": rounded(tf32),
                "half_kernel_ms": 0.0,
                "share": rounded(share, 4),
                "step_ms": rounded(steps.step_ms),
                "tensor_core_share": steps.tensor_core_share,
                "compute_capability": f"{cc[0]}.{cc[1]}",
                "assumed_speedup": limits.speedup,
            },
            saving=saving,
            severity=severity_at_most(saving, "warning"),  # numerics change: validate
            advice=(
                f"{gpu.device_name()} (compute capability {cc[0]}.{cc[1]}) has Tensor Cores that run FP16/BF16 matmuls "
                "and convolutions far faster than FP32 (or TF32), yet no half-precision kernel ran. torch.autocast runs "
                f"them in {'bfloat16 (no loss scaling needed)' if bf16 else 'float16 with a GradScaler'} and keeps "
                "precision-sensitive ops in FP32; it also halves activation memory."
            ),
            fix=(
                f"{scaler}with torch.autocast('cuda', dtype={dtype}):\n    loss = loss_fn(model(inputs), targets)\n{backward}"
            ),
        )
