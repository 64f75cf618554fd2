"""However the script's process ends, `perfdoctor run` exits with its status and writes a report
of what it measured: os._exit, SIGKILL (what the OOM killer sends), a segfault in native code,
SIGHUP, and a forked child that calls sys.exit. Each run streams 10 steps, then dies."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

WORKLOADS = Path(__file__).parent.parent / "workloads"
HARD_EXIT = str(WORKLOADS / "hard_exit.py")
ENDINGS = {  # mode -> (exit status, report status, error type)
    "os_exit": (7, "failed", "exit"),
    "sigkill": (128 + 9, "killed", "SIGKILL"),
    "segfault": (128 + 11, "killed", "SIGSEGV"),
    "sighup": (128 + 1, "killed", "SIGHUP"),
    "fork_exit": (0, "completed", None),
}


@pytest.fixture(scope="module")
def ended(tmp_path_factory):
    """Every ending, started together (each costs a torch import)."""
    started = {}
    for mode in ENDINGS:
        folder = tmp_path_factory.mktemp(mode)
        out = folder / "run"
        with open(folder / "stderr", "w") as err, open(folder / "stdout", "w") as stdout:
            command = [sys.executable, "-m", "perfdoctor", "run", "-q", "--out", str(out), "--profile-steps", "2-3", HARD_EXIT, mode]
            started[mode] = (subprocess.Popen(command, stdout=stdout, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"}), folder, out)
    for proc, _, _ in started.values():
        proc.wait(timeout=300)
    return {mode: (proc.returncode, out, (folder / "stdout").read_text(), (folder / "stderr").read_text()) for mode, (proc, folder, out) in started.items()}


@pytest.mark.parametrize("mode", list(ENDINGS))
def test_the_script_status_and_a_report_of_the_steps_before_the_end(ended, mode):
    code, status, error_type = ENDINGS[mode]
    returncode, out, stdout, stderr = ended[mode]
    assert returncode == code, stderr
    report = json.loads((out / "report.json").read_text())
    run = report["run"]
    assert (run["status"], run["exit_code"]) == (status, code)
    assert (run["error"] or {}).get("type") == error_type
    assert report["steps"]["count"] == (20 if mode == "fork_exit" else 10)
    assert (out / "report.html").is_file()
    assert "Traceback" not in stderr
    # The profiled window (steps 2-3) was exported before the end, and the report read it.
    assert report["operators"] is not None and report["profiler"]["traces"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_a_forked_child_never_writes_the_run(ended):
    _, out, stdout, _ = ended["fork_exit"]
    assert "PARENT-DONE" in stdout
    records = [json.loads(line) for line in (out / "raw" / "run.jsonl").read_text().splitlines()]
    ends = [record["end"] for record in records if "end" in record]
    sessions = [record["session"] for record in records if "session" in record]
    assert len(ends) == 1 and ends[0]["pid"] == sessions[0]["pid"]  # the script's process alone


def test_report_again_from_the_streams_and_traces_alone(ended, tmp_path):
    _, out, _, _ = ended["sigkill"]
    again = subprocess.run([sys.executable, "-m", "perfdoctor", "report", "-q", str(out), "--out", str(tmp_path / "again")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert report["run"]["status"] == "killed" and report["steps"]["count"] == 10 and report["operators"] is not None


def test_traces_under_tb_are_found_without_the_raw_streams(ended, tmp_path):
    import shutil

    _, out, _, _ = ended["segfault"]
    copy = shutil.copytree(out, tmp_path / "copy")
    shutil.rmtree(copy / "raw")
    (copy / "report.json").unlink()
    again = subprocess.run([sys.executable, "-m", "perfdoctor", "report", "-q", str(copy)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    report = json.loads((copy / "perfdoctor-report" / "report.json").read_text())
    assert report["operators"] is not None
    trace = next((copy / "tb").rglob("*.pt.trace.json.gz"))
    assert json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]  # complete, not truncated
