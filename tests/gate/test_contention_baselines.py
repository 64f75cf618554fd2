"""Baselines on a shared machine: each run's contention is recorded with the verdict, and the
verdict is inconclusive where contention explains it.

Recorded fixtures (tests/gate/data/contention_*.json, see record_contention.py there): the
reference workload with no load of ours (`quiet_*`: the development machine is shared, so each
fixture carries what the run measured and the tests read it), with the load generator keeping
every core busy (`busy_*`), and with a planted one-third slowdown (`slow33_*`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate_helpers import loaded, report_with_series
from perfdoctor.gate.regression import RunContention, compare_reports, compare_step_times, run_contention, with_contention
from perfdoctor.model.host import CpuContention

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(path.stem.removeprefix("contention_") for path in DATA.glob("contention_*.json"))


def fixture_report(name: str):
    fixture = json.loads((DATA / f"contention_{name}.json").read_text())
    document = report_with_series(fixture["series"])
    document["host"] = document.get("host") or {}
    document["host"]["contention"] = fixture["host_contention"]
    return loaded(document, Path(f"{name}/report.json"))


def present(*names: str) -> None:
    missing = [name for name in names if name not in FIXTURES]
    if missing:
        pytest.skip(f"fixtures not recorded: {missing}")


def test_fixtures_are_real_runs_that_say_how_busy_the_machine_was():
    assert FIXTURES, "no contention fixtures"
    for name in FIXTURES:
        fixture = json.loads((DATA / f"contention_{name}.json").read_text())
        assert len(fixture["series"]["duration_ms"]) == 60 and "recorded" in fixture["note"]
        contention = fixture["host_contention"]
        assert contention is not None and contention["others_cpu_cores"] is not None
        if name.startswith("busy") or name.endswith("busy"):
            assert contention["shared"] and contention["others_cpu_cores"] > 1.0  # the load generator was seen


@pytest.mark.parametrize("quiet, busy", [(q, b) for q in FIXTURES if q.startswith("quiet") for b in FIXTURES if b.startswith("busy")])
def test_the_same_script_on_a_quiet_and_a_busy_machine_is_not_a_regression(quiet, busy):
    for baseline, candidate in ((quiet, busy), (busy, quiet)):
        result = compare_reports(fixture_report(baseline), fixture_report(candidate), 0.10)
        assert result.verdict != "regression", result.line()
        assert result.baseline_contention is not None and result.candidate_contention is not None
        assert "contention" in result.to_json() and "[contention: baseline" in result.line()


def test_a_one_third_slowdown_measured_alike_stays_a_regression():
    present("quiet_a", "slow33_quiet")
    baseline, candidate = fixture_report("quiet_a"), fixture_report("slow33_quiet")
    base, cand = run_contention(baseline), run_contention(candidate)
    assert base is not None and cand is not None
    if abs(base.lost - cand.lost) > 0.05:
        pytest.skip(f"the recordings met different contention ({base.lost:.2f} and {cand.lost:.2f}): not comparable alike")
    result = compare_reports(baseline, candidate, 0.10)
    assert result.verdict == "regression", result.line()


def contended(lost: float) -> RunContention:
    return RunContention(shared=lost > 0, lost=lost, others_cpu_cores=1.5 if lost else 0.0)


QUIET_STEPS = [10.0 + 0.1 * (i % 5) for i in range(50)]


def test_a_real_regression_on_a_quiet_machine_stays_one():
    result = with_contention(compare_step_times(QUIET_STEPS, [s * 1.33 for s in QUIET_STEPS], 0.10), contended(0.0), contended(0.0))
    assert result.verdict == "regression" and result.step_time_verdict is None


def test_a_candidate_slowed_by_contention_is_inconclusive_and_says_why():
    step_verdict = compare_step_times(QUIET_STEPS, [s * 1.6 for s in QUIET_STEPS], 0.10)
    assert step_verdict.verdict == "regression"
    result = with_contention(step_verdict, contended(0.0), contended(0.4))
    assert result.verdict == "inconclusive" and result.step_time_verdict == "regression"
    assert "waited for CPUs" in result.reason and "1.67x" in result.reason


def test_a_baseline_slowed_by_contention_cannot_clear_the_candidate():
    step_verdict = compare_step_times([s * 1.6 for s in QUIET_STEPS], QUIET_STEPS, 0.10)
    assert step_verdict.verdict == "ok"
    result = with_contention(step_verdict, contended(0.4), contended(0.0))
    assert result.verdict == "inconclusive" and "hide" in result.reason


def test_runs_equally_contended_keep_the_step_time_verdict():
    slower = compare_step_times(QUIET_STEPS, [s * 1.33 for s in QUIET_STEPS], 0.10)
    assert with_contention(slower, contended(0.5), contended(0.5)).verdict == "regression"


def test_reports_without_contention_compare_as_before():
    report = loaded(report_with_series({"stride": 1, "step": list(range(20)), "duration_ms": [10.0] * 20, "profiled": [False] * 20}))
    assert run_contention(report) is None
    result = compare_reports(report, report, 0.10)
    assert result.verdict == "ok" and result.baseline_contention is None
    assert CpuContention(samples=1, interval_s=0.5, usable_cores=2).shared is False
