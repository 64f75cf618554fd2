"""The pipeline: analysis, rules, the typed report, then every renderer in turn. report.json is
essential (its failure is the caller's); any other renderer's failure costs only its own output,
in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from perfdoctor.analysis.load import load_run
from perfdoctor.config import Config
from perfdoctor.model.report import Report, report_from_builtins
from perfdoctor.pipeline import analyse, default_report_dir, file_renderers, finish_run, write_reports
from perfdoctor.report.renderer import AnalysedRun, Renderer
from perfdoctor.stream.rundir import RunDir

RUN = REPO / "tests" / "data" / "run_reference_cnn"


class Broken(Renderer):
    output = "the broken output"

    def render(self, run: AnalysedRun, out: Path) -> None:
        raise RuntimeError("planted")


class Recorder(Renderer):
    output = "a record"

    def __init__(self) -> None:
        self.seen: list[Report] = []

    def render(self, run: AnalysedRun, out: Path) -> None:
        self.seen.append(run.report)


def test_a_failing_renderer_costs_only_its_output(tmp_path, capsys):
    data = load_run(RUN)
    recorder = Recorder()
    report = write_reports(data, analyse(data, Config()), tmp_path, [*file_renderers(), Broken(), recorder])
    assert capsys.readouterr().err.strip() == "perfdoctor: the broken output not written (RuntimeError: planted)"
    assert recorder.seen == [report]  # the renderers after it still ran, on the same typed report
    assert report_from_builtins(json.loads((tmp_path / "report.json").read_text())) == report
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_an_essential_renderers_failure_is_the_callers(tmp_path):
    class BrokenEssential(Broken):
        essential = True

    data = load_run(RUN)
    with pytest.raises(RuntimeError, match="planted"):
        write_reports(data, [], tmp_path, [BrokenEssential()])


def test_finish_run_writes_every_output_where_the_run_directory_says(tmp_path, capsys):
    root = Path(shutil.copytree(RUN, tmp_path / "run"))
    report = finish_run(RunDir(root), Config(), quiet=False)
    assert report is not None and report.run.script == "sample_workloads/reference_cnn.py"
    assert (root / "report.json").is_file() and (root / "report.html").is_file()
    assert list((root / "tb" / "reference_cnn").glob("events.out.tfevents.*"))  # beside the profiler traces
    assert "perfdoctor: sample_workloads/reference_cnn.py stopped" in capsys.readouterr().err


def test_reports_of_foreign_traces_go_beside_them_never_over_them(tmp_path):
    trace = tmp_path / "x.pt.trace.json.gz"
    assert default_report_dir(trace) == tmp_path / "x.perfdoctor"
    assert default_report_dir(tmp_path) == tmp_path / "perfdoctor-report"
