"""Run a Python callable under a perfdoctor session in this process, and write its reports.

    run = run_callable(train, out=Path("perf-run"), max_steps=20)
    run.report["steps"]["time_ms"]["p50"], run.report_path

What `perfdoctor run` does for a script, for a function (the pytest plugin's fixture uses it):
the run directory is locked and an earlier run's files cleared (as for `run`), the session
streams to `RUN/raw` while the call runs and stops however it ends; `max_steps` ends the callable
cleanly (the step clock raises StopRun at the next step boundary); then the streams are analysed
and report.json and report.html written. An exception from the callable is raised again after
the reports are written. There is no supervisor here: a hard exit of this process loses the
report (the streams stay, and `perfdoctor report RUN` reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import Config
from .outcome import STATUS_FAILED, Outcome, outcome_of_exception


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
    from ..analysis.load import load_run
    from ..collect.collectors.base import RunOptions
    from ..collect.session import Session
    from ..collect.stepclock import StopRun
    from ..model.report import report_to_builtins
    from ..pipeline import analyse, write_reports
    from .job import prepare_run_dir

    name = callable_name(function)
    options = RunOptions(
        max_steps=max_steps, profile=profile, host_interval_s=host_interval_s,
        run_name=getattr(function, "__name__", "run") or "run",
    )
    rundir, lock = prepare_run_dir(Path(out))
    with lock:
        session = Session(rundir=rundir, target={"module": name, "argv": []}, options=options)
        outcome = Outcome(1, STATUS_FAILED)
        result: Any = None
        raised: BaseException | None = None
        try:
            session.start()
            result = function(*args, **kwargs)
            outcome = outcome_of_exception(None)
        except BaseException as error:
            outcome = outcome_of_exception(error, StopRun)
            raised = None if isinstance(error, StopRun) else error
            if raised is not None:
                session.script_raised(raised)
        finally:
            session.stop(outcome)
        data = load_run(rundir.root)
        report = report_to_builtins(write_reports(data, analyse(data, config or Config()), rundir.root))
    if raised is not None:
        raise raised
    return InProcessRun(run_dir=rundir.root, report=report, outcome=outcome, result=result)
