"""Loading a report.json for the gates: from a run directory or the file itself, decoded into the
typed report (perfdoctor.model.report), so the rest of the gate code reads typed fields. A file
that is not a perfdoctor.report/1 report, of whatever wrong shape, is one line, exit status 2."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import jsonfile
from ..errors import PerfdoctorError
from ..readfile import describe_os_error
from ..terminal import shell_quote
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
    """The report at `path` (a report.json, or a run directory holding one). Anything else is one
    line and exit status 2: a path that does not exist, a FIFO or a device (refused before it is
    read: it might never end), a file that is not JSON or not a perfdoctor.report/1 report."""
    path = Path(path)
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as error:
        if error.errno == errno.ENOENT and not os.path.islink(path):
            raise PerfdoctorError(f"no such file or directory: {path}") from None
        raise PerfdoctorError(f"{path}: {describe_os_error(path, error)}") from None
    except ValueError:  # an embedded NUL byte
        raise PerfdoctorError(f"{path!r}: not a valid path") from None
    file = path / REPORT_NAME if is_dir else path
    if is_dir and not os.path.lexists(file):
        raise PerfdoctorError(f"no {REPORT_NAME} in {path} (run `perfdoctor report {shell_quote(path)}` to derive it)")
    try:
        data = jsonfile.load(file)
    except OSError as error:
        raise PerfdoctorError(f"cannot read {file}: {describe_os_error(file, error)}") from None
    except jsonfile.UnreadableJSON as error:
        raise PerfdoctorError(f"{file} is not valid JSON: {error}") from None
    return LoadedReport(path=file, report=decode_report(data, file))


def decode_report(document: Any, where: Path | str) -> Report:
    """A parsed report.json as the typed report; PerfdoctorError (exit 2) when it is not one."""
    try:
        return report_from_builtins(document)
    except ReportShapeError as error:
        raise PerfdoctorError(f"{where} {error}") from None
