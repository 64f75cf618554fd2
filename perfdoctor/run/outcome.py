"""How a run ended, as a status and an exit code: the one mapping, used by the script's process
(an exception, or none), by the supervisor (the child's exit status), and by in-process runs.

    normal end                      completed    0
    --max-steps reached             stopped      0
    sys.exit(n)                     completed/failed   n (0 is completed)
    uncaught exception              failed       1
    Ctrl-C (SIGINT)                 interrupted  130
    SIGTERM                         interrupted  143
    killed by signal N (SIGKILL, SIGSEGV, SIGHUP, ...)   killed   128 + N, as a shell shows it

perfdoctor exits with that code rather than re-raising the signal on itself, so that its own
exit is always orderly (the report is written) and a shell or CI sees the number it expects.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from ..redact import redact_text

STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"
STATUS_STOPPED = "stopped"
STATUS_KILLED = "killed"

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
MAX_MESSAGE = 65536  # an error message is kept whole up to this (a worker's traceback included)
OOM_SHARE = 0.9  # memory in use at or above this share of the limit, then a SIGKILL: likely the OOM killer


class Terminated(BaseException):
    """SIGTERM, raised in the script's main thread so that the run unwinds and is reported."""


@dataclass
class Outcome:
    exit_code: int
    status: str
    error: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    oom: dict[str, Any] | None = None  # the evidence that the kernel's OOM killer ended it

    def to_json(self) -> dict[str, Any]:
        out = {"status": self.status, "exit_code": self.exit_code, "error": self.error, "notes": list(self.notes)}
        if self.oom is not None:
            out["oom"] = dict(self.oom)
        return out


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_error(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__name__, "message": redact_text(str(error))[:MAX_MESSAGE]}


def outcome_of_exception(error: BaseException | None, stop_run: type[BaseException] | None = None, terminated: bool = False) -> Outcome:
    """How the script's call ended: `error` is what escaped it (None: it returned).

    `terminated`: SIGTERM arrived. Whatever surfaced afterwards (DataLoader workers dying with
    the job raise their own errors while it unwinds), the run was interrupted."""
    if error is None:
        return Outcome(0, STATUS_COMPLETED)
    if stop_run is not None and isinstance(error, stop_run):
        return Outcome(0, STATUS_STOPPED)
    if isinstance(error, SystemExit):
        return outcome_of_sys_exit(error)
    if isinstance(error, Terminated) or terminated:
        return Outcome(EXIT_TERMINATED, STATUS_INTERRUPTED, {"type": "SIGTERM", "message": ""})
    if isinstance(error, KeyboardInterrupt):
        return Outcome(EXIT_INTERRUPTED, STATUS_INTERRUPTED, {"type": "KeyboardInterrupt", "message": ""})
    return Outcome(1, STATUS_FAILED, describe_error(error))


def outcome_of_sys_exit(stop: SystemExit) -> Outcome:
    """sys.exit semantics: None is 0, an int is itself, anything else is printed and means 1."""
    code = stop.code
    if code is None:
        return Outcome(0, STATUS_COMPLETED)
    if isinstance(code, int):
        code = int(code)  # sys.exit(not ok): a bool is 0 or 1, and report.json wants a number
        status = STATUS_COMPLETED if code == 0 else STATUS_FAILED
        return Outcome(code, status, None if code == 0 else {"type": "SystemExit", "message": str(code)})
    return Outcome(1, STATUS_FAILED, {"type": "SystemExit", "message": redact_text(str(code))[:MAX_MESSAGE]})


def print_exit_message(stop: SystemExit) -> None:
    """What python prints for sys.exit("message")."""
    if stop.code is not None and not isinstance(stop.code, int):
        print(stop.code, file=sys.stderr)


def outcome_of_exit_status(returncode: int, end: dict[str, Any] | None, memory: dict[str, Any] | None = None) -> Outcome:
    """How the child ended, from its exit status and its own account (`end`: the record its
    session streamed, None when it never got to write one). `memory`: the last host sample's
    memory in use and the limit, to tell an OOM kill."""
    if returncode < 0:
        number = -returncode
        name = signal_name(number)
        if number == signal.SIGTERM:
            return Outcome(EXIT_TERMINATED, STATUS_INTERRUPTED, {"type": "SIGTERM", "message": ""})
        if number == signal.SIGINT:
            return Outcome(EXIT_INTERRUPTED, STATUS_INTERRUPTED, {"type": "KeyboardInterrupt", "message": ""})
        outcome = Outcome(128 + number, STATUS_KILLED, {"type": name, "message": f"the script's process was killed by {name}"})
        oom = oom_note(number, memory)
        if oom:
            outcome.notes.append(oom)
            outcome.error = {"type": name, "message": f"the script's process was killed by {name}: {oom}"}
            outcome.oom = dict(memory or {})
        return outcome
    if end is not None and end.get("exit_code") == returncode and end.get("status"):
        return Outcome(returncode, str(end["status"]), end.get("error"))
    if returncode == 0:
        return Outcome(0, STATUS_COMPLETED, None, [
            "The script's process exited with status 0 without perfdoctor's shutdown (os._exit(0)?): "
            "the last quarter second of measurements may be missing."
        ])
    if returncode in (EXIT_INTERRUPTED, EXIT_TERMINATED) and end is None:
        kind = "KeyboardInterrupt" if returncode == EXIT_INTERRUPTED else "SIGTERM"
        return Outcome(returncode, STATUS_INTERRUPTED, {"type": kind, "message": ""})
    return Outcome(returncode, STATUS_FAILED, {
        "type": "exit",
        "message": f"the script's process exited with status {returncode} without finishing "
                   "(os._exit, or a crash in native code)",
    })


def oom_note(number: int, memory: dict[str, Any] | None) -> str | None:
    """A sentence blaming the kernel's OOM killer, when the evidence points there."""
    if number != signal.SIGKILL or not memory:
        return None
    used, limit = memory.get("used_bytes"), memory.get("limit_bytes")
    where = "the container's memory limit (cgroup memory.max)" if memory.get("source") == "cgroup" else "the machine's RAM"
    if memory.get("oom_kills"):
        share = f" (memory in use at the last sample: {used / limit:.0%} of {where})" if used and limit else ""
        return f"the kernel's OOM killer killed it: the cgroup's oom_kill count rose during the run{share}"
    if used and limit and used >= OOM_SHARE * limit:
        return (f"memory in use was {used / 2**30:.2f} GiB of {limit / 2**30:.2f} GiB ({used / limit:.0%} of {where}) "
                "at the last sample: the kernel's OOM killer is the likely cause")
    return None
