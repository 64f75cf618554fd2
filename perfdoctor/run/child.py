"""The script's process: started by the supervisor (`supervisor.py`) with the same interpreter,
terminal, environment and working directory, it runs the target under a session exactly as
`python SCRIPT` would, streams what it measures, and exits with the script's own status.

    python [the parent's interpreter flags] -c BOOTSTRAP SPEC_JSON

The spec (target, options, run directory, the signal pipe) travels on the command line, so the
script's environment is exactly the parent's. Python writes the number of every signal it
handles to the pipe (`signal.set_wakeup_fd`): the supervisor reads it to tell whether a Ctrl-C
reached the script too, or must be passed on.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable, NoReturn

from ..collect.collectors.base import RunOptions
from ..collect.session import DistributedIdentity, Session
from ..collect.signals import held_back
from ..stream.rundir import RunDir
from .outcome import EXIT_TERMINATED, STATUS_FAILED, Outcome, Terminated, outcome_of_exception, print_exit_message
from .target import Target, print_user_traceback

BOOTSTRAP = "import sys; sys.path[0] = {root!r}; from perfdoctor.run.child import main; main(sys.argv[1])"


def command(spec: dict[str, Any], interpreter_flags: list[str]) -> list[str]:
    root = str(Path(__file__).resolve().parent.parent.parent)  # where this perfdoctor is imported from
    return [sys.executable, *interpreter_flags, "-c", BOOTSTRAP.format(root=root), json.dumps(spec)]


def main(spec_json: str) -> NoReturn:
    spec = json.loads(spec_json)
    _watch_signals(spec.get("signal_fd"))
    owner = os.getpid()
    try:
        target = Target(**spec["target"])
        options = RunOptions(**spec["options"])
        session = Session(
            rundir=RunDir(Path(spec["run_dir"])), target=target.describe(), options=options,
            identity=DistributedIdentity.from_env(), supervised=True,
        )
        outcome = run_in_session(target, session)
    except KeyboardInterrupt:  # before the script started (still importing torch): as python would
        sys.exit(130)
    except BaseException as error:
        if os.getpid() == owner:
            raise
        _end_fork(error)  # a process the script forked (os.fork), ending by an exception or sys.exit
    if os.getpid() != owner:  # ... or running on to the script's end
        _end_fork(None)
    sys.exit(outcome.exit_code)


def _end_fork(error: BaseException | None) -> NoReturn:
    """End a process the script forked as python would (its atexit functions, its threads
    joined, its output flushed), but skip C++ static destructors: torch's profiler library
    (Kineto), once started in the parent, hangs for ever in its destructor in a forked child."""
    import atexit
    import threading
    import traceback

    outcome = outcome_of_exception(error)
    if isinstance(error, SystemExit):
        print_exit_message(error)
    elif error is not None:
        traceback.print_exception(type(error), error, error.__traceback__)
    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except Exception:
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(outcome.exit_code)


def _watch_signals(fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)  # the script's own subprocesses do not get it
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    except (OSError, ValueError):
        pass


class _Sigterm:
    """SIGTERM in the script's process: raise Terminated in the main thread, and remember it (the
    run was interrupted, whatever error its unwinding raises).

    Under python, SIGTERM ends the process whatever the script catches. A script (or a library)
    may catch Terminated, with `except BaseException` or a bare `except:`, and train on. While the
    step clock shows steps still ending after the signal, Terminated is raised again; after
    `RAISES` of them, the process ends as python would have ended it at the first (exit 143), its
    streams flushed first, so that the report keeps every step."""

    RAISES = 3
    POLL_S = 0.25

    def __init__(self, steps_ended: Callable[[], int], flush: Callable[[], None]) -> None:
        self.owner = os.getpid()
        self.received = False
        self.unwound = threading.Event()  # the script's call has returned or raised
        self._steps_ended = steps_ended
        self._flush = flush

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.owner:  # a forked DataLoader worker inherited this handler: die quietly
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if not self.received:
            self.received = True
            threading.Thread(target=self._watch, name="perfdoctor-sigterm", daemon=True).start()
        raise Terminated()

    def _watch(self) -> None:
        from ..collect.signals import keep_signals_off_this_thread

        keep_signals_off_this_thread()
        main = threading.main_thread().ident
        seen, raised = self._steps_ended(), 0
        while not self.unwound.wait(self.POLL_S):
            now = self._steps_ended()
            if now == seen or main is None:
                continue  # unwinding (slowly), or not training: nothing says Terminated was caught
            seen = now
            if not self._handles_sigterm():
                return  # the script handles SIGTERM itself now
            if raised < self.RAISES:
                raised += 1
                signal.pthread_kill(main, signal.SIGTERM)
                continue
            print(
                f"perfdoctor: the script caught SIGTERM's exception {raised + 1} times and trained on; "
                "ending it as python would have (what it measured is kept)", file=sys.stderr, flush=True,
            )
            try:
                self._flush()
            finally:
                os._exit(EXIT_TERMINATED)

    def _handles_sigterm(self) -> bool:
        return signal.getsignal(signal.SIGTERM) is self


def run_in_session(target: Target, session: Session) -> Outcome:
    """Run the target under the session; always stops the session (in this process only)."""
    from ..collect.stepclock import StopRun

    sigterm = _Sigterm(lambda: session.clock.step_count, session.writer.flush)
    try:
        previous_term = signal.signal(signal.SIGTERM, sigterm)
    except ValueError:  # not the main thread (run from a test harness thread): leave it be
        previous_term = None
    outcome = Outcome(1, STATUS_FAILED)
    try:
        try:
            # Ctrl-C and SIGTERM wait for the start: raised inside torch's import, from Python code
            # that C++ called, an exception aborts the process (std::terminate) or is lost.
            with held_back(session.context.hurry):
                session.start()
            target.run()
            outcome = outcome_of_exception(None)
        except BaseException as error:
            sigterm.unwound.set()
            if not session.owner:
                raise  # a forked child of the script ends as it would under python, and writes nothing
            outcome = outcome_of_exception(error, StopRun, terminated=sigterm.received)
            if not isinstance(error, StopRun):
                session.script_raised(error)
            _tell(error, outcome)
    finally:
        sigterm.unwound.set()
        try:
            session.stop(outcome)
        finally:
            if previous_term is not None and session.owner:
                signal.signal(signal.SIGTERM, previous_term)
    return outcome


def _tell(error: BaseException, outcome: Outcome) -> None:
    """What the user sees of how the script ended, as under python (plus one line of ours)."""
    from ..collect.stepclock import StopRun

    if isinstance(error, StopRun):
        return
    if isinstance(error, SystemExit):
        print_exit_message(error)
    elif outcome.error and outcome.error.get("type") == "SIGTERM":
        print("perfdoctor: terminated (SIGTERM); writing the report of what was measured", file=sys.stderr)
    elif isinstance(error, KeyboardInterrupt):
        print("\nperfdoctor: interrupted (Ctrl-C); writing the report of what was measured", file=sys.stderr)
    else:  # the user's script crashed: show it as python would
        print_user_traceback(error)
