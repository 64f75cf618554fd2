"""The console summary printed when a run ends: its exact lines for a real run and for findings."""

import io
import json
from pathlib import Path

from conftest import REPO
from perfdoctor.model.report import report_from_builtins
from perfdoctor.report.console import ConsoleRenderer, summary_lines
from perfdoctor.report.renderer import AnalysedRun

REFERENCE = json.loads((REPO / "tests" / "data" / "report_reference_cnn.json").read_text())


def test_the_summary_of_the_reference_run():
    lines = summary_lines(report_from_builtins(REFERENCE), Path("RUN"))
    assert lines == [
        "perfdoctor: /work/main/sample_workloads/reference_cnn.py completed in 6.1 s; 100 steps, 22.4 ms/step (median, p95 45.5)",
        "  where a step goes: dataloader 2% · forward 47% · backward 47% · optimizer 3% · other 2%",
        "  findings: none; nothing measured here calls for a change",
        "  report: RUN/report.html  (data: RUN/report.json; with its trace view: perfdoctor view RUN)",
        "  traces and scalars: tensorboard --logdir RUN/tb  (the perfdoctor tab)",
    ]


def test_findings_notes_and_a_failed_run():
    document = json.loads(json.dumps(REFERENCE))
    document["run"].update(status="failed", exit_code=1)
    document["notes"] = ["Collector host.stop failed (OSError: x); the rest of the report is unaffected."]
    document["findings"] = [
        {"id": f"rule-{i}", "severity": "warning", "title": f"title {i}", "evidence": {}, "estimated_saving": 0.2 - i / 100,
         "advice": "", "fix": "", "docs": "", "area": "cpu"}
        for i in range(7)
    ]
    stream = io.StringIO()
    ConsoleRenderer(stream, tensorboard=False).render(AnalysedRun(report=report_from_builtins(document), data=None), Path("RUN"))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("perfdoctor: /work/main/sample_workloads/reference_cnn.py failed (exit status 1) in 6.1 s")
    assert lines[2:4] == ["  findings:", "    [warning] rule-0: title 0 (saves up to 20%)"]
    assert "    ... and 2 more in the report" in lines and lines[-2].startswith("  note: Collector host.stop failed")
    assert not any("tensorboard" in line for line in lines)
