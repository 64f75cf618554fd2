"""From measurements to reports: analysis, rules, and every renderer, for `run` and `report`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .analysis.rundata import RunData
from .config import Config
from .errors import PerfdoctorError
from .rules.base import Finding
from .rundir import RunDir
from .session import Outcome
from .terminal import printable, shell_quote


def analyse(data: RunData, config: Config) -> list[Finding]:
    from .rules.registry import evaluate

    return evaluate(data, config)


def write_reports(data: RunData, findings: list[Finding], out: Path) -> dict[str, Any]:
    from .report.html import write_report_html
    from .report.json_report import build_report, write_report_json

    report = build_report(data, findings)
    out.mkdir(parents=True, exist_ok=True)
    write_report_json(report, out / "report.json")
    try:
        write_report_html(report, out / "report.html")
    except Exception as error:  # report.json holds everything; the page can be rendered again
        print(f"perfdoctor: report.html not written ({type(error).__name__}: {printable(error)})", file=sys.stderr)
    return report


def finish_run(rundir: RunDir, config: Config, outcome: Outcome, quiet: bool = False) -> dict[str, Any] | None:
    """After `run`: analyse the raw files, write every report. A failure here is one line."""
    from .analysis.load import load_run
    from .report.console import print_summary

    try:
        data = load_run(rundir.root)
        findings = analyse(data, config)
        report = write_reports(data, findings, rundir.root)
    except PerfdoctorError as error:
        print(f"perfdoctor: could not write the report: {printable(error)}", file=sys.stderr)
        return None
    except Exception as error:  # a bug of ours must not change the script's exit status
        print(
            f"perfdoctor: internal error while analysing ({type(error).__name__}: {printable(error)}); the measurements "
            f"are kept in {printable(rundir.raw)}: `perfdoctor -v report {shell_quote(rundir.root)}` shows the traceback",
            file=sys.stderr,
        )
        return None
    try:
        from .report.tensorboard import write_scalars

        write_scalars(data, rundir.tb / (data.run.script and Path(data.run.script).stem or data.run.module or "run"))
    except Exception as error:  # TensorBoard scalars are a bonus; the reports are already written
        print(f"perfdoctor: TensorBoard scalars not written: {printable(error)}", file=sys.stderr)
    if not quiet:
        print_summary(report, rundir.root, sys.stderr)
    return report


def report_paths(paths: list[Path], out: Path | None, config: Config, quiet: bool = False) -> dict[str, Any]:
    """`perfdoctor report`: a run directory, or foreign traces (files or directories of them)."""
    from .analysis.load import load_run
    from .report.console import print_summary

    from .inputs import ReportInputs

    inputs = ReportInputs.check(paths)  # one line and exit 2 for what cannot be read at all
    target = out or (inputs.run_dir or default_report_dir(inputs.paths[0]))
    inputs.check_output(target)  # nothing given as input is ever overwritten
    if inputs.run_dir is not None:
        data = load_run(inputs.run_dir)
    else:
        from .analysis.foreign import load_traces

        data = load_traces(inputs.traces, skipped=inputs.skipped)
    findings = analyse(data, config)
    report = write_reports(data, findings, target)
    if not quiet:
        print_summary(report, target, sys.stderr, tensorboard=False)
    return report


def default_report_dir(path: Path) -> Path:
    """Beside the input, never over it: `x.pt.trace.json.gz` -> `x.perfdoctor/`."""
    if path.is_dir():
        return path / "perfdoctor-report"
    name = path.name
    for suffix in (".gz", ".json", ".trace", ".pt"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return path.parent / f"{name or 'trace'}.perfdoctor"
