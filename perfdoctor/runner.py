"""Runs the user's script or module exactly as `python SCRIPT ...` / `python -m MODULE ...`
would, inside a session, and turns however it ended into an exit status:

    normal end 0 · sys.exit(n) n · uncaught exception 1 · Ctrl-C 130 · SIGTERM 143 ·
    --max-steps reached 0 (status "stopped")

The session writes its raw files in every one of those cases.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Callable

from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED, PerfdoctorError
from .redact import redact_text
from .session import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_STOPPED,
    Outcome,
    Session,
)
from .stepclock import StopRun


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that the run unwinds and is reported."""


@dataclass
class Target:
    """What to run: a script path or a module name, and the arguments it receives untouched."""

    script: str | None = None
    module: str | None = None
    args: list[str] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.module or Path(self.script or "script").name

    def check(self) -> None:
        if self.script is not None:
            path = Path(self.script)
            if not path.exists():
                raise PerfdoctorError(f"script not found: {self.script}")
            if path.is_dir() and not (path / "__main__.py").exists():
                raise PerfdoctorError(f"{self.script} is a directory without __main__.py")
        elif self.module is not None:
            spec = _find_spec(self.module)
            if spec is None:
                raise PerfdoctorError(f"no module named {self.module!r}")
            if spec.submodule_search_locations is not None and _find_spec(f"{self.module}.__main__") is None:
                # python -m runs a package's __main__ submodule
                raise PerfdoctorError(f"{self.module!r} is a package without __main__ and cannot be run with -m")

    def command_line(self) -> list[str]:
        """How to hand this target on to another `perfdoctor run` (a rank under torchrun)."""
        head = ["-m", self.module] if self.module else [str(self.script)]
        return [*head, *self.args]

    def describe(self) -> dict[str, Any]:
        key = "module" if self.module else "script"
        return {key: self.module or self.script, "argv": list(self.args)}

    def run(self) -> None:
        """Execute as __main__, with sys.argv and sys.path[0] as python itself sets them."""
        saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
        try:
            if self.module is not None:
                sys.argv = [self.module, *self.args]  # runpy puts the module's file path in argv[0]
                _set_path0(os.getcwd())
                runpy.run_module(self.module, run_name="__main__", alter_sys=True)
            else:
                assert self.script is not None
                sys.argv = [self.script, *self.args]
                _set_path0(os.path.dirname(os.path.realpath(self.script)))
                _run_script(self.script)
        finally:
            sys.argv = saved_argv
            if saved_path0 is not None:
                _set_path0(saved_path0)


def _run_script(path: str) -> None:
    """`python SCRIPT` for a source file: as __main__, with `__file__` (and the code's file name)
    absolute as Python 3.9+ sets them while sys.argv[0] stays as given; runpy.run_path would
    leave `__file__` relative. A directory, zip or .pyc goes through runpy."""
    import builtins
    import importlib.machinery
    import types
    import zipfile

    absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)  # as python: not normalised
    if not os.path.isfile(absolute) or absolute.endswith((".pyc", ".pyo")) or zipfile.is_zipfile(absolute):
        runpy.run_path(path, run_name="__main__")
        return
    with open(absolute, "rb") as file:
        source = file.read()
    code = compile(source, absolute, "exec", dont_inherit=True)
    module = types.ModuleType("__main__")
    module.__dict__.update(
        __file__=absolute,
        __cached__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", absolute),
        __package__=None,
        __spec__=None,
        __builtins__=builtins,
    )
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(code, module.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _find_spec(name: str) -> Any:
    """The module's spec as `python -m` would find it (the current directory first), or None."""
    import importlib.util

    sys.path.insert(0, os.getcwd())
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    finally:
        sys.path.pop(0)


def _set_path0(entry: str) -> None:
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.append(entry)


def run_in_session(target: Target, session: Session) -> Outcome:
    """Run the target under the session; always stops the session (raw files written)."""
    previous_term = _install_sigterm()
    outcome = Outcome(exit_code=1, status=STATUS_FAILED)
    try:
        session.start()
        try:
            target.run()
            outcome = Outcome(0, STATUS_COMPLETED)
        except StopRun:
            outcome = Outcome(0, STATUS_STOPPED)
        except SystemExit as stop:
            outcome = _outcome_of_exit(stop)
        except KeyboardInterrupt:
            outcome = Outcome(EXIT_INTERRUPTED, STATUS_INTERRUPTED, {"type": "KeyboardInterrupt", "message": ""})
            print("\nperfdoctor: interrupted (Ctrl-C); writing the report of what was measured", file=sys.stderr)
        except Terminated:
            outcome = Outcome(EXIT_TERMINATED, STATUS_INTERRUPTED, {"type": "SIGTERM", "message": ""})
            print("perfdoctor: terminated (SIGTERM); writing the report of what was measured", file=sys.stderr)
        except BaseException as error:  # the user's script crashed: show it as python would
            _print_user_traceback(error)
            outcome = Outcome(1, STATUS_FAILED, {"type": type(error).__name__, "message": redact_text(str(error))[:500]})
    finally:
        try:
            session.stop(outcome)
        finally:
            signal.signal(signal.SIGTERM, previous_term)
    return outcome


def _outcome_of_exit(stop: SystemExit) -> Outcome:
    """sys.exit semantics: None is 0, an int is itself, anything else is printed and means 1."""
    code = stop.code
    if code is None:
        return Outcome(0, STATUS_COMPLETED)
    if isinstance(code, int):
        code = int(code)  # sys.exit(not ok): a bool is 0 or 1, and report.json wants a number
        status = STATUS_COMPLETED if code == 0 else STATUS_FAILED
        return Outcome(code, status, None if code == 0 else {"type": "SystemExit", "message": str(code)})
    print(code, file=sys.stderr)
    return Outcome(1, STATUS_FAILED, {"type": "SystemExit", "message": redact_text(str(code))[:500]})


def _install_sigterm() -> Any:
    owner = os.getpid()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked DataLoader worker inherited this handler: die quietly
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (run from a test harness thread): leave it be
        return signal.getsignal(signal.SIGTERM)


def _print_user_traceback(error: BaseException) -> None:
    """The traceback without perfdoctor's and runpy's own frames in front of the user's."""
    tb: TracebackType | None = error.__traceback__
    package = str(Path(__file__).parent) + os.sep

    def is_own(frame: FrameType) -> bool:  # runpy's frames read "<frozen runpy>" on 3.11+
        filename = frame.f_code.co_filename
        return filename.startswith(package) or filename == runpy.__file__ or frame.f_globals.get("__name__") == "runpy"

    while tb is not None and is_own(tb.tb_frame):
        tb = tb.tb_next
    if tb is None and not isinstance(error, SyntaxError):  # raised in perfdoctor itself: show it all
        tb = error.__traceback__
    traceback.print_exception(type(error), error, tb, file=sys.stderr)


def run_target(target: Target, session: Session, finish: Callable[[Outcome], None]) -> int:
    outcome = run_in_session(target, session)
    finish(outcome)
    return outcome.exit_code
