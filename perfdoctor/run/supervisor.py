"""The supervising `perfdoctor run`: a small parent (no torch) that runs the script in a child
process (`child.py`) and outlives it however it ends: it shows live progress from the streams,
then builds the report from what is on disk, and exits with the script's own status.

Signals. A Ctrl-C reaches the whole foreground process group, the script's process included;
the parent only notes it and keeps waiting. Any signal the parent gets (SIGINT, SIGTERM, SIGHUP,
SIGQUIT) is passed on to the script's process unless that process got it too (it tells us
through its signal pipe). The script's process ends as it would under python; a second Ctrl-C
or SIGTERM makes perfdoctor's own shutdown there hurry (the trace export is given up); a third
kills the script's process (SIGKILL), and the report is written from what it streamed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..collect.memory import memory_limit, oom_kills
from ..errors import PerfdoctorError
from ..stream import lines
from ..stream.rundir import RunDir
from .live import LiveView
from .outcome import EXIT_INTERRUPTED, STATUS_INTERRUPTED, Outcome, outcome_of_exit_status

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SAME_SIGNAL_WINDOW_S = 1.0  # the child's own copy of a group signal arrives within this of ours
FORWARD_AFTER_S = 0.3  # how long to wait for the child to say it got a signal before passing it on
KILL_AT = 3  # the third interrupting signal kills the script's process


@dataclass
class ChildSpec:
    target: dict[str, Any]
    options: dict[str, Any]
    run_dir: Path
    rank: int | None = None
    start: dict[str, Any] = field(default_factory=dict)  # the run stream's start record


class SignalInbox:
    """The supervisor's signal handlers: they only note what came (handled in the wait loop).
    Installed as early as `perfdoctor run` starts, so a signal before the script's process
    exists still ends in a report, not in a dead perfdoctor."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, float]] = []
        self.on_resize: Any = None
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        self.pending.append((signum, time.monotonic()))

    def _resized(self, signum: int, frame: Any) -> None:
        if self.on_resize is not None:
            self.on_resize()

    def install(self) -> "SignalInbox":
        for signum in FORWARDED:
            try:
                if signal.getsignal(signum) is signal.SIG_IGN:
                    continue  # started with it ignored (nohup, a background job): keep it so
                self._previous[signum] = signal.signal(signum, self._note)
            except (ValueError, OSError):
                pass
        try:
            self._previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._resized)
        except (ValueError, OSError):
            pass
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError, TypeError):
                pass
        self._previous = {}


