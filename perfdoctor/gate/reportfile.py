"""Loading a report.json for the gates: from a run directory or the file itself, checked enough
that the rest of the gate code can trust its shape. Anything wrong is one line, exit status 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import jsonfile
from ..errors import PerfdoctorError
from ..report.json_report import SCHEMA

REPORT_NAME = "report.json"


@dataclass(frozen=True)
class LoadedReport:
    path: Path  # the report.json file itself
    data: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section as a dict; {} when the report has none (null or missing)."""
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}


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
    return LoadedReport(path=file, data=validate_report(data, file))


def validate_report(data: Any, where: Path | str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PerfdoctorError(f"{where} is not a perfdoctor report (expected a JSON object)")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise PerfdoctorError(f"{where} has schema {schema!r}; this perfdoctor reads {SCHEMA!r}")
    for name in ("steps", "dataloader", "host", "operators", "gpu"):
        if data.get(name) is not None and not isinstance(data[name], dict):
            raise PerfdoctorError(f"{where}: {name!r} must be an object or null")
    if not isinstance(data.get("findings", []), list):
        raise PerfdoctorError(f"{where}: 'findings' must be a list")
    return data
