"""The profiler collector: the window it picks for short and long jobs, the trace it writes where
TensorBoard finds it, and stepping aside for a profiler the script starts itself."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfdoctor.collect.collectors.profiler import DEFAULT_START, DEFAULT_STEPS, LONG_JOB_STEPS, ProfileWindow, choose_window
from perfdoctor.stream.rundir import RunDir

WORKLOADS = Path(__file__).parents[2] / "workloads"


# -- the window -------------------------------------------------------------------------------


def test_long_and_unbounded_jobs_keep_the_default_window():
    default = ProfileWindow(DEFAULT_START, DEFAULT_STEPS)
    assert choose_window(None) == default
    assert choose_window(LONG_JOB_STEPS) == default
    assert choose_window(1000) == default
    assert default.warmup_step == DEFAULT_START - 1 and default.end == DEFAULT_START + DEFAULT_STEPS


@pytest.mark.parametrize(
    "max_steps, window",
    [(1, ProfileWindow(0, 1)), (2, ProfileWindow(1, 1)), (3, ProfileWindow(1, 1)), (6, ProfileWindow(2, 2)), (15, ProfileWindow(5, 5))],
)
def test_short_jobs_get_a_window_that_fits(max_steps, window):
    assert choose_window(max_steps) == window


@given(st.integers(min_value=1, max_value=LONG_JOB_STEPS - 1))
def test_a_short_job_window_always_ends_inside_the_job(max_steps):
    window = choose_window(max_steps)
    assert window.steps >= 1 and window.start >= 0
    assert window.end <= max_steps
    if max_steps >= 2:  # room for a warm-up step before the window, inside the job
        assert window.warmup_step is not None and window.warmup_step >= 0


@given(st.one_of(st.none(), st.integers(1, 500)), st.integers(0, 50), st.integers(1, 20))
def test_explicit_steps_win(max_steps, start, steps):
    assert choose_window(max_steps, start, steps) == ProfileWindow(start, steps)


# -- end to end -------------------------------------------------------------------------------


def perfdoctor_run(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "perfdoctor", "run", "-q", "--out", str(out), *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_trace_is_written_under_tb_script_stem(tmp_path):
    out = tmp_path / "run"
    result = perfdoctor_run(out, "--max-steps", "3", str(WORKLOADS / "tiny_train.py"))  # window fitted: step 1
    assert result.returncode == 0, result.stderr
    traces = sorted((out / "tb" / "tiny_train").glob("*.pt.trace.json.gz"))
    assert len(traces) == 1, sorted(map(str, (out / "tb").rglob("*")))
    events = json.loads(gzip.decompress(traces[0].read_bytes()))["traceEvents"]
    assert any(str(event.get("name", "")).startswith("aten::") for event in events)
    profiler = RunDir(out).read_raw_file("profiler", None)
    assert profiler["window"] == {"start": 1, "steps": 1}
    assert profiler["profiled_steps"] == [0, 1]
    assert profiler["traces"] == [str(traces[0].relative_to(out))]
    assert profiler["stood_aside"] is None
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == "stopped" and report["steps"]["count"] == 3


@pytest.mark.slow
def test_a_backslash_in_the_output_path_keeps_the_trace(tmp_path):
    # Kineto takes "\\" for a path separator: its export renamed to a folder that does not exist
    out = tmp_path / "a\\b" / "run"
    result = perfdoctor_run(out, "--max-steps", "3", str(WORKLOADS / "tiny_train.py"))
    assert result.returncode == 0, result.stderr
    assert [path.name.endswith(".pt.trace.json.gz") for path in (out / "tb" / "tiny_train").iterdir() if "tfevents" not in path.name] == [True]
    assert json.loads((out / "report.json").read_text())["operators"]["trace_files"]


@pytest.mark.slow
@pytest.mark.parametrize("user_starts_at, traced", [(0, False), (3, True)], ids=["before-window", "inside-window"])
def test_the_scripts_own_profiler_makes_ours_stand_aside(tmp_path, user_starts_at, traced):
    out = tmp_path / "run"
    result = perfdoctor_run(out, "--profile-steps", "2-4", str(WORKLOADS / "user_profiler.py"), str(user_starts_at))
    assert result.returncode == 0, result.stderr
    assert "USER-PROFILER-EVENTS True" in result.stdout  # the user's profiler recorded its own events
    report = json.loads((out / "report.json").read_text())
    assert (report["run"]["status"], report["run"]["exit_code"]) == ("completed", 0)
    assert report["steps"]["count"] == user_starts_at + 6
    aside = report["profiler"]["stood_aside"]
    assert aside is not None and aside["at_step"] == user_starts_at
    assert bool(report["profiler"]["traces"]) is traced  # inside the window: what was recorded is kept
    assert any(f"step {user_starts_at}" in note for note in report["notes"])


@pytest.mark.slow
def test_the_window_is_profiled_on_training_steps_after_a_no_optimizer_pass(tmp_path):
    """Batch-steps before the first optimizer step are folded into one warm-up step and the step
    numbers begin again: the window must then be the training steps', in a single trace."""
    out = tmp_path / "run"
    result = perfdoctor_run(out, "--profile-steps", "2-3", str(WORKLOADS / "eval_then_train.py"))
    assert result.returncode == 0, result.stderr
    assert "Profiler clears events" not in result.stderr  # no second profiling cycle
    profiler = RunDir(out).read_raw_file("profiler", None)
    assert profiler["profiled_steps"] == [1, 2, 3]
    traces = sorted((out / "tb" / "eval_then_train").glob("*.pt.trace.json.gz"))
    assert profiler["traces"] == [str(path.relative_to(out)) for path in traces] and len(traces) == 1
    names = {str(event.get("name", "")) for event in json.loads(gzip.decompress(traces[0].read_bytes()))["traceEvents"]}
    assert any("Optimizer.step" in name for name in names)  # a training step, not the no-grad pass
    assert json.loads((out / "report.json").read_text())["steps"]["count"] == 8
