"""Issue 16's check, with workloads written here independently of sample_workloads/: a CPU job
that keeps about 3 MB more every step gets `memory-growth` at warning or above, with a time to the
limit that agrees with what the job itself measured (its pace, the memory still available when it
ended); a healthy job whose memory rises while it warms up and then stays flat gets no memory
finding. Both again while every core is taken by other processes (tests/loadgen.py)."""

from __future__ import annotations

import json
import textwrap
from contextlib import nullcontext

import pytest

from conftest import run_perfdoctor
from loadgen import busy_cores

MEMORY_FINDINGS = {"memory-growth", "out-of-memory", "memory-rank-imbalance"}
LEAK_BYTES = 3_000_000

# A metrics history that keeps a 3 MB tensor per step (a copy of the step's features), no --steps
# flag (the job's length is unknown to perfdoctor). The job measures its own pace over its second
# half and, as it ends, the memory the machine still has available, for the test to compare with.
LEAK = textwrap.dedent(
    f"""
    import json, sys, time
    import psutil, torch
    from torch import nn

    STEPS = 150
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 8))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    history = {{}}
    stamps = {{}}
    for step in range(STEPS):
        x = torch.randn(128, 64)
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history[step] = torch.full(({LEAK_BYTES} // 4,), float(step))  # written: resident, not just mapped
        time.sleep(0.01)  # a step of a real job's length: on a quiet machine 150 bare steps took 1 s, too few samples
        stamps[step] = time.monotonic()
    half = STEPS // 2
    facts = {{
        "seconds_per_step": (stamps[STEPS - 1] - stamps[half]) / (STEPS - 1 - half),
        "available_bytes": psutil.virtual_memory().available,
        "total_bytes": psutil.virtual_memory().total,
    }}
    with open(sys.argv[1], "w") as out:
        json.dump(facts, out)
    """
)

# A replay buffer with a fixed capacity: the first 40 steps fill it (2 MB each, 80 MB in all),
# then each step overwrites the oldest slot in place. 240 steps.
HEALTHY = textwrap.dedent(
    """
    import time
    import torch
    from torch import nn

    CAPACITY, SLOT = 40, 500_000  # float32: 2 MB a slot
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    buffer = []
    for step in range(240):
        x = torch.randn(128, 64)
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if len(buffer) < CAPACITY:
            buffer.append(torch.full((SLOT,), float(step)))
        else:
            buffer[step % CAPACITY].fill_(float(step))
        time.sleep(0.01)  # a step of a real job's length (see LEAK)
    print(len(buffer))
    """
)


def run_script(tmp_path, source: str, *args: str) -> dict:
    script = tmp_path / "train.py"
    script.write_text(source)
    out = tmp_path / "run"
    result = run_perfdoctor("run", "-q", "--out", str(out), str(script), *args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("busy", [False, True], ids=["quiet", "busy-machine"])
def test_a_job_that_keeps_3_mb_a_step_gets_memory_growth_with_a_sensible_time_to_the_limit(tmp_path, busy):
    facts_path = tmp_path / "facts.json"
    with busy_cores() if busy else nullcontext():
        report = run_script(tmp_path, LEAK, str(facts_path))
    facts = json.loads(facts_path.read_text())
    finding = next((f for f in report["findings"] if f["id"] == "memory-growth"), None)
    assert finding is not None, report["memory"]["trends"]
    assert finding["severity"] in ("warning", "critical")
    evidence = finding["evidence"]
    assert evidence["series"] == "host_process"
    assert 0.85 * LEAK_BYTES <= evidence["growth_mb_per_step"] * 2**20 <= 1.2 * LEAK_BYTES
    assert "job_steps" not in evidence  # nothing in the script's arguments says how long it runs
    # The limit: no cgroup limit here (or one), else the machine's RAM.
    assert evidence["limit_gb"] * 2**30 <= facts["total_bytes"] * 1.01
    # Time to the limit: what the job had left when it ended, at the job's own pace and 3 MB a step.
    expected_s = facts["available_bytes"] / (LEAK_BYTES / facts["seconds_per_step"])
    assert 0.5 * expected_s <= evidence["minutes_to_limit"] * 60 <= 2.0 * expected_s, (evidence, facts)
    assert evidence["limit_at_step"] > 150
    if evidence["minutes_to_limit"] <= 60:  # the job's length is unknown: the limit within the hour is critical
        assert finding["severity"] == "critical"


@pytest.mark.slow
@pytest.mark.parametrize("busy", [False, True], ids=["quiet", "busy-machine"])
def test_a_job_whose_memory_rises_while_warming_up_then_stays_flat_gets_nothing(tmp_path, busy):
    with busy_cores() if busy else nullcontext():
        report = run_script(tmp_path, HEALTHY)
    assert not MEMORY_FINDINGS & {f["id"] for f in report["findings"]}, report["memory"]["trends"]
    trend = next(t for t in report["memory"]["trends"] if t["subject"] == "host_process")
    assert not trend["growing"]
    series, steps = report["memory"]["series"]["process_rss_mb"], report["memory"]["series"]["step"]
    # It did rise (the buffer filling, 40 steps) before it went flat. Samples are denser early on,
    # so the filled buffer is found by step, not by the samples' index.
    filled = next(rss for step, rss in zip(steps, series) if step >= 40)
    assert filled - series[0] > 60, list(zip(steps, series))
