"""GPU rules together: each silent on a healthy GPU run and on a CPU run; on the real traces
through `perfdoctor report`; and each has a planted sample workload that fails fast without CUDA.
The rules themselves are tested per module (test_gpu_<concept>.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import SAMPLE_WORKLOADS, make_loader, make_run, run_perfdoctor
from gpu_runs import gpu_run
from perfdoctor.rules.dataloader import DataLoaderPinMemory
from perfdoctor.rules.registry import builtin_rule_classes

# The GPU rules, and the data-loading rule that reads the GPU section.
GPU_RULES = [rule for rule in builtin_rule_classes() if rule.__module__.startswith("perfdoctor.rules.gpu.")]
READ_THE_GPU = [*GPU_RULES, DataLoaderPinMemory]


def test_the_gpu_rules_are_found():
    assert len(GPU_RULES) == 10 and all(rule.area == "gpu" for rule in GPU_RULES)


def test_a_healthy_gpu_run_fires_nothing():
    data = gpu_run(loaders=[make_loader(wait_total_ms=200)])
    data.dataloaders[0].args["pin_memory"] = True
    assert [rule.id for rule in map(lambda c: c(), READ_THE_GPU) if rule.check(data, rule.Thresholds())] == []


@pytest.mark.parametrize("rule_class", READ_THE_GPU)
def test_every_gpu_rule_is_silent_on_a_cpu_run(rule_class):
    data = make_run()
    assert data.gpu is None
    assert rule_class().check(data, rule_class.Thresholds()) is None


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
    # GPU-bound (utilization ~0.98), no syncs, no pageable copies: only its FP32 matmuls and
    # convolutions on a Tensor Core GPU (65% of the mean steady step) are worth a change.
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
    assert set(PLANTED.values()) == {rule.id for rule in GPU_RULES} | {"dataloader-pin-memory"}
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