class Supervisor:
    def __init__(self, spec: ChildSpec, live: LiveView | None = None, inbox: SignalInbox | None = None) -> None:
        self.spec = spec
        self.rundir = RunDir(spec.run_dir)
        self.live = live
        self.inbox = inbox or SignalInbox().install()
        if live is not None:
            self.inbox.on_resize = live.resized
        self._child_got: list[tuple[int, float]] = []  # signals the child's Python saw
        self.interrupts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def _pending(self) -> list[tuple[int, float]]:
        return self.inbox.pending

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Start the child, wait for it, write the outcome record. Handlers must be installed."""
        start = {**self.spec.start, "supervisor_pid": os.getpid()}
        lines.append(self.rundir.stream_path("run", self.spec.rank), "run", {"start": start}, rank=self.spec.rank)
        started = time.monotonic()
        if self._pending:  # a signal before the script even started
            return self._record(self._interrupted_before_start(), started)
        oom_before = oom_kills()
        read_end, write_end = os.pipe()
        from .child import command

        spec = {
            "target": self.spec.target, "options": self.spec.options, "run_dir": str(self.spec.run_dir),
            "signal_fd": write_end,
        }
        try:
            self.proc = subprocess.Popen(command(spec, subprocess._args_from_interpreter_flags()), pass_fds=(write_end,))  # type: ignore[attr-defined]
        except OSError as error:
            os.close(read_end)
            raise PerfdoctorError(f"could not start the script's process: {error}")
        finally:
            os.close(write_end)
        if self.live is not None:
            self.live.open()
        try:
            returncode = self._wait(read_end)
        finally:
            os.close(read_end)
            if self.live is not None:
                self.live.close()
        child_end = self._child_end()
        memory = self._memory(oom_before)
        outcome = outcome_of_exit_status(returncode, child_end, memory)
        return self._record(outcome, started, duration=child_end is None)

    def _wait(self, read_end: int) -> int:
        assert self.proc is not None
        while True:
            try:
                ready, _, _ = select.select([read_end], [], [], 0.1)
            except InterruptedError:
                ready = []
            if ready:
                self._read_child_signals(read_end)
            self._deal_with_signals()
            if self.live is not None:
                self.live.tick()
            returncode = self.proc.poll()
            if returncode is not None:
                self._read_child_signals(read_end)
                return returncode

    def _read_child_signals(self, read_end: int) -> None:
        try:
            data = os.read(read_end, 4096)
        except (BlockingIOError, InterruptedError):
            return
        now = time.monotonic()
        self._child_got += [(number, now) for number in data]
        self._child_got = self._child_got[-64:]

    def _deal_with_signals(self) -> None:
        assert self.proc is not None
        now = time.monotonic()
        waiting = []
        for signum, at in self._pending:
            child_got = any(n == signum and abs(t - at) <= SAME_SIGNAL_WINDOW_S for n, t in self._child_got)
            if not child_got and now - at < FORWARD_AFTER_S:
                waiting.append((signum, at))  # give the child's word time to arrive
                continue
            self.interrupts += 1
            if self.proc.poll() is not None:
                continue
            if self.interrupts >= KILL_AT:
                self._say(f"perfdoctor: {self.interrupts} interrupts: killing the script (pid {self.proc.pid}); "
                          "the report will hold what it measured until now")
                self.proc.kill()
            elif not child_got:
                try:
                    self.proc.send_signal(signum)
                except OSError:
                    pass
        self.inbox.pending[:] = waiting

    def _child_end(self) -> dict[str, Any] | None:
        """The child's own `end` record, if it wrote one."""
        found = self.rundir.read_stream("run", self.spec.rank)
        for record in reversed(found.records if found else []):
            if "end" in record:
                return dict(record["end"])
        return None

    def _memory(self, oom_before: int | None) -> dict[str, Any]:
        host = self.rundir.read_raw_file("host", self.spec.rank) or {}
        used = [v for v in (host.get("samples") or {}).get("memory_used_bytes") or [] if v is not None]
        limit = host.get("memory_limit_bytes")
        source = host.get("memory_limit_source")
        if limit is None:
            limit, source = memory_limit()
        after = oom_kills()
        return {
            "used_bytes": used[-1] if used else None, "limit_bytes": limit, "source": source,
            "oom_kills": (after - oom_before) if after is not None and oom_before is not None else None,
        }

    def _interrupted_before_start(self) -> Outcome:
        signum = self._pending[0][0]
        code = EXIT_INTERRUPTED if signum == signal.SIGINT else 128 + signum
        kind = "KeyboardInterrupt" if signum == signal.SIGINT else signal.Signals(signum).name
        return Outcome(code, STATUS_INTERRUPTED, {"type": kind, "message": "before the script started"})

    def _record(self, outcome: Outcome, started: float, duration: bool = True) -> Outcome:
        record = outcome.to_json()
        if duration:
            record["duration_s"] = round(time.monotonic() - started, 3)
        try:
            lines.append(self.rundir.stream_path("run", self.spec.rank), "run", {"outcome": record}, rank=self.spec.rank)
        except OSError as error:
            self._say(f"perfdoctor: could not record how the run ended ({error.strerror or error})")
        return outcome

    @staticmethod
    def _say(text: str) -> None:
        try:
            print(text, file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass

