"""run/child.py in-process: a signal while perfdoctor starts its collectors (which imports torch:
Python code that C++ calls, where an exception raised by a signal handler aborts the process or
is lost) waits for the start to finish, then ends the run before the script's first line."""

from __future__ import annotations

import os
import signal

import pytest

from perfdoctor.collect.collectors.base import Collector, RunOptions
from perfdoctor.collect.session import Session
from perfdoctor.run.child import run_in_session
from perfdoctor.run.target import Target
from perfdoctor.stream.rundir import RunDir


class SignalsItselfWhileStarting(Collector):
    """Sends the signal to its own process, then goes on with Python code in which a handler's
    exception would surface at once."""

    name = "signals_itself"

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.finished_start = False

    def start(self, ctx):
        os.kill(os.getpid(), self.signum)
        for _ in range(100_000):  # bytecode: the interpreter runs pending handlers here
            pass
        self.finished_start = True


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_the_start_waits_for_it_and_the_script_never_runs(tmp_path, signum, code):
    script = tmp_path / "script.py"
    ran = tmp_path / "script-ran"
    script.write_text(f"open({str(ran)!r}, 'w').close()\n")
    target = Target(script=str(script))
    collector = SignalsItselfWhileStarting(signum)
    session = Session(
        rundir=RunDir(tmp_path / "run"), target=target.describe(), options=RunOptions(profile=False),
        collectors=[collector],
    )
    before = signal.getsignal(signal.SIGTERM)
    outcome = run_in_session(target, session)
    assert collector.finished_start  # not cut short inside the start
    assert (outcome.exit_code, outcome.status) == (code, "interrupted")
    assert not ran.exists()
    assert signal.getsignal(signal.SIGTERM) is before
    run = session.rundir.read_raw_file("run", None)
    assert (run["status"], run["exit_code"]) == ("interrupted", code)
