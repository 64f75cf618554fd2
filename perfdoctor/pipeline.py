"""The pipeline from measurements to outputs, for `run` and `report`: load the run (or read
foreign traces), evaluate the rules, build the typed report, and hand it to every renderer.

    raw files + traces -> RunData -> findings -> Report -> report.json, report.html,
                                                          TensorBoard scalars, console summary
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .analysis.rundata import RunData
from .config import Config
from .errors import PerfdoctorError
from .model.finding import Finding
from .model.report import Report
from .report.renderer import AnalysedRun, Renderer
from .stream.rundir import RunDir
from .terminal import printable, shell_quote


def analyse(data: RunData, config: Config) -> list[Finding]:
    from .rules.registry import evaluate

    return evaluate(data, config)


def file_renderers() -> list[Renderer]:
    """report.json first (it holds everything; the rest can be rendered again from it)."""
    from .report.html import HtmlRenderer
    from .report.json_report import JsonRenderer

    return [JsonRenderer(), HtmlRenderer()]


def render(run: AnalysedRun, out: Path, renderers: Sequence[Renderer]) -> None:
    """Every renderer in turn. An essential one's failure is the caller's; any other costs only
    its own output, in one line on stderr."""
    out.mkdir(parents=True, exist_ok=True)
    for renderer in renderers:
        if renderer.essential:
            renderer.render(run, out)
            continue
        try:
            renderer.render(run, out)
        except Exception as error:  # report.json holds everything; this output can be made again
            print(f"perfdoctor: {renderer.output} not written ({type(error).__name__}: {printable(error)})", file=sys.stderr)


def write_reports(data: RunData, findings: list[Finding], out: Path, renderers: Sequence[Renderer] | None = None) -> Report:
    """The report of an analysed run, rendered into `out` (report.json and report.html unless
    `renderers` says otherwise)."""
    from .report.json_report import build_report

    report = build_report(data, findings)
    render(AnalysedRun(report=report, data=data), out, file_renderers() if renderers is None else renderers)
    return report


def finish_run(rundir: RunDir, config: Config, outcome: object = None, quiet: bool = False) -> Report | None:
    """After `run`: analyse the raw files, write every output. A failure here is one line."""
    from .analysis.load import load_run
    from .report.console import ConsoleRenderer
    from .report.tensorboard_renderer import TensorBoardRenderer

    renderers = [*file_renderers(), TensorBoardRenderer()] + ([] if quiet else [ConsoleRenderer(sys.stderr)])
    try:
        data = load_run(rundir.root)
        return write_reports(data, analyse(data, config), rundir.root, renderers)
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


def report_paths(paths: list[Path], out: Path | None, config: Config, quiet: bool = False) -> Report:
    """`perfdoctor report`: a run directory, or foreign traces (files or directories of them)."""
    from .analysis.load import load_run
    from .report.console import ConsoleRenderer

    from .inputs import ReportInputs

    inputs = ReportInputs.check(paths)  # one line and exit 2 for what cannot be read at all
    target = out or (inputs.run_dir or default_report_dir(inputs.paths[0]))
    inputs.check_output(target)  # nothing given as input is ever overwritten
    if inputs.run_dir is not None:
        data = load_run(inputs.run_dir)
    else:
        from .analysis.foreign import load_traces

        data = load_traces(inputs.traces, skipped=inputs.skipped)
    renderers = file_renderers() + ([] if quiet else [ConsoleRenderer(sys.stderr, tensorboard=False)])
    return write_reports(data, analyse(data, config), target, renderers)


def default_report_dir(path: Path) -> Path:
    """Beside the input, never over it: `x.pt.trace.json.gz` -> `x.perfdoctor/`."""
    if path.is_dir():
        return path / "perfdoctor-report"
    name = path.name
    for suffix in (".gz", ".json", ".trace", ".pt"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return path.parent / f"{name or 'trace'}.perfdoctor"
