"""Shared helpers for the gate tests: reports built from the real reference report, recorded
step-time fixtures, and perfdoctor's command line with the gate commands registered."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
REFERENCE_REPORT = REPO / "tests" / "data" / "report_reference_cnn.json"
REFERENCE_RUN = REPO / "tests" / "data" / "run_reference_cnn"


def reference_report() -> dict[str, Any]:
    """The real report.json of a one-epoch reference_cnn run (p50 22.351 ms, p95 45.508 ms,
    dataloader share 0.0164, batch size 64, RSS peak 408055808 bytes, no findings)."""
    return json.loads(REFERENCE_REPORT.read_text())


def recorded_series(name: str) -> dict[str, Any]:
    """`report["steps"]["series"]` of a recorded run (tests/gate/data/steps_<name>.json)."""
    return json.loads((DATA / f"steps_{name}.json").read_text())["series"]


def report_with_series(series: dict[str, Any], scale: float = 1.0) -> dict[str, Any]:
    """The reference report with its step series replaced (durations times `scale`)."""
    report = reference_report()
    series = copy.deepcopy(series)
    series["duration_ms"] = [None if value is None else round(value * scale, 3) for value in series["duration_ms"]]
    report["steps"]["series"] = series
    return report


def loaded(report: dict[str, Any], path: Path | str = "/runs/candidate/report.json") -> Any:
    """A report.json document as the gates hold it: decoded strictly into the typed report."""
    from perfdoctor.gate.reportfile import LoadedReport, decode_report

    return LoadedReport(path=Path(path), report=decode_report(report, path))


def write_run(root: Path, report: dict[str, Any]) -> Path:
    """A run directory holding just this report.json."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "report.json").write_text(json.dumps(report))
    return root


def finding(finding_id: str, severity: str, saving: float, title: str = "") -> dict[str, Any]:
    return {
        "id": finding_id, "severity": severity, "title": title or finding_id, "evidence": {},
        "estimated_saving": saving, "advice": "", "fix": "", "docs": "", "area": "cpu",
    }


def perfdoctor(monkeypatch: Any, capsys: Any, *argv: str) -> tuple[int, str, str]:
    """`perfdoctor ARGV...` in this process; (status, out, err)."""
    import perfdoctor.cli as cli

    capsys.readouterr()
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err
