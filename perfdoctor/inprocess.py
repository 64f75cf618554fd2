"""Run a Python callable under a perfdoctor session in this process, and write its reports.

    run = run_callable(train, out=Path("perf-run"), max_steps=20)
    run.report["steps"]["time_ms"]["p50"], run.report_path

What `perfdoctor run` does for a script, for a function (the pytest plugin's fixture uses it):
the session starts before the call and stops however the call ends; `max_steps` ends the
callable cleanly (the step clock raises StopRun at the next step boundary); then the raw files
are analysed and report.json and report.html written. An exception from the callable is raised
again after the reports are written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import Config
from .redact import redact_text
from .session import STATUS_COMPLETED, STATUS_FAILED, STATUS_INTERRUPTED, STATUS_STOPPED, Outcome


@dataclass
class InProcessRun:
    run_dir: Path
    report: dict[str, Any]
    outcome: Outcome
    result: Any = None  # what the callable returned (None when it was stopped or failed)

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.json"


def callable_name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None) or "?"
    return f"{module}:{getattr(function, '__qualname__', None) or getattr(function, '__name__', repr(function))}"


def run_callable(
    function: Callable[..., Any],
    *args: Any,
    out: Path,
    max_steps: int | None = None,
    profile: bool = True,
    host_interval_s: float = 0.5,
    config: Config | None = None,
    **kwargs: Any,
) -> InProcessRun:
    from .collectors.base import RunOptions
    from .finish import analyse, write_reports
    from .rundir import RunDir
    from .session import Session
    from .stepclock import StopRun
    from .analysis.load import load_run

    name = callable_name(function)
    options = RunOptions(
        max_steps=max_steps, profile=profile, host_interval_s=host_interval_s,
        run_name=getattr(function, "__name__", "run") or "run",
    )
    rundir = RunDir(Path(out))
    if rundir.is_run():  # a previous run's raw files and traces must not mix into this one
        for stale in (rundir.raw, rundir.tb):
            shutil.rmtree(stale, ignore_errors=True)
    session = Session(rundir=rundir, target={"module": name, "argv": []}, options=options)
    outcome = Outcome(1, STATUS_FAILED)
    result: Any = None
    raised: BaseException | None = None
    try:
        session.start()
        result = function(*args, **kwargs)
        outcome = Outcome(0, STATUS_COMPLETED)
    except StopRun:
        outcome = Outcome(0, STATUS_STOPPED)
    except KeyboardInterrupt as error:
        outcome, raised = Outcome(130, STATUS_INTERRUPTED, {"type": "KeyboardInterrupt", "message": ""}), error
    except BaseException as error:
        outcome = Outcome(1, STATUS_FAILED, {"type": type(error).__name__, "message": redact_text(str(error))[:500]})
        raised = error
    finally:
        session.stop(outcome)
    data = load_run(rundir.root)
    report = write_reports(data, analyse(data, config or Config()), rundir.root)
    if raised is not None:
        raise raised
    return InProcessRun(run_dir=rundir.root, report=report, outcome=outcome, result=result)
