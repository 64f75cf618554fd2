"""Runs on a GPU for the rule tests: a healthy A100 run's `gpu` section built from the model's
own classes (a renamed field fails here, not silently in every rule test), and a run around it
with chosen changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from msgspec.structs import replace as changed

from conftest import make_environment, make_run
from perfdoctor.model.environment import Backends
from perfdoctor.model.gpu import (
    ConvShapes,
    GpuDevice,
    GpuMemory,
    GpuSection,
    GpuSteps,
    KernelClasses,
    OptimizerConfig,
    OptimizerKernels,
)

GIB = 2**30
HEALTHY_BACKENDS = Backends(
    cudnn_enabled=True, cudnn_benchmark=True, cudnn_deterministic=False, cudnn_allow_tf32=True,
    matmul_allow_tf32=True, float32_matmul_precision="high",
)
A100 = GpuDevice(index=0, name="NVIDIA A100-SXM4-80GB", capability=(8, 0), total_memory_bytes=80 * GIB, tensor_cores=True)
V100 = GpuDevice(index=0, name="Tesla V100-SXM2-32GB", capability=(7, 0), total_memory_bytes=32 * GIB, tensor_cores=True)
P100 = GpuDevice(index=0, name="Tesla P100-PCIE-16GB", capability=(6, 0), tensor_cores=False)
HEALTHY_STEPS = GpuSteps(
    profiled=5, synthetic=False, step_ms=100.0, device_lag_ms=2.0, kernel_ms=92.0, comm_ms=0.0,
    memcpy_ms=1.0, memcpy_htod_ms=1.0, memcpy_dtoh_ms=0.0, memcpy_dtod_ms=0.0, memset_ms=0.1,
    busy_ms=93.0, idle_ms=7.0, idle_host_wait_ms=3.0, idle_after_sync_ms=0.0, idle_launch_gaps_ms=2.0,
    idle_host_stalls_ms=1.0, idle_other_ms=4.0, kernels=400.0, short_kernel_share=0.2,
    short_kernel_us=10.0, median_kernel_us=60.0, tensor_core_share=0.7, syncs=0.0, sync_ms=0.0,
    pageable_copies=0.0, pageable_htod_copies=0.0, pageable_htod_ms=0.0, pageable_bytes=0,
)
HEALTHY_KERNELS = KernelClasses(
    matmul_half_ms=30.0, matmul_tf32_ms=0.0, matmul_fp32_ms=1.0, conv_half_ms=35.0, conv_tf32_ms=0.0,
    conv_fp32_ms=0.0, layout_transform_ms=0.2, layout_transforms=4.0, dominant_precision="half", amp_scaler_ops=False,
)
HEALTHY_GPU = GpuSection(
    device=A100,
    utilization=0.92,
    utilization_source="trace",
    peak_memory_bytes=40 * GIB,
    steps=HEALTHY_STEPS,
    kernels=HEALTHY_KERNELS,
    conv=ConvShapes(ops_per_step=20.0, shapes_recorded=True, static_shapes=True, distinct_shapes=12),
    optimizer=OptimizerKernels(host_ms=3.0, kernels=12.0, kernel_ms=2.0, foreach_kernels=12.0, foreach_share=1.0, names=["AdamW.step"]),
    optimizers=[OptimizerConfig(type="AdamW", foreach=None, fused=True, devices=["cuda"])],
    memory=GpuMemory(
        total_bytes=80 * GIB, torch_peak_allocated_bytes=38 * GIB, torch_peak_reserved_bytes=40 * GIB,
        nvml_process_peak_bytes=41 * GIB, nvml_device_used_peak_bytes=42 * GIB, peak_share=0.525,
    ),
    nvml=None,
    mfu=None,
)


def gpu_run(backends: dict[str, Any] | None = None, loaders: list | None = None, breakdown: dict[str, float] | None = None, **changes: Any):
    """A run on an A100 whose `gpu` section is HEALTHY_GPU with `changes` (a dict changes the
    fields of that block; anything else replaces it), with the settings snapshot's backends."""
    blocks = {}
    for key, value in changes.items():
        current = getattr(HEALTHY_GPU, key)
        blocks[key] = changed(current, **value) if isinstance(value, dict) and current is not None else value
    environment = make_environment(backends=changed(HEALTHY_BACKENDS, **(backends or {})))
    data = make_run(breakdown, step_ms=100.0, loaders=loaders if loaders is not None else [], environment=environment)
    data.gpu = changed(HEALTHY_GPU, **blocks)
    return data


def check(rule_class, data, **overrides):
    rule = rule_class()
    return rule.check(data, replace(rule.Thresholds(), **overrides))
