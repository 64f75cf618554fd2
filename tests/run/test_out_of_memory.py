"""A script that dies of an out-of-memory error gets an `out-of-memory` finding naming the step,
the phase and the module it died in; its exit status is the script's own."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, run_perfdoctor

WORKLOAD = REPO / "tests" / "workloads" / "out_of_memory.py"


@pytest.mark.parametrize("kind", ["host", "cuda"])
def test_an_oom_in_a_forward_is_a_finding_with_where_it_happened(tmp_path, kind):
    out = tmp_path / "run"
    result = run_perfdoctor("run", "-q", "--no-profile", "--out", str(out), str(WORKLOAD), kind)
    assert result.returncode == 1, result.stderr[-2000:]
    assert ("MemoryError" if kind == "host" else "OutOfMemoryError") in result.stderr  # the traceback, as python shows it
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == "failed"
    oom = report["memory"]["oom"]
    assert oom["kind"] == kind and oom["step"] == 5 and oom["phase"] == "forward"
    assert oom["module_type"] == "Attention" and oom["module_path"] == "Sequential.1"
    assert "out_of_memory.py" in oom["source"]
    finding = next(f for f in report["findings"] if f["id"] == "out-of-memory")
    assert finding["severity"] == "critical" and "step 5" in finding["title"] and "Sequential.1" in finding["title"]
    if kind == "cuda":  # no device here: the allocator could not be asked, and the report says so much
        assert oom["summary"] is None and finding["evidence"]["peak_allocated_gb"] is None


def test_a_kill_judged_an_oom_kill_carries_its_evidence_to_the_report():
    import signal

    from perfdoctor.run.outcome import outcome_of_exit_status
    from perfdoctor.stream import assemble

    memory = {"used_bytes": 15 * 2**30, "limit_bytes": 16 * 2**30, "source": "cgroup", "oom_kills": 1}
    outcome = outcome_of_exit_status(-signal.SIGKILL, None, memory)
    assert outcome.status == "killed" and outcome.oom == memory
    run = assemble.run([{"start": {"script": "x.py"}}, {"outcome": outcome.to_json()}])
    assert run["oom"] == memory and run["status"] == "killed"
    plain = outcome_of_exit_status(-signal.SIGKILL, None, {"used_bytes": 1, "limit_bytes": 16 * 2**30, "source": "ram"})
    assert plain.oom is None and "oom" not in plain.to_json()
