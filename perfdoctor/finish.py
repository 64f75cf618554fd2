"""Where cli.py and inprocess.py still import the pipeline from: perfdoctor/pipeline.py is the
module now. Kept only until those files move into issue 10's run/ package (written in parallel):
the lead points their imports at perfdoctor.pipeline at the merge and deletes this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .analysis.rundata import RunData
from .config import Config
from .model.finding import Finding
from .model.report import report_to_builtins
from .pipeline import analyse, default_report_dir, report_paths
from .pipeline import finish_run as _finish_run
from .pipeline import write_reports as _write_reports
from .rundir import RunDir

__all__ = ["analyse", "default_report_dir", "finish_run", "report_paths", "write_reports"]


def finish_run(rundir: RunDir, config: Config, outcome: object = None, quiet: bool = False) -> dict[str, Any] | None:
    """pipeline.finish_run, with the report as a dict (as tests/test_runner.py reads it)."""
    report = _finish_run(rundir, config, outcome, quiet)
    return None if report is None else report_to_builtins(report)


def write_reports(data: RunData, findings: list[Finding], out: Path) -> dict[str, Any]:
    """report.json and report.html; the report as the dict report.json holds (what inprocess.py
    hands to the pytest plugin's users as `run.report`)."""
    return report_to_builtins(_write_reports(data, findings, out))
