"""analysis/contention.py and the cpu-contention rule, on host streams shaped as the sampler
writes them: per 0.5 s interval, the job's threads' ms running and waiting for a CPU, the tree's
and the others' CPU. Three machines: quiet, busy (every core spun by others), and quiet but
oversubscribed by the job itself (its waiting is its own: not contention); and that oversubscribed
job on a busy machine, where the training thread mostly waits for the job's own threads and the
others' cost shows in the job's CPU time."""

from __future__ import annotations

import pytest

from conftest import make_host, make_run
from perfdoctor.analysis.contention import summarize_contention
from perfdoctor.config import Config
from perfdoctor.rules.cpu import CpuContention
from perfdoctor.rules.registry import evaluate

SOURCES = {"job_root": "supervisor", "schedstat": True, "pressure": "/proc/pressure/cpu", "cgroup": {"version": 1, "quota_cores": None, "throttling": True, "pressure": False}}


def stream(n=40, *, tree_run, tree_wait, main_run, main_wait, tree_cpu, others, steps_per=5, throttled=0.0):
    """A host stream of `n` samples 500 ms apart; per-interval values (ms, or % of one core)."""
    samples = {name: [] for name in ("t_ns", "step", "tree_cpu", "others_cpu", "tree_run_ms", "tree_wait_ms", "main_run_ms", "main_wait_ms", "throttled_ms", "throttled_periods", "top_others", "pressure_some")}
    for i in range(n):
        samples["t_ns"].append(i * 500_000_000)
        samples["step"].append(2 + i * steps_per)
        first = i == 0
        samples["tree_cpu"].append(None if first else tree_cpu)
        samples["others_cpu"].append(None if first else others)
        for name, value in (("tree_run_ms", tree_run), ("tree_wait_ms", tree_wait), ("main_run_ms", main_run), ("main_wait_ms", main_wait)):
            samples[name].append(0.0 if first else value)
        samples["throttled_ms"].append(0.0 if first else throttled)
        samples["throttled_periods"].append(0 if first else int(throttled > 0))
        samples["top_others"].append([["spinner", others * 0.9]] if others >= 20 and not first else None)
        samples["pressure_some"].append(None if first else 0.5)
    return {"interval_s": 0.5, "logical_cores": 2, "cpu_sources": SOURCES, "samples": samples}


QUIET = dict(tree_run=480.0, tree_wait=4.0, main_run=470.0, main_wait=3.0, tree_cpu=96.0, others=4.0)
BUSY = dict(tree_run=170.0, tree_wait=330.0, main_run=165.0, main_wait=320.0, tree_cpu=34.0, others=166.0)
OVERSUBSCRIBED = dict(tree_run=1000.0, tree_wait=3000.0, main_run=125.0, main_wait=375.0, tree_cpu=200.0, others=2.0)
# 16 threads on 2 cores beside 2 spinners (as sample_workloads/thread_oversubscription.py under
# tests/loadgen.py measured): the job gets 0.85 cores, the others 1.15.
OVERSUBSCRIBED_BUSY = dict(tree_run=425.0, tree_wait=6475.0, main_run=43.0, main_wait=200.0, tree_cpu=85.0, others=115.0)


def summary(raw):
    return summarize_contention(raw, 2, list(range(len(raw["samples"]["t_ns"]))))


def test_a_quiet_machine_is_not_shared():
    contention = summary(stream(**QUIET))
    assert contention is not None and not contention.shared
    assert contention.others_cpu_cores == pytest.approx(0.04)
    assert contention.main_wait_share == pytest.approx(3 / 500, abs=1e-3)


def test_a_busy_machine_is_shared_and_its_cost_measured():
    contention = summary(stream(**BUSY))
    assert contention is not None and contention.shared
    assert contention.others_cpu_cores == pytest.approx(1.66)
    # demand (170 + 330) / 500 = 1 core of 2: all of the waiting is the others' doing
    assert contention.others_wait_share == pytest.approx(330 / 500)
    assert contention.main_wait_share == pytest.approx(320 / 500)
    assert contention.main_wait_ms_per_step == pytest.approx(320 / 5)
    assert [other.name for other in contention.top_others] == ["spinner"]


