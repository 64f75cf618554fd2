"""The memory sample workloads, run through `perfdoctor run` as a user would: the planted leak gets
`memory-growth` (warning or above, with a time to the limit); the healthy job whose memory rises
while it warms up, then stays flat, gets no memory finding at all. The GPU ones fail fast here."""

import json
import subprocess
import sys

import pytest

from conftest import SAMPLE_WORKLOADS, run_perfdoctor

MEMORY_FINDINGS = {"memory-growth", "out-of-memory", "memory-rank-imbalance"}
GPU_WORKLOADS = ["gpu_memory_leak.py", "gpu_out_of_memory.py", "gpu_memory_fragmentation.py"]


def run_workload(tmp_path, script, *args):
    out = tmp_path / "run"
    result = run_perfdoctor("run", "-q", "--out", str(out), str(SAMPLE_WORKLOADS / script), *args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_the_planted_host_leak_is_memory_growth(tmp_path):
    report = run_workload(tmp_path, "memory_leak.py", "--steps", "200")
    finding = next((f for f in report["findings"] if f["id"] == "memory-growth"), None)
    assert finding is not None, report["memory"]["trends"]
    assert finding["severity"] in ("warning", "critical")
    evidence = finding["evidence"]
    assert evidence["series"] == "host_process" and 2.5 <= evidence["growth_mb_per_step"] <= 5.0  # 3 MiB kept a step
    assert evidence["minutes_to_limit"] > 0 and evidence["limit_at_step"] > 200
    assert evidence["job_steps"] == 200  # the script's own --steps: the job ends before the limit, a warning
    assert finding["severity"] == "warning"


@pytest.mark.slow
def test_the_healthy_plateau_stays_quiet(tmp_path):
    report = run_workload(tmp_path, "memory_plateau.py")
    assert not MEMORY_FINDINGS & {f["id"] for f in report["findings"]}
    # cpu-contention is the machine, not the job: a shared runner earns it (tests/test_sample_workloads.py)
    assert [f["id"] for f in report["findings"] if f["severity"] != "info" and f["id"] != "cpu-contention"] == []
    trend = next(t for t in report["memory"]["trends"] if t["subject"] == "host_process")
    assert not trend["growing"]
    series, steps = report["memory"]["series"]["process_rss_mb"], report["memory"]["series"]["step"]
    first_epoch = [rss for step, rss in zip(steps, series) if step <= max(steps) / 4]  # by step: samples are denser early
    assert max(first_epoch) - series[0] > 50, list(zip(steps, series))  # it did rise while warming up (the cache filling)


@pytest.mark.parametrize("script", GPU_WORKLOADS)
def test_gpu_memory_workloads_fail_fast_without_cuda(script):
    import torch

    if torch.cuda.is_available():  # pragma: no cover - a GPU machine runs them for real
        pytest.skip("CUDA is available here")
    result = subprocess.run([sys.executable, str(SAMPLE_WORKLOADS / script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "needs a CUDA GPU" in result.stderr
