"""The optimizer step on the GPU: kernels launched parameter by parameter."""

from __future__ import annotations

from dataclasses import dataclass

from ...analysis.rundata import RunData
from ...model.gpu import OptimizerConfig
from ...model.numbers import rounded
from ..base import Finding, Rule


class OptimizerForeach(Rule):
    """The optimizer step launches small kernels parameter by parameter (no foreach or fused)."""

    id = "optimizer-foreach"
    area = "gpu"
    docs = "https://pytorch.org/docs/stable/optim.html#algorithms"

    @dataclass(frozen=True)
    class Thresholds:
        min_kernels_per_step: float = 100.0  # kernels launched inside Optimizer.step per step
        max_foreach_share: float = 0.5  # above this share of multi-tensor kernels it is foreach already
        recoverable: float = 0.5  # share of the optimizer step that foreach/fused removes

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        gpu = data.gpu
        steps = gpu.trace_steps() if gpu else None
        optimizer = gpu.optimizer if gpu else None
        if gpu is None or steps is None or optimizer is None or optimizer.kernels < limits.min_kernels_per_step:
            return None
        if (optimizer.foreach_share or 0.0) > limits.max_foreach_share:
            return None
        configured = (gpu.optimizers or [OptimizerConfig()])[0]
        if configured.fused:
            return None
        optimizer_ms = max(optimizer.host_ms, optimizer.kernel_ms)
        share = optimizer_ms / steps.step_ms
        kind = configured.type or "/".join(optimizer.names) or "the optimizer"
        explicit = configured.foreach is False
        return self.finding(
            title=f"{kind} launches {optimizer.kernels:g} kernels per step, parameter by parameter",
            evidence={
                "optimizer": kind,
                "foreach": configured.foreach,
                "fused": configured.fused,
                "optimizer_kernels_per_step": optimizer.kernels,
                "multi_tensor_kernel_share": optimizer.foreach_share,
                "optimizer_host_ms": optimizer.host_ms,
                "optimizer_kernel_ms": optimizer.kernel_ms,
                "step_ms": rounded(steps.step_ms),
            },
            saving=share * limits.recoverable,
            advice=(
                f"{'foreach=False is set, so ' if explicit else ''}{kind}.step runs its update one parameter at a time: "
                f"{optimizer.kernels:g} small kernels per step, each paying a launch. The foreach implementation "
                "updates all parameters of a group with a few multi-tensor kernels, and fused=True (Adam, AdamW, SGD "
                "on CUDA) does it in one kernel per group."
            ),
            fix=f"optimizer = torch.optim.{configured.type or 'AdamW'}(model.parameters(), lr=lr, fused=True)  # or foreach=True",
        )
