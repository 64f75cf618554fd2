"""Signals to a supervised run: Ctrl-C reaches the script once (from the terminal's group, or
passed on when only perfdoctor got it), a second Ctrl-C while perfdoctor finishes still leaves a
whole report, SIGTERM at any moment gives 143 and `interrupted`, DataLoader workers included."""

from __future__ import annotations

import gzip
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

WORKLOADS = Path(__file__).parent.parent / "workloads"


def start(out: Path, *args: str, group: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "perfdoctor", "run", "-q", "--out", str(out), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=group,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def wait_for(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=1) and (line := proc.stdout.readline()):
            if line.strip() == marker:
                return
        elif proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"{marker!r} never came: {proc.stderr.read()}")


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def tracebacks_python_would_not_print(stderr: str) -> list[str]:
    """The tracebacks in `stderr`, less the one a DataLoader worker prints under plain python
    too: its fd-sharing thread (multiprocessing/resource_sharer.py) reset by the main process
    ending mid-handshake. `python loop_until_signal.py` printed it in 12 of 30 runs, SIGTERM sent
    at a random moment of training."""
    blocks = stderr.split("Traceback (most recent call last):")[1:]
    return [block for block in blocks if "multiprocessing/resource_sharer.py" not in block or "perfdoctor" in block]


@pytest.mark.parametrize("how", ["group", "perfdoctor-only"])
def test_ctrl_c_reaches_the_script_exactly_once(tmp_path, how):
    out = tmp_path / "run"
    proc = start(out, "--no-profile", str(WORKLOADS / "count_sigint.py"), group=True)
    wait_for(proc, "READY")
    if how == "group":  # what a terminal does
        os.killpg(proc.pid, signal.SIGINT)
    else:  # `kill -INT <perfdoctor>`: perfdoctor passes it on
        proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "SIGINTS 1" in stdout  # never twice: perfdoctor knew whether the script had it
    assert report(out)["run"]["status"] == "completed"


def test_ctrl_c_twice_while_perfdoctor_finishes_leaves_a_whole_report(tmp_path):
    out = tmp_path / "run"
    # A profiled window that is still open when the first Ctrl-C comes: stopping exports it.
    proc = start(out, "--profile-steps", "2-100000", "--host-interval", "0.1", str(WORKLOADS / "loop_until_signal.py"), group=True)
    wait_for(proc, "READY")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    # Seen once (exit 1, the script ended by FileNotFoundError in resource_sharer.py), never
    # reproduced: on failure, say how the script ended, from its own record.
    record = out / "raw" / "run.jsonl"
    ended = [line for line in record.read_text().splitlines() if '"end"' in line] if record.is_file() else None
    assert proc.returncode == 130, (ended, stderr[-4000:])
    assert tracebacks_python_would_not_print(stderr) == []
    data = report(out)
    assert (data["run"]["status"], data["run"]["exit_code"]) == ("interrupted", 130)
    assert data["steps"]["count"] >= 3 and (out / "report.html").is_file()
    traces = list((out / "tb").rglob("*.pt.trace.json.gz"))
    for trace in traces:  # complete, or absent and said so
        assert json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
    if not traces:
        assert any("trace export was" in note for note in data["notes"]), data["notes"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_sigterm_at_random_moments(tmp_path):
    """From the moment perfdoctor has written its run record (its own python is up: a signal
    before that kills an interpreter that has run no code yet) to well into training."""
    rng = random.Random(int(os.environ.get("PERFDOCTOR_TEST_SEED", "7")))
    runs = []
    for i in range(5):
        out = tmp_path / f"run{i}"
        runs.append((start(out, "--profile-steps", "3-6", str(WORKLOADS / "loop_until_signal.py")), out, rng.uniform(0.0, 6.0)))
    for proc, out, delay in runs:
        deadline = time.monotonic() + 120
        while not (out / "raw" / "run.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    began = time.monotonic()
    for proc, _, delay in sorted(runs, key=lambda run: run[2]):
        time.sleep(max(0.0, began + delay - time.monotonic()))
        proc.send_signal(signal.SIGTERM)
    for proc, out, delay in runs:
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 143, (delay, stderr)
        data = report(out)
        assert (data["run"]["status"], data["run"]["exit_code"]) == ("interrupted", 143), delay
        assert tracebacks_python_would_not_print(stderr) == [], (delay, stderr)
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("to", ["perfdoctor", "group"])
def test_sigterm_with_dataloader_workers_is_interrupted_every_time(tmp_path, to):
    runs = []
    for i in range(3):
        out = tmp_path / f"run{i}"
        runs.append((start(out, "--no-profile", str(WORKLOADS / "loop_until_signal.py"), group=True), out))
    for proc, _ in runs:
        wait_for(proc, "READY")
        if to == "group":  # a scheduler stopping the whole job: the workers get it too
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
    for proc, out in runs:
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 143, stderr
        data = report(out)
        assert (data["run"]["status"], data["run"]["exit_code"]) == ("interrupted", 143), data["run"]
        assert data["steps"]["count"] >= 3


def test_sigterm_ends_a_script_that_catches_every_exception(tmp_path):
    """Under python SIGTERM ends the process whatever the script catches; perfdoctor's Terminated,
    caught by `except BaseException`, is raised again until the script's call unwinds."""
    under_python = subprocess.Popen([sys.executable, str(WORKLOADS / "swallows_everything.py")], stdout=subprocess.PIPE, text=True)
    wait_for(under_python, "READY")
    under_python.send_signal(signal.SIGTERM)
    under_python.communicate(timeout=60)
    assert under_python.returncode == -signal.SIGTERM
    out = tmp_path / "run"
    proc = start(out, "--no-profile", str(WORKLOADS / "swallows_everything.py"))
    wait_for(proc, "READY")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "swallowed Terminated" in stdout  # the first one was caught: the repeat ended it
    data = report(out)
    assert (data["run"]["status"], data["run"]["exit_code"]) == ("interrupted", 143)
    assert data["steps"]["count"] >= 3
