"""Loading a report.json for the gates: from a run directory or the file itself, decoded into the
typed report (perfdoctor.model.report), so the rest of the gate code reads typed fields. A file
that is not a perfdoctor.report/1 report, of whatever wrong shape, is one line, exit status 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import jsonfile
from ..errors import PerfdoctorError
from ..model.report import Report, ReportShapeError, report_from_builtins

REPORT_NAME = "report.json"


@dataclass(frozen=True)
class LoadedReport:
    path: Path  # the report.json file itself
    report: Report

    @property
    def run_dir(self) -> Path:
        return self.path.parent


def report_file(path: Path) -> Path:
    """`path` itself, or the report.json inside a run directory."""
    return path / REPORT_NAME if path.is_dir() else path


def load_report(path: Path | str) -> LoadedReport:
    path = Path(path)
    file = report_file(path)
    if not path.exists():
        raise PerfdoctorError(f"no such file or directory: {path}")
    if not file.is_file():
        raise PerfdoctorError(f"no {REPORT_NAME} in {path} (run `perfdoctor report {path}` to derive it)")
    try:
        data = jsonfile.load(file)
    except OSError as error:
        raise PerfdoctorError(f"cannot read {file}: {error.strerror or error}")
    except jsonfile.UnreadableJSON as error:
        raise PerfdoctorError(f"{file} is not valid JSON: {error}")
    return LoadedReport(path=file, report=decode_report(data, file))


def decode_report(document: Any, where: Path | str) -> Report:
    """A parsed report.json as the typed report; PerfdoctorError (exit 2) when it is not one."""
    try:
        return report_from_builtins(document)
    except ReportShapeError as error:
        raise PerfdoctorError(f"{where} {error}")
