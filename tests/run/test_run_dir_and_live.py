"""The run directory while a run uses it (locked), after one (a reused --out keeps nothing of the
earlier run), on a full disk; and what is shown while the job runs: progress lines when output
is piped, TensorBoard scalars written live, and a terminal line that never garbles the script's
output (checked on a pseudo-terminal through a terminal emulator)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

WORKLOADS = Path(__file__).parent.parent / "workloads"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def perfdoctor(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "perfdoctor", "run", *args], env=kwargs.pop("env", ENV), **kwargs)


def wait_until(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_directory_in_use_is_refused_naming_its_holder(tmp_path):
    out = tmp_path / "run"
    first = perfdoctor("-q", "--no-profile", "--out", str(out), str(WORKLOADS / "loop_until_signal.py"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (out / "raw" / "steps.jsonl").exists())
        second = subprocess.run([sys.executable, "-m", "perfdoctor", "run", "-q", "--out", str(out), str(WORKLOADS / "show_argv.py")],
                                capture_output=True, text=True, timeout=120, env=ENV)
        assert second.returncode == 2
        assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr and "Traceback" not in second.stderr
        assert "STARTED-AS" not in second.stdout
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    assert json.loads((out / "report.json").read_text())["run"]["script"].endswith("loop_until_signal.py")


def test_a_reused_out_never_shows_an_earlier_killed_runs_trace(tmp_path):
    out = tmp_path / "run"
    killed = perfdoctor("-q", "--profile-steps", "1-2", "--out", str(out), str(WORKLOADS / "loop_until_signal.py"),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_until(lambda: any((out / "tb").rglob("*.pt.trace.json.gz")))
    time.sleep(0.6)
    os.killpg(killed.pid, signal.SIGKILL)  # perfdoctor and the script at once: no report at all
    killed.wait()
    assert not (out / "report.json").exists()
    stray = out / "tb" / "elsewhere" / "someone.1.pt.trace.json.gz"  # a trace no stream names
    stray.parent.mkdir(parents=True)
    stray.write_bytes(next((out / "tb").rglob("*.pt.trace.json.gz")).read_bytes())
    again = subprocess.run([sys.executable, "-m", "perfdoctor", "run", "-q", "--no-profile", "--out", str(out), str(WORKLOADS / "tiny_train.py")],
                           capture_output=True, text=True, timeout=120, env=ENV)
    assert again.returncode == 0, again.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["script"].endswith("tiny_train.py") and report["steps"]["count"] == 6
    assert report["operators"] is None and report["profiler"] is None
    assert [p.name for p in (out / "tb").rglob("*.pt.trace.json.gz")] == [stray.name]  # the earlier run's went


FILL_DISK = """
import os, sys, time
import torch
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
def steps(n):
    for _ in range(n):
        optimizer.zero_grad(); model(torch.randn(4, 8)).sum().backward(); optimizer.step(); time.sleep(0.02)
steps(10)
time.sleep(0.6)
filler = os.path.join(sys.argv[1], "filler")
with open(filler, "wb", buffering=0) as f:
    for size in (65536, 512, 1):  # to the last byte
        try:
            while True:
                f.write(b"x" * size)
        except OSError:
            pass
steps(60)  # several KiB of step records to stream, more than a page's slack
time.sleep(0.6)
if sys.argv[2] == "free":
    os.unlink(filler)
    time.sleep(0.6)
