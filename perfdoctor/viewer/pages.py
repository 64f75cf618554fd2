"""The viewer's HTML pages, rendered with the report's own templates (perfdoctor/templates): a
run's findings, breakdown and timeline look exactly as in report.html."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .runs import ViewedRun


@dataclass(frozen=True)
class RunPanel:
    """What the index page shows of one run."""

    run: ViewedRun
    state: str
    report: Any = None  # the typed Report, once the run has one
    charts: Any = None  # charts.build(report), or the live run's timeline and breakdown
    live: Any = None  # viewer.live.LiveRun while the run is in progress
    throughput: Any = None
    problem: str | None = None  # why the report could not be read


def _panel(run: ViewedRun) -> RunPanel:
    from ..report import charts

    state = run.state()
    if state == "running":
        from ..stream.rundir import RunDir
        from .live import live_run

        live = live_run(RunDir(run.root))
        breakdown = charts.breakdown_bar(dict(live.breakdown.items()) if live.breakdown else None)
        return RunPanel(run, state, live=live, charts={"breakdown": breakdown, "breakdown_source": "steps", "timeline": charts.step_timeline(live.series)})
    if run.has_report():
        from ..errors import PerfdoctorError
        from ..gate.budgets import samples_per_second
        from ..gate.reportfile import load_report

        assert run.report_json is not None
        try:
            report = load_report(run.report_json).report
        except PerfdoctorError as error:
            return RunPanel(run, state, problem=str(error))
        return RunPanel(run, state, report=report, charts=charts.build(report), throughput=samples_per_second(report))
    return RunPanel(run, state)


def run_link(run: ViewedRun) -> str:
    return "runs/" + quote(run.id) + "/"


def index_html(runs: list[ViewedRun], chosen: ViewedRun | None, logdir: Path) -> str:
    from ..report import templates

    panel = _panel(chosen) if chosen is not None else None
    return templates.environment().get_template("viewer/index.html.j2").render(
        runs=runs, chosen=chosen, panel=panel, logdir=str(logdir), base=run_link(chosen) if chosen else "",
        renderer_version=templates.renderer_version(),
    )


def trace_html(run: ViewedRun, trace: Path | None, place: dict[str, str], viewer: str | None, embedded: bool) -> str:
    from ..report import templates

    return templates.environment().get_template("viewer/trace.html.j2").render(
        run=run, trace=trace, traces=run.trace_names(), place=place,
        trace_name=next((name for name, path in run.trace_names().items() if path == trace), ""), viewer=viewer, embedded=embedded,
        has_report=run.has_report(), renderer_version=templates.renderer_version(),
    )