def test_waiting_for_the_jobs_own_threads_is_not_contention():
    contention = summary(stream(**OVERSUBSCRIBED))
    assert contention is not None and not contention.shared
    # 8 cores' worth of runnable threads on 2 cores: 6 of them wait whatever the others do
    assert contention.others_wait_share == pytest.approx(0.0) and contention.wait_share == pytest.approx(0.75)


def test_an_oversubscribed_job_on_a_busy_machine_is_shared():
    contention = summary(stream(**OVERSUBSCRIBED_BUSY))
    assert contention is not None and contention.shared
    # demand 13.8 cores on 2: 11.8 cores' worth of waiting is the job's own; the other 575 ms of
    # each interval's waiting is CPU time the 2 cores could have given the job
    assert contention.others_wait_share == pytest.approx(575 / 6900)
    assert contention.lost_cpu_share == pytest.approx(575 / 1000)
    assert contention.main_wait_share == pytest.approx(200 * 575 / 6475 / 500)


def test_a_throttling_quota_is_contention_too():
    contention = summary(stream(**QUIET, throttled=50.0))
    assert contention is not None and contention.shared and contention.throttled_share == pytest.approx(0.1)


def test_samples_without_these_readings_give_no_contention():
    raw = stream(**QUIET)
    del raw["samples"]["tree_cpu"]
    assert summary(raw) is None


def with_contention(machine, **extra):
    host = make_host()
    host.contention = summary(stream(**machine, **extra))
    return make_run(step_ms=100.0, host=host)


def test_the_rule_fires_on_a_busy_machine_with_its_evidence():
    finding = CpuContention().check(with_contention(BUSY), CpuContention.Thresholds())
    assert finding is not None and finding.id == "cpu-contention" and finding.severity == "critical"
    assert finding.estimated_saving == pytest.approx(0.64)
    evidence = finding.evidence
    assert evidence["training_thread_wait_per_step_ms"] == pytest.approx(64.0)
    assert evidence["top_other_processes"][0]["name"] == "spinner" and evidence["others_cpu_cores"] == 1.66
    assert "quiet machine" in finding.advice and "torch.set_num_threads(1)" in finding.advice


@pytest.mark.parametrize("machine", [QUIET, OVERSUBSCRIBED])
def test_the_rule_never_fires_on_a_quiet_machine(machine):
    data = with_contention(machine)
    assert CpuContention().check(data, CpuContention.Thresholds()) is None
    assert "cpu-contention" not in {f.id for f in evaluate(data, Config())}


def test_the_rule_fires_on_the_cpu_time_an_oversubscribed_job_lost():
    data = with_contention(OVERSUBSCRIBED_BUSY)
    finding = CpuContention().check(data, CpuContention.Thresholds())
    assert finding is not None and "57% of the CPU time" in finding.title
    assert finding.evidence["training_thread_wait_per_step_ms"] < 5 and finding.evidence["job_lost_cpu_share"] == pytest.approx(0.575)
    breakdown = data.steps.breakdown
    compute = breakdown.forward + breakdown.backward + breakdown.optimizer
    assert compute > 0 and finding.estimated_saving == pytest.approx(0.575 * compute, abs=1e-3)
    assert finding.confidence == "medium" and "estimated from the job's CPU time" in finding.confidence_reason
    assert "lost 57% of the CPU time" in finding.advice


def test_the_rule_names_a_throttling_quota():
    finding = CpuContention().check(with_contention(QUIET, throttled=50.0), CpuContention.Thresholds())
    assert finding is not None and "quota" in finding.title and finding.estimated_saving == pytest.approx(0.1)


def test_timing_findings_on_a_shared_machine_say_so():
    data = with_contention(BUSY)
    data.environment.threads.intra_op = 16  # cpu-thread-oversubscription, without a probe
    findings = {f.id: f for f in evaluate(data, Config())}
    assert findings["cpu-contention"].confidence == "high"
    oversubscribed = findings["cpu-thread-oversubscription"]
    assert oversubscribed.confidence in ("medium", "low") and "machine was shared" in oversubscribed.confidence_reason
    quiet = {f.id: f for f in evaluate(with_contention(QUIET), Config())}
    assert all(f.confidence == "high" for f in quiet.values())
