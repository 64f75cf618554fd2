"""GPU rules: each fires with checked evidence and saving where its problem is real, stays silent
on a healthy GPU run and on a CPU run; on the real traces through `perfdoctor report`; and each
has a planted sample workload that fails fast without CUDA."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace

import pytest

from conftest import SAMPLE_WORKLOADS, make_loader, make_run, run_perfdoctor
from perfdoctor.rules import gpu as rules

GIB = 2**30
HEALTHY_BACKENDS = {
    "cudnn_enabled": True, "cudnn_benchmark": True, "cudnn_deterministic": False, "cudnn_allow_tf32": True,
    "matmul_allow_tf32": True, "float32_matmul_precision": "high",
}
HEALTHY_GPU = {
    "device": {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "capability": [8, 0], "total_memory_bytes": 80 * GIB, "tensor_cores": True},
    "utilization": 0.92,
    "utilization_source": "trace",
    "peak_memory_bytes": 40 * GIB,
    "steps": {
        "profiled": 5, "synthetic": False, "step_ms": 100.0, "device_lag_ms": 2.0, "kernel_ms": 92.0, "comm_ms": 0.0,
        "memcpy_ms": 1.0, "memcpy_htod_ms": 1.0, "memcpy_dtoh_ms": 0.0, "memcpy_dtod_ms": 0.0, "memset_ms": 0.1,
        "busy_ms": 93.0, "idle_ms": 7.0, "idle_host_wait_ms": 3.0, "idle_after_sync_ms": 0.0, "idle_launch_gaps_ms": 2.0,
        "idle_host_stalls_ms": 1.0, "idle_other_ms": 4.0, "kernels": 400.0, "short_kernel_share": 0.2,
        "short_kernel_us": 10.0, "median_kernel_us": 60.0, "tensor_core_share": 0.7, "syncs": 0.0, "sync_ms": 0.0,
        "pageable_copies": 0.0, "pageable_htod_copies": 0.0, "pageable_htod_ms": 0.0, "pageable_bytes": 0,
    },
    "per_step": [],
    "sync_causes": [],
    "pageable_causes": [],
    "stall_ops": [],
    "kernels": {
        "matmul_half_ms": 30.0, "matmul_tf32_ms": 0.0, "matmul_fp32_ms": 1.0, "conv_half_ms": 35.0, "conv_tf32_ms": 0.0,
        "conv_fp32_ms": 0.0, "layout_transform_ms": 0.2, "layout_transforms": 4.0, "dominant_precision": "half",
        "amp_scaler_ops": False,
    },
    "conv": {"ops_per_step": 20.0, "shapes_recorded": True, "static_shapes": True, "distinct_shapes": 12},
    "optimizer": {"host_ms": 3.0, "kernels": 12.0, "kernel_ms": 2.0, "foreach_kernels": 12.0, "foreach_share": 1.0, "names": ["AdamW.step"]},
    "memory": {
        "total_bytes": 80 * GIB, "torch_peak_allocated_bytes": 38 * GIB, "torch_peak_reserved_bytes": 40 * GIB,
        "nvml_process_peak_bytes": 41 * GIB, "nvml_device_used_peak_bytes": 42 * GIB, "peak_share": 0.525,
    },
    "nvml": None,
    "optimizers": [{"type": "AdamW", "foreach": None, "fused": True, "devices": ["cuda"]}],
    "mfu": None,
}
V100 = {"name": "Tesla V100-SXM2-32GB", "capability": [7, 0], "total_memory_bytes": 32 * GIB}


def gpu_run(backends=None, loaders=None, breakdown=None, **changes):
    """A run on an A100 whose `gpu` section is HEALTHY_GPU with `changes` merged into its blocks."""
    section = copy.deepcopy(HEALTHY_GPU)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key].update(value)
        else:
            section[key] = value
    environment = {"backends": {**HEALTHY_BACKENDS, **(backends or {})}}
    data = make_run(breakdown, step_ms=100.0, loaders=loaders if loaders is not None else [], environment=environment)
    data.gpu = section
    return data


def check(rule_class, data, **overrides):
    rule = rule_class()
    return rule.check(data, replace(rule.Thresholds(), **overrides))


def test_a_healthy_gpu_run_fires_nothing():
    data = gpu_run(loaders=[make_loader(wait_total_ms=200)])
    data.dataloaders[0].args["pin_memory"] = True
    assert [rule.id for rule in map(lambda c: c(), rules.RULES) if rule.check(data, rule.Thresholds())] == []


@pytest.mark.parametrize("rule_class", rules.RULES)
def test_every_gpu_rule_is_silent_on_a_cpu_run(rule_class):
    data = make_run()
    assert data.gpu is None
    assert rule_class().check(data, rule_class.Thresholds()) is None


class TestCudnnBenchmarkOff:
    def test_fires_on_static_conv_shapes_with_benchmark_off(self):
        finding = check(rules.CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}))
        assert finding is not None and finding.id == "cudnn-benchmark-off"
        assert finding.evidence["conv_share"] == 0.35 and finding.evidence["conv_kernel_ms"] == 35.0
        assert finding.estimated_saving == pytest.approx(0.35 * 0.20)
        assert "cudnn.benchmark = True" in finding.fix

    def test_silent_when_shapes_change_or_are_unknown(self):
        assert check(rules.CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}, conv={"static_shapes": False})) is None
        assert check(rules.CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}, conv={"static_shapes": None})) is None

    def test_silent_when_benchmark_is_on_unknown_or_convs_are_small(self):
        assert check(rules.CudnnBenchmarkOff, gpu_run()) is None
        data = gpu_run(backends={"cudnn_benchmark": False})
        data.environment.pop("backends")  # a foreign trace: the setting is unknown
        assert check(rules.CudnnBenchmarkOff, data) is None
        assert check(rules.CudnnBenchmarkOff, gpu_run(backends={"cudnn_benchmark": False}, kernels={"conv_half_ms": 5.0})) is None


FP32_A100 = {"matmul_half_ms": 0.0, "conv_half_ms": 0.0, "matmul_fp32_ms": 40.0, "conv_fp32_ms": 0.0, "dominant_precision": "fp32"}
TF32_OFF = {"matmul_allow_tf32": False, "float32_matmul_precision": "highest"}


class TestTf32Disabled:
    def test_fires_on_fp32_matmuls_of_an_ampere_gpu_with_tf32_off(self):
        finding = check(rules.Tf32Disabled, gpu_run(backends=TF32_OFF, kernels=FP32_A100))
        assert finding is not None and finding.id == "tf32-disabled"
        assert finding.evidence["fp32_matmul_ms"] == 40.0 and finding.evidence["fp32_share"] == 0.4
        assert finding.estimated_saving == pytest.approx(0.4 * (1 - 1 / 2.0)) and finding.severity == "warning"
        assert "matmul.allow_tf32 = True" in finding.fix and "cudnn.allow_tf32" not in finding.fix

    def test_counts_fp32_convolutions_when_cudnn_tf32_is_off(self):
        data = gpu_run(backends={**TF32_OFF, "cudnn_allow_tf32": False}, kernels={**FP32_A100, "conv_fp32_ms": 20.0})
        finding = check(rules.Tf32Disabled, data)
        assert finding.evidence["fp32_share"] == 0.6 and "cudnn.allow_tf32 = True" in finding.fix

    def test_silent_before_ampere_or_with_tf32_on(self):
        assert check(rules.Tf32Disabled, gpu_run(backends=TF32_OFF, kernels=FP32_A100, device=V100)) is None
        assert check(rules.Tf32Disabled, gpu_run(kernels=FP32_A100)) is None

    def test_amp_not_enabled_defers_to_it(self):
        data = gpu_run(backends=TF32_OFF, kernels=FP32_A100)
        assert check(rules.Tf32Disabled, data) is not None
        assert check(rules.AmpNotEnabled, data) is None


class TestAmpNotEnabled:
    def test_fires_on_tf32_work_of_an_ampere_gpu_and_suggests_bf16(self):
        kernels = {**FP32_A100, "matmul_fp32_ms": 0.0, "matmul_tf32_ms": 30.0, "conv_tf32_ms": 30.0, "dominant_precision": "tf32"}
        finding = check(rules.AmpNotEnabled, gpu_run(kernels=kernels))
        assert finding is not None and finding.id == "amp-not-enabled"
        assert finding.evidence["tf32_matmul_conv_ms"] == 60.0 and finding.evidence["share"] == 0.6
        assert finding.estimated_saving == pytest.approx(0.3) and finding.severity == "warning"  # numerics change: never critical
        assert "torch.bfloat16" in finding.fix and "GradScaler" not in finding.fix

    def test_fires_on_a_v100_and_suggests_fp16_with_a_scaler(self):
        kernels = {**FP32_A100, "matmul_fp32_ms": 25.0, "conv_fp32_ms": 35.0}
        finding = check(rules.AmpNotEnabled, gpu_run(kernels=kernels, device=V100))
        assert finding.evidence["fp32_matmul_conv_ms"] == 60.0 and finding.evidence["compute_capability"] == "7.0"
        assert "torch.float16" in finding.fix and "GradScaler" in finding.fix

    def test_silent_with_half_kernels_a_grad_scaler_or_no_tensor_cores(self):
        assert check(rules.AmpNotEnabled, gpu_run()) is None  # half kernels ran
        scaler = {**FP32_A100, "amp_scaler_ops": True}
        assert check(rules.AmpNotEnabled, gpu_run(kernels=scaler)) is None
        p100 = {"name": "Tesla P100-PCIE-16GB", "capability": [6, 0]}
        assert check(rules.AmpNotEnabled, gpu_run(kernels=FP32_A100, device=p100)) is None
        assert check(rules.AmpNotEnabled, gpu_run(kernels={**FP32_A100, "matmul_fp32_ms": 4.0})) is None


SYNCING = {"syncs": 12.0, "sync_ms": 20.0, "idle_after_sync_ms": 8.0}


class TestHostDeviceSync:
    def test_fires_with_the_ops_that_synced_and_the_idle_they_caused(self):
        causes = [{"op": "aten::item", "per_step": 10.0, "ms_per_step": 18.0}, {"op": "aten::nonzero", "per_step": 2.0, "ms_per_step": 2.0}]
        finding = check(rules.HostDeviceSync, gpu_run(steps=SYNCING, sync_causes=causes))
        assert finding is not None and finding.id == "host-device-sync"
        assert finding.evidence["causes_per_step"] == {"aten::item": 10.0, "aten::nonzero": 2.0}
        assert finding.evidence["idle_after_sync_ms"] == 8.0 and finding.evidence["host_blocked_ms"] == 20.0
        assert finding.estimated_saving == pytest.approx(0.08)
        assert ".item()" in finding.advice and "nonzero" in finding.advice

    def test_silent_when_syncs_cost_the_device_nothing(self):
        assert check(rules.HostDeviceSync, gpu_run(steps={**SYNCING, "idle_after_sync_ms": 0.05})) is None
        assert check(rules.HostDeviceSync, gpu_run()) is None


PAGEABLE = {"pageable_htod_copies": 2.0, "pageable_htod_ms": 6.0, "pageable_copies": 2.0, "pageable_bytes": 2**26}


class TestPageableCopies:
    def test_pageable_memcpy_fires_without_a_dataloader(self):
        causes = [{"op": "aten::to", "per_step": 2.0, "ms_per_step": 6.0}]
        finding = check(rules.PageableMemcpy, gpu_run(steps=PAGEABLE, pageable_causes=causes))
        assert finding is not None and finding.id == "pageable-memcpy"
        assert finding.evidence["pageable_htod_copies_per_step"] == 2.0 and finding.evidence["pageable_htod_ms"] == 6.0
        assert finding.estimated_saving == pytest.approx(0.06) and "aten::to" in finding.advice
        assert check(rules.DataLoaderPinMemory, gpu_run(steps=PAGEABLE)) is None

    def test_an_unpinned_dataloader_takes_it_over(self):
        data = gpu_run(steps=PAGEABLE, loaders=[make_loader(num_workers=4, wait_total_ms=100)])
        assert check(rules.PageableMemcpy, data) is None
        finding = check(rules.DataLoaderPinMemory, data)
        assert finding is not None and finding.id == "dataloader-pin-memory"
        assert finding.evidence["pin_memory"] is False and finding.evidence["num_workers"] == 4
        assert finding.estimated_saving == pytest.approx(0.06)
        assert "pin_memory=True" in finding.fix and "non_blocking=True" in finding.fix

    def test_a_pinned_dataloader_leaves_other_pageable_copies_to_pageable_memcpy(self):
        loader = make_loader(wait_total_ms=100)
        loader.args["pin_memory"] = True
        data = gpu_run(steps=PAGEABLE, loaders=[loader])
        assert check(rules.DataLoaderPinMemory, data) is None
        assert check(rules.PageableMemcpy, data) is not None

    def test_silent_without_pageable_copies(self):
        data = gpu_run(loaders=[make_loader(wait_total_ms=100)])
        assert check(rules.DataLoaderPinMemory, data) is None and check(rules.PageableMemcpy, data) is None


LAUNCH_BOUND = {"kernels": 900.0, "idle_launch_gaps_ms": 50.0, "idle_host_wait_ms": 60.0, "idle_ms": 65.0, "short_kernel_share": 0.6}


class TestLaunchBound:
    def test_fires_when_the_device_waits_between_many_short_kernels(self):
        finding = check(rules.GpuIdleLaunchBound, gpu_run(steps=LAUNCH_BOUND, utilization=0.35))
        assert finding is not None and finding.id == "gpu-idle-launch-bound"
        assert finding.evidence["launch_gap_share"] == 0.5 and finding.evidence["kernels_per_step"] == 900.0
        assert finding.estimated_saving == pytest.approx(0.25) and "torch.compile" in finding.fix

    def test_silent_with_few_kernels_or_short_gaps(self):
        assert check(rules.GpuIdleLaunchBound, gpu_run(steps={**LAUNCH_BOUND, "kernels": 30.0})) is None
        assert check(rules.GpuIdleLaunchBound, gpu_run(steps={**LAUNCH_BOUND, "idle_launch_gaps_ms": 10.0})) is None


STALLING = {"idle_host_stalls_ms": 40.0, "idle_other_ms": 10.0, "idle_ms": 60.0}
DATA_WAIT = {"dataloader": 0.05, "forward": 0.40, "backward": 0.45, "optimizer": 0.05, "other": 0.05}


class TestLowUtilization:
    def test_fires_on_idle_no_other_rule_explains(self):
        stall_ops = [{"op": "aten::copy_", "ms_per_step": 30.0}, {"op": "(Python, outside any op)", "ms_per_step": 10.0}]
        data = gpu_run(steps=STALLING, utilization=0.3, stall_ops=stall_ops, breakdown=DATA_WAIT)
        finding = check(rules.GpuLowUtilization, data)
        assert finding is not None and finding.id == "gpu-low-utilization"
        # 40 ms stalls + 10 ms other idle - 5 ms waiting on the DataLoader
        assert finding.evidence["unexplained_idle_ms"] == 45.0 and finding.evidence["dataloader_wait_ms"] == 5.0
        assert finding.evidence["host_ops_during_stalls_ms"] == {"aten::copy_": 30.0, "(Python, outside any op)": 10.0}
        assert finding.estimated_saving == pytest.approx(0.45) and "aten::copy_" in finding.advice

    def test_defers_to_the_specific_rules(self):
        # the same low utilization, made of launch gaps and idle after syncs: not this rule's
        steps = {"idle_host_stalls_ms": 5.0, "idle_other_ms": 2.0, "idle_launch_gaps_ms": 40.0, "idle_after_sync_ms": 20.0}
        assert check(rules.GpuLowUtilization, gpu_run(steps=steps, utilization=0.3)) is None

    def test_silent_when_busy_enough_or_without_real_steps(self):
        assert check(rules.GpuLowUtilization, gpu_run(steps=STALLING, utilization=0.7)) is None
        assert check(rules.GpuLowUtilization, gpu_run(steps={**STALLING, "synthetic": True}, utilization=0.3)) is None


class TestMemoryNearLimit:
    def test_a_risk_not_time_warning_near_the_limit(self):
        memory = {"peak_share": 0.97, "torch_peak_reserved_bytes": 77 * GIB, "torch_peak_allocated_bytes": 60 * GIB}
        finding = check(rules.GpuMemoryNearLimit, gpu_run(memory=memory))
        assert finding is not None and finding.id == "gpu-memory-near-limit"
        assert finding.estimated_saving == 0.0 and finding.severity == "warning"
        assert finding.evidence["peak_share"] == 0.97 and finding.evidence["total_bytes"] == 80 * GIB
        assert "expandable_segments" in finding.advice  # reserved well above allocated: fragmentation

    def test_info_between_the_thresholds_and_silent_below(self):
        assert check(rules.GpuMemoryNearLimit, gpu_run(memory={"peak_share": 0.92})).severity == "info"
        assert check(rules.GpuMemoryNearLimit, gpu_run()) is None
        assert check(rules.GpuMemoryNearLimit, gpu_run(memory={"peak_share": None})) is None


class TestChannelsLast:
    def test_fires_on_layout_transforms_around_half_convolutions(self):
        finding = check(rules.ChannelsLast, gpu_run(kernels={"layout_transform_ms": 6.0, "layout_transforms": 120.0}))
        assert finding is not None and finding.id == "channels-last"
        assert finding.evidence["layout_transform_ms"] == 6.0 and finding.evidence["tensor_core_conv_ms"] == 35.0
        assert finding.estimated_saving == pytest.approx(0.06) and "channels_last" in finding.fix

    def test_silent_without_tensor_core_convolutions_or_transforms(self):
        fp32 = {"conv_half_ms": 0.0, "conv_fp32_ms": 35.0, "layout_transform_ms": 6.0}
        assert check(rules.ChannelsLast, gpu_run(kernels=fp32, device=V100)) is None
        assert check(rules.ChannelsLast, gpu_run()) is None  # 0.2 ms of transforms


PER_PARAMETER = {"host_ms": 20.0, "kernels": 800.0, "kernel_ms": 8.0, "foreach_kernels": 0.0, "foreach_share": 0.0, "names": ["Adam.step"]}


class TestOptimizerForeach:
    def test_fires_on_a_per_parameter_optimizer(self):
        data = gpu_run(optimizer=PER_PARAMETER, optimizers=[{"type": "Adam", "foreach": False, "fused": None, "devices": ["cuda"]}])
        finding = check(rules.OptimizerForeach, data)
        assert finding is not None and finding.id == "optimizer-foreach"
        assert finding.evidence["optimizer_kernels_per_step"] == 800.0 and finding.evidence["foreach"] is False
        assert finding.estimated_saving == pytest.approx(0.2 * 0.5)
        assert "foreach=False is set" in finding.advice and "torch.optim.Adam(" in finding.fix and "fused=True" in finding.fix

    def test_silent_when_foreach_or_fused_or_few_kernels(self):
        assert check(rules.OptimizerForeach, gpu_run()) is None
        assert check(rules.OptimizerForeach, gpu_run(optimizer={**PER_PARAMETER, "foreach_share": 0.9})) is None
        assert check(rules.OptimizerForeach, gpu_run(optimizer={**PER_PARAMETER, "kernels": 60.0})) is None
        fused = [{"type": "Adam", "foreach": None, "fused": True, "devices": ["cuda"]}]
        assert check(rules.OptimizerForeach, gpu_run(optimizer=PER_PARAMETER, optimizers=fused)) is None


# --- the real traces, through `perfdoctor report` ------------------------------------------------


def report(shared_traces, tmp_path, folder):
    out = tmp_path / folder
    result = run_perfdoctor("report", "-q", str(shared_traces / folder), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((out / "report.json").read_text())


def by_id(report_json):
    return {finding["id"]: finding for finding in report_json["findings"]}


@pytest.mark.slow
def test_alexnet_trace_fires_pageable_copies_and_syncs(shared_traces, tmp_path):
    found = by_id(report(shared_traces, tmp_path, "a100_alexnet_sync"))
    pageable, sync = found["pageable-memcpy"], found["host-device-sync"]
    assert pageable["evidence"]["pageable_htod_copies_per_step"] == 16.0
    assert pageable["evidence"]["causes_per_step"] == {"aten::to": 16.0} and pageable["evidence"]["pageable_htod_ms"] == 55.503
    assert sync["evidence"]["syncs_per_step"] == 21.0 and sync["evidence"]["causes_per_step"]["aten::to"] == 16.0
    # one 43 s "step" (no ProfilerStep, CUDA set-up included): real problems, tiny shares
    assert {f["severity"] for f in found.values()} == {"info"}


@pytest.mark.slow
def test_ddp_trace_is_launch_bound_with_host_stalls(shared_traces, tmp_path):
    found = by_id(report(shared_traces, tmp_path, "a100_ddp_nccl_2rank"))
    launch = found["gpu-idle-launch-bound"]
    assert launch["severity"] == "warning" and launch["evidence"]["kernels_per_step"] == 900.0
    assert 0.45 < launch["evidence"]["launch_gap_share"] < 0.6
    low = found["gpu-low-utilization"]["evidence"]
    assert "aten::unflatten_dense_tensors" in low["host_ops_during_stalls_ms"]  # DDP's bucket copies on the host
    assert found["channels-last"]["severity"] == "info" and found["amp-not-enabled"]["severity"] == "info"
    assert "host-device-sync" not in found and "optimizer-foreach" not in found  # 8 cheap syncs; SGD is foreach


@pytest.mark.slow
def test_v100_trace_only_lacks_mixed_precision(shared_traces, tmp_path):
    result = report(shared_traces, tmp_path, "v100_training")
    loud = {f["id"] for f in result["findings"] if f["severity"] != "info"}
    # GPU-bound (utilization ~0.97), no syncs, no pageable copies: only its FP32 matmuls and
    # convolutions on a Tensor Core GPU (75% of the step) are worth a change.
    assert loud == {"amp-not-enabled"}
    assert result["gpu"]["utilization"] > 0.95


@pytest.mark.slow
def test_cpu_only_trace_has_no_gpu_findings(shared_traces, tmp_path):
    result = report(shared_traces, tmp_path, "cpu_only")
    assert result["gpu"] is None and result["findings"] == []


# --- planted sample workloads -----------------------------------------------------------------

PLANTED = {
    "gpu_cudnn_benchmark_off.py": "cudnn-benchmark-off",
    "gpu_amp_not_enabled.py": "amp-not-enabled",
    "gpu_tf32_disabled.py": "tf32-disabled",
    "gpu_host_device_sync.py": "host-device-sync",
    "gpu_pageable_memcpy.py": "pageable-memcpy",
    "gpu_dataloader_pin_memory.py": "dataloader-pin-memory",
    "gpu_idle_launch_bound.py": "gpu-idle-launch-bound",
    "gpu_low_utilization.py": "gpu-low-utilization",
    "gpu_memory_near_limit.py": "gpu-memory-near-limit",
    "gpu_channels_last.py": "channels-last",
    "gpu_optimizer_foreach.py": "optimizer-foreach",
}


def test_every_gpu_rule_has_a_planted_workload():
    assert set(PLANTED.values()) == {rule.id for rule in rules.RULES}
    assert {path.name for path in SAMPLE_WORKLOADS.glob("gpu_*.py")} >= set(PLANTED) | {"gpu_healthy.py"}
    for script, rule_id in PLANTED.items():
        assert rule_id in (SAMPLE_WORKLOADS / script).read_text(), script


@pytest.mark.parametrize("script", sorted(PLANTED) + ["gpu_healthy.py"])
def test_gpu_workloads_fail_fast_without_cuda(script):
    import torch

    if torch.cuda.is_available():  # pragma: no cover - a GPU machine runs them for real
        pytest.skip("CUDA is available here")
    result = subprocess.run([sys.executable, str(SAMPLE_WORKLOADS / script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "needs a CUDA GPU" in result.stderr
