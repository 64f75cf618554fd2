"""The runner, through `perfdoctor run` in a subprocess: the script runs as `python SCRIPT` would
run it, and however it ends, the exit status is the script's and report.json says how it ended.

Each run costs a torch import (about a second of CPU), so the runs that need no interaction are
started together, once, by the `runs` fixture (only those the selected tests use), and each test
then waits for its own.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil
import pytest

WORKLOADS = Path(__file__).parent.parent / "workloads"
RUN_TIMEOUT_S = 300  # generous: every run below shares two noisy cores with the others


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def perfdoctor_command(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "perfdoctor", "run", "-q", "--out", str(out), *args]


def load_report(out: Path) -> dict:
    path = out / "report.json"
    assert path.is_file(), f"no report.json in {out}"
    return json.loads(path.read_text())


def started_as(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("STARTED-AS ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("STARTED-AS ") :])


# -- runs started together --------------------------------------------------------------------


@dataclass
class Run:
    """One `perfdoctor run` in the background, its output going to files (no pipe to fill)."""

    folder: Path
    cwd: Path | None
    out: Path
    proc: subprocess.Popen

    @classmethod
    def start(cls, folder: Path, args: list[str], cwd: Path | None) -> "Run":
        out = folder / "run"
        stdout, stderr = open(folder / "stdout", "w"), open(folder / "stderr", "w")
        with stdout, stderr:
            proc = subprocess.Popen(perfdoctor_command(out, *args), cwd=cwd, env=child_env(), stdout=stdout, stderr=stderr)
        return cls(folder, cwd, out, proc)

    def wait(self) -> "Run":
        try:
            self.proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"perfdoctor run did not end in {RUN_TIMEOUT_S} s: {self.stderr}")
        return self

    @property
    def returncode(self) -> int:
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return (self.folder / "stdout").read_text()

    @property
    def stderr(self) -> str:
        return (self.folder / "stderr").read_text()

    @property
    def report(self) -> dict:
        return load_report(self.out)


def _linked_script(folder: Path) -> tuple[list[str], Path]:
    (folder / "linked_show_argv.py").symlink_to(WORKLOADS / "show_argv.py")
    return ["--no-profile", "linked_show_argv.py", *SCRIPT_ARGS], folder


def _namespace_module(folder: Path) -> tuple[list[str], Path]:
    package = folder / "nspkg"  # a namespace package: no __init__.py needed
    package.mkdir()
    (package / "show_argv.py").write_text((WORKLOADS / "show_argv.py").read_text())
    # --profile-steps 0-0 with no step at all: the profiler still leaves a (short) trace.
    return ["--profile-steps", "0-0", "-m", "nspkg.show_argv", *MODULE_ARGS], folder


def _syntax_error(folder: Path) -> tuple[list[str], Path]:
    (folder / "broken.py").write_text("x = (\n")
    return ["--no-profile", "broken.py"], folder


SCRIPT_ARGS = ["--", "-m", "x", "--max-steps", "3", "--out", "x", "-q", "--no-profile"]
MODULE_ARGS = ["a", "--", "-b", "--max-steps", "2"]
EXITS = str(WORKLOADS / "exits.py")

# key -> (perfdoctor options and script with its arguments, cwd), or a function of a fresh folder
# that prepares it and returns them.
RUNS: dict[str, tuple[list[str], Path | None] | Callable[[Path], tuple[list[str], Path]]] = {
    "script-relative": (["--no-profile", "workloads/show_argv.py", *SCRIPT_ARGS], WORKLOADS.parent),
    "script-symlink": _linked_script,
    "module": _namespace_module,
    "exit-3": (["--no-profile", EXITS, "3"], None),
    "exit-none": (["--no-profile", EXITS, "none"], None),
    "exit-0": (["--no-profile", EXITS, "0"], None),
    "exit-message": (["--no-profile", EXITS, "message"], None),
    "raise": (["--no-profile", EXITS, "raise"], None),
    "syntax-error": _syntax_error,
    "max-steps-optimizer": (["--no-profile", "--max-steps", "5", str(WORKLOADS / "swallowing_loop.py"), "optimizer"], None),
    "max-steps-loader": (["--no-profile", "--max-steps", "5", str(WORKLOADS / "swallowing_loop.py"), "loader"], None),
    "workers-fork": (["--no-profile", str(WORKLOADS / "dataloader_workers.py"), "fork"], None),
    "workers-spawn": (["--no-profile", str(WORKLOADS / "dataloader_workers.py"), "spawn", "persistent"], None),
}


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """Starts, all at once, the RUNS that the selected tests of this module ask for."""
    wanted = {
        item.callspec.params["key"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and "runs" in item.fixturenames and hasattr(item, "callspec")
    }
    started: dict[str, Run] = {}
    try:
        for key in sorted(wanted):
            folder = tmp_path_factory.mktemp(key)
            spec = RUNS[key]
            args, cwd = spec(folder) if callable(spec) else spec
            started[key] = Run.start(folder, args, cwd)
        yield started
    finally:
        for run in started.values():
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()


def run_for(runs: dict[str, Run], key: str) -> Run:
    return runs[key].wait()


# -- the script sees what `python SCRIPT` would show it ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("key", ["script-relative", "script-symlink"])
def test_script_runs_as_python_would_run_it(runs, key):
    run = run_for(runs, key)
    script = "workloads/show_argv.py" if key == "script-relative" else "linked_show_argv.py"
    plain = subprocess.run([sys.executable, script, *SCRIPT_ARGS], cwd=run.cwd, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    expected = started_as(plain.stdout)
    # python puts the script's real directory (not a link's) in sys.path[0]
    assert expected["argv"] == [script, *SCRIPT_ARGS] and expected["path0"] == str(WORKLOADS.resolve())

    assert run.returncode == 0, run.stderr
    assert started_as(run.stdout) == expected  # argv, sys.path[0], __name__, __file__, __spec__
    report_run = run.report["run"]
    assert report_run["status"] == "completed" and report_run["exit_code"] == 0
    assert report_run["argv"] == SCRIPT_ARGS
    assert report_run["max_steps"] is None  # "--max-steps 3" after the script was the script's


@pytest.mark.slow
@pytest.mark.parametrize("key", ["module"])
def test_module_runs_as_python_dash_m_would_run_it(runs, key):
    run = run_for(runs, key)
    plain = subprocess.run([sys.executable, "-m", "nspkg.show_argv", *MODULE_ARGS], cwd=run.cwd, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    expected = started_as(plain.stdout)
    assert expected["argv"] == [str(run.cwd / "nspkg" / "show_argv.py"), *MODULE_ARGS]
    assert expected["path0"] == str(run.cwd)

    assert run.returncode == 0, run.stderr
    seen = started_as(run.stdout)
    assert seen == expected and seen["name"] == "__main__"
    report = run.report
    assert (report["run"]["status"], report["run"]["exit_code"], report["run"]["module"]) == ("completed", 0, "nspkg.show_argv")
    assert report["run"]["max_steps"] is None
    # The trace and the scalars are one TensorBoard run, named after the module.
    assert [p.parent.name for p in (run.out / "tb").rglob("*.pt.trace.json.gz")] == ["nspkg.show_argv"]
    assert {p.parent.name for p in (run.out / "tb").rglob("events.out.tfevents.*")} <= {"nspkg.show_argv"}


# -- exit status ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "key, code, status",
    [("exit-3", 3, "failed"), ("exit-none", 0, "completed"), ("exit-0", 0, "completed"), ("exit-message", 1, "failed")],
)
def test_sys_exit(runs, key, code, status):
    run = run_for(runs, key)
    assert run.returncode == code, run.stderr
    assert (run.report["run"]["status"], run.report["run"]["exit_code"]) == (status, code)
    if key == "exit-message":
        assert run.stderr.strip().splitlines() == ["planted exit message"]  # as python prints it
    assert "Traceback" not in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("key", ["raise"])
def test_uncaught_exception_shows_the_users_traceback(runs, key):
    run = run_for(runs, key)
    assert run.returncode == 1
    report_run = run.report["run"]
    assert (report_run["status"], report_run["exit_code"]) == ("failed", 1)
    assert report_run["error"]["type"] == "ValueError" and "planted failure" in report_run["error"]["message"]

    err = run.stderr
    assert "ValueError: planted failure in the user's code" in err
    tb = err[err.index("Traceback (most recent call last):") :].splitlines()
    frames = [line.strip() for line in tb if line.strip().startswith("File ")]
    assert frames and all("exits.py" in frame for frame in frames), frames  # the user's frames and only those
    assert [f.rsplit(" in ", 1)[1] for f in frames] == ["<module>", "outer_user_function", "inner_user_function"]
    assert "runner.py" not in err and "runpy" not in err


@pytest.mark.slow
@pytest.mark.parametrize("key", ["syntax-error"])
def test_a_syntax_error_reads_as_python_reports_it(runs, key):
    run = run_for(runs, key)
    plain = subprocess.run([sys.executable, "broken.py"], cwd=run.cwd, capture_output=True, text=True, timeout=60)
    assert (run.returncode, plain.returncode) == (1, 1)
    assert run.stderr.strip().splitlines() == plain.stderr.strip().splitlines()  # no frames of ours
    assert run.report["run"]["error"]["type"] == "SyntaxError"


# -- --max-steps ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("key, mode", [("max-steps-optimizer", "optimizer"), ("max-steps-loader", "batch")])
def test_max_steps_stops_cleanly_through_except_exception(runs, key, mode):
    run = run_for(runs, key)
    assert run.returncode == 0, run.stderr
    assert "swallowed" not in run.stdout and "LOOP-ENDED-NORMALLY" not in run.stdout
    report = run.report
    assert (report["run"]["status"], report["run"]["exit_code"], report["run"]["max_steps"]) == ("stopped", 0, 5)
    assert report["steps"]["count"] == 5 and report["steps"]["mode"] == mode
    assert (run.out / "report.html").is_file()


# -- DataLoader workers -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("key, context, persistent", [("workers-fork", "fork", False), ("workers-spawn", "spawn", True)])
def test_dataloader_workers_with_a_dataset_defined_in_the_script(runs, key, context, persistent):
    run = run_for(runs, key)
    assert run.returncode == 0, run.stderr
    assert "TRAINED" in run.stdout
    report = run.report
    assert (report["run"]["status"], report["run"]["exit_code"]) == ("completed", 0)
    assert report["steps"]["count"] == 8
    (loader,) = report["dataloader"]["loaders"]
    assert loader["args"]["num_workers"] == 2
    assert loader["args"]["multiprocessing_context"] == context
    assert loader["args"]["persistent_workers"] is persistent
    assert loader["dataset"] == {"type": "Squares", "length": 16}
    assert loader["batches"] == 8
    assert [epoch["batches"] for epoch in loader["epochs"]] == [4, 4]
    assert all(epoch["first_batch_ms"] is not None and epoch["first_batch_ms"] > 0 for epoch in loader["epochs"])


# -- interruption (one at a time: each waits for its script to be under way) ------------------


def wait_for_line(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            if line.strip() == marker:
                return
    proc.kill()
    raise AssertionError(f"{marker!r} never came; stdout: {seen!r}, stderr: {proc.stderr.read()!r}")


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_the_run_with_a_report(tmp_path, signum, code):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        perfdoctor_command(out, "--no-profile", str(WORKLOADS / "loop_until_signal.py")),
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(proc, "READY")
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert len(workers) >= 2
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert alive == []  # the DataLoader workers went with it
    # No traceback of the interruption itself. (A worker caught mid-way handing a batch over may
    # print multiprocessing's own ConnectionResetError, as it would under plain python.)
    assert "KeyboardInterrupt" not in err and "Terminated" not in err and "/perfdoctor/" not in err
    report = load_report(out)
    assert (report["run"]["status"], report["run"]["exit_code"]) == ("interrupted", code)
    assert report["steps"]["count"] >= 3


# -- collectors that fail, in-process ---------------------------------------------------------


TINY_LOOP = """
import torch
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(3):
    optimizer.zero_grad()
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
"""


def test_a_failing_collector_is_recorded_and_the_run_completes(tmp_path):
    from perfdoctor.collect.collectors.base import Collector, RunOptions
    from perfdoctor.collect.collectors.dataloader import DataLoaderProbe
    from perfdoctor.collect.session import Session
    from perfdoctor.config import Config
    from perfdoctor.pipeline import finish_run
    from perfdoctor.run.child import run_in_session
    from perfdoctor.run.target import Target
    from perfdoctor.stream.rundir import RunDir

    class FailsToStart(Collector):
        name = "fails_to_start"

        def start(self, ctx):
            raise RuntimeError("planted start failure")

    class FailsToStop(Collector):
        name = "fails_to_stop"

        def start(self, ctx):
            ctx.stream(self.name).emit({"kept": True})

        def stop(self):
            raise OSError("planted stop failure")

    script = tmp_path / "tiny_loop.py"
    script.write_text(TINY_LOOP)
    rundir = RunDir(tmp_path / "run")
    target = Target(script=str(script))
    saved = (sys.argv[:], sys.path[0], sys.modules["__main__"])
    session = Session(
        rundir=rundir,
        target=target.describe(),
        options=RunOptions(profile=False),
        collectors=[FailsToStart(), FailsToStop(), DataLoaderProbe()],
    )
    outcome = run_in_session(target, session)
    assert (outcome.exit_code, outcome.status) == (0, "completed")
    assert (sys.argv, sys.path[0], sys.modules["__main__"]) == saved  # the runner put everything back

    run = rundir.read_raw_file("run", None)
    assert run["collector_errors"] == {
        "fails_to_start.start": "RuntimeError: planted start failure",
        "fails_to_stop.stop": "OSError: planted stop failure",
    }
    assert run["collectors"] == ["fails_to_stop", "dataloader"]
    assert (run["status"], run["exit_code"]) == ("completed", 0)
    assert rundir.read_stream("fails_to_stop", None).records == [{"kept": True}]
    assert len(rundir.read_raw_file("steps", None)["end_ns"]) == 3

    report = finish_run(rundir, Config(), outcome, quiet=True)
    assert report is not None and report.run.status == "completed"
    assert any("fails_to_start.start" in note for note in report.notes)


@pytest.mark.parametrize(
    "code, exit_code, status",
    [(None, 0, "completed"), (0, 0, "completed"), (4, 4, "failed"), (False, 0, "completed"), (True, 1, "failed")],
)
def test_exit_codes_are_numbers_in_the_report(code, exit_code, status):
    from perfdoctor.run.outcome import outcome_of_sys_exit

    outcome = outcome_of_sys_exit(SystemExit(code))
    assert (outcome.exit_code, outcome.status) == (exit_code, status)
    assert type(outcome.exit_code) is int  # `sys.exit(not ok)` must not write `true` into report.json
