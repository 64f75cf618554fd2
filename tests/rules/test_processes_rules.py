from dataclasses import replace

import pytest

from conftest import make_run
from perfdoctor.analysis.rundata import ChildProcess
from perfdoctor.rules.processes import ASSUMED_PENALTY, TrainingInChildProcesses


def check(data, **overrides):
    rule = TrainingInChildProcesses()
    return rule.check(data, replace(rule.Thresholds(), **overrides))


def child(pid: int, threads: int, steps: int = 10) -> ChildProcess:
    # 10 steps of 20 ms: 16 ms of forward, backward and optimizer, 4 ms of other
    return ChildProcess(
        pid=pid, target="__main__.train", start_method="spawn", exitcode=0, status="completed", mode="optimizer",
        steps=steps, median_step_ms=20.0, total_step_ms=20.0 * steps,
        phase_ms={"forward": 6.0 * steps, "backward": 8.0 * steps, "optimizer": 2.0 * steps, "other": 4.0 * steps},
        intra_op_threads=threads,
    )


def test_fires_as_a_warning_when_threads_times_processes_exceed_the_cores():
    data = make_run()  # two usable cores
    data.child_processes = [child(101, threads=2), child(102, threads=2)]
    finding = check(data)
    assert finding is not None and finding.id == "training-in-child-processes"
    assert finding.severity in ("warning", "critical")
    assert finding.evidence["processes"] == 2 and finding.evidence["threads_per_core"] == 2.0
    assert finding.evidence["steps_per_process"] == [10, 10]
    assert finding.estimated_saving == pytest.approx(0.8 * ASSUMED_PENALTY)
    assert finding.confidence == "low" and "not measured" in finding.confidence_reason
    assert "torch.set_num_threads(1)" in finding.fix


def test_info_with_no_saving_when_the_threads_fit_the_cores():
    data = make_run()
    data.child_processes = [child(101, threads=1), child(102, threads=1)]
    finding = check(data)
    assert finding is not None and finding.severity == "info" and finding.estimated_saving == 0
    assert "--nproc-per-node" in finding.fix


def test_the_threshold_decides_what_oversubscribed_means():
    data = make_run()
    data.child_processes = [child(101, threads=2), child(102, threads=2)]
    assert check(data, max_threads_per_core=2.0).severity == "info"


def test_silent_when_no_process_the_script_started_trained():
    assert check(make_run()) is None
