"""Loading report.json for the gates: from a run directory or the file; bad input is one clear error (exit 2)."""

import json

import pytest

from gate_helpers import reference_report, write_run
from perfdoctor.errors import EXIT_USAGE, PerfdoctorError
from perfdoctor.gate.reportfile import load_report


def test_a_run_directory_and_its_report_file_load_the_same(tmp_path):
    run = write_run(tmp_path / "run", reference_report())
    from_dir, from_file = load_report(run), load_report(run / "report.json")
    assert from_dir.path == from_file.path == run / "report.json"
    assert from_dir.report == from_file.report
    assert from_dir.report.steps.time_ms.p50 == 22.351
    assert from_dir.report.gpu is None  # null in the report


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file or directory"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a perfdoctor report"),
        (json.dumps({"schema": "perfdoctor.report/2"}), "has schema 'perfdoctor.report/2'"),
        (json.dumps({"schema": "perfdoctor.report/1", "steps": [1]}), "Expected `object`, got `array` - at `$.steps`"),
        (json.dumps({**reference_report(), "findings": {}}), "Expected `array`, got `object` - at `$.findings`"),
        (json.dumps({**reference_report(), "run": {"status": "exploded"}}), "Invalid enum value 'exploded' - at `$.run.status`"),
        (json.dumps({**reference_report(), "host": {**reference_report()["host"], "samples": "8"}}), "Expected `int`, got `str` - at `$.host.samples`"),
        (json.dumps({"schema": "perfdoctor.report/1"}), "missing required field `run`"),
    ],
)
def test_unreadable_reports_are_one_usage_error(tmp_path, content, message):
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PerfdoctorError) as caught:
        load_report(path)
    assert message in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE
    assert "\n" not in str(caught.value)


def test_a_directory_without_a_report_says_how_to_make_one(tmp_path):
    with pytest.raises(PerfdoctorError, match=r"no report.json in .*perfdoctor report"):
        load_report(tmp_path)