sys.exit(3)
"""


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("then", ["free", "stay-full"])
def test_a_full_disk_is_one_line_and_the_scripts_status(tmp_path, small_disk, then):
    script = tmp_path / "fill_disk.py"
    script.write_text(FILL_DISK)
    out = small_disk / "run"
    result = subprocess.run([sys.executable, "-m", "perfdoctor", "run", "-q", "--no-profile", "--out", str(out), str(script), str(small_disk), then],
                            capture_output=True, text=True, timeout=180, env=ENV)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("perfdoctor:") and "No space left" in line]
    assert 1 <= len(lines) <= 2, result.stderr  # the script's process says it once; the report, if it cannot be written
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    if then == "free":  # written again once there was room: everything kept
        report = json.loads((out / "report.json").read_text())
        assert (report["run"]["status"], report["run"]["exit_code"]) == ("failed", 3)
        assert report["steps"]["count"] == 70
    else:
        (small_disk / "filler").unlink()
        again = subprocess.run([sys.executable, "-m", "perfdoctor", "report", "-q", str(out)], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert json.loads((out / "report.json").read_text())["steps"]["count"] >= 10  # what was written before is kept


def test_piped_output_gets_progress_lines_and_tensorboard_scalars_are_live(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    env = {**ENV, "PERFDOCTOR_PROGRESS_EVERY_S": "1"}
    proc = perfdoctor("--no-profile", "--host-interval", "0.2", "--out", str(out), str(WORKLOADS / "loop_until_signal.py"),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: (out / "raw" / "steps.jsonl").exists())
        time.sleep(4)
        folder = out / "tb" / "loop_until_signal"
        events = EventAccumulator(str(folder))

        def scalars(tag):
            events.Reload()  # while the job runs
            return events.Scalars(tag) if tag in events.Tags()["scalars"] else []

        # A busy machine (CI) may take longer to get the first steps and host samples out.
        wait_until(lambda: len(scalars("step/time_ms")) >= 3 and len(scalars("host/rss_mb")) >= 3, timeout=90)
        steps, host = scalars("step/time_ms"), scalars("host/rss_mb")
        assert len(steps) >= 3 and [e.step for e in steps] == list(range(len(steps)))
        walls = [e.wall_time for e in steps]
        assert walls == sorted(walls) and walls[-1] > walls[0] and abs(walls[-1] - time.time()) < 30  # true wall times
        assert len(host) >= 3 and len({e.wall_time for e in host}) == len(host)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    # Host samples are placed at the steps done when they were taken, not at milliseconds. Compared
    # once the run has ended: while it runs, a sample is read live and steps a flush later (at about
    # 900 steps/s, a few hundred steps behind).
    steps, host = scalars("step/time_ms"), scalars("host/rss_mb")
    assert max(e.step for e in host) <= max(e.step for e in steps) + 1
    progress = [line for line in stderr.splitlines() if line.startswith("perfdoctor:") and "steps" in line and "median step" in line]
    assert len(progress) >= 2, stderr
    assert stderr.splitlines()[0] == f"perfdoctor: run directory {out}"


PRINTER = """
import time, torch
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for i in range(40):
    optimizer.zero_grad(); model(torch.randn(4, 8)).sum().backward(); optimizer.step()
    print(f"line {i:02d} of the script's own output", flush=True)
    time.sleep(0.1)
"""


def test_the_terminal_line_never_garbles_the_scripts_output(tmp_path):
    import pty

    import pyte

    script = tmp_path / "printer.py"
    script.write_text(PRINTER)
    rows, columns = 12, 100
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "perfdoctor", "run", "--no-profile", "--out", str(tmp_path / "run"), str(script)],
                            stdin=slave, stdout=slave, stderr=slave, env={**ENV, "TERM": "xterm"}, start_new_session=True)
    os.close(slave)
    screen = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(screen)
    seen_progress = False
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
            stream.feed(data)
            bottom = screen.display[-1]
            if "perfdoctor" in bottom and "steps" in bottom:
                seen_progress = True
                lines = [line.strip() for line in screen.display[:-1] if line.strip().startswith("line ")]
                numbers = [int(line.split()[1]) for line in lines]
                assert numbers == sorted(numbers) and all(line.endswith("own output") for line in lines), screen.display
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    assert seen_progress, output[-2000:]
    text = output.decode(errors="replace")
    for i in range(40):
        assert f"line {i:02d} of the script's own output" in text  # every line whole
    assert screen.margins is None or (screen.margins.top, screen.margins.bottom) == (0, rows - 1)  # region restored
    assert "\x1b[r" in text
