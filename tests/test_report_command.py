"""`perfdoctor report`: re-derives a run's reports from its files alone, reads foreign traces,
and turns bad input into one line and exit status 2."""

import gzip
import json
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, SHARED_TRACES

RUN_FIXTURE = REPO / "tests" / "data" / "run_reference_cnn"


def report(*args, cwd=None):
    program = (
        "import sys\nfrom perfdoctor.cli import main\ncode = main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules, 'report imported torch'\nsys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", program, "report", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_a_run_directory_is_re_derived_from_its_files_without_torch(tmp_path):
    run = shutil.copytree(RUN_FIXTURE, tmp_path / "run")
    first = report("-q", str(run))
    assert first.returncode == 0, first.stderr
    produced = json.loads((run / "report.json").read_text())
    again = report("-q", str(run))
    assert again.returncode == 0
    assert json.loads((run / "report.json").read_text()) == produced  # the same files give the same report
    assert produced["steps"]["count"] == 12 and produced["run"]["status"] == "stopped"
    assert produced["operators"]["windows"] == 2 and produced["operators"]["top"]
    assert (run / "report.html").read_text().count("<svg") >= 2


def test_a_foreign_trace_file_reports_beside_it_and_leaves_it_untouched(tmp_path, shared_traces):
    trace = shutil.copy(shared_traces / "v100_training" / "rank0.pt.trace.json.gz", tmp_path / "job.pt.trace.json.gz")
    before = (tmp_path / "job.pt.trace.json.gz").read_bytes()
    result = report("-q", str(trace))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "job.perfdoctor"
    produced = json.loads((out / "report.json").read_text())
    assert produced["run"]["source"] == "trace" and produced["steps"]["count"] == 5
    assert abs(sum(produced["steps"]["breakdown"].values()) - 1) < 1e-3
    assert (tmp_path / "job.pt.trace.json.gz").read_bytes() == before


def test_a_traces_own_step_numbers_are_shown(tmp_path):
    """The V100 ResNet-50 of TensorBoard's profiler plugin: ProfilerStep#5-#10, and a
    single-process DataLoader taking 40% of each step."""
    from trace_builders import KINETO_RESNET50_WORKERS_0

    result = report("-q", "--out", str(tmp_path / "out"), str(KINETO_RESNET50_WORKERS_0))
    assert result.returncode == 0, result.stderr
    produced = json.loads((tmp_path / "out" / "report.json").read_text())
    assert produced["steps"]["series"]["step"] == [5, 6, 7, 8, 9, 10]
    assert produced["findings"][0]["id"] == "dataloader-bottleneck"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "step 5:" in html and "step 10:" in html and "step 0:" not in html
    assert "from the trace's _SingleProcessDataLoaderIter ranges: its waits only" in html


@pytest.mark.parametrize("folder", ["a100_alexnet_sync", "a100_ddp_nccl_2rank", "cpu_only", "sampled_128rank_job", "v100_training"])
def test_every_shared_trace_gives_a_report(tmp_path, shared_traces, folder):
    source = shutil.copytree(shared_traces / folder, tmp_path / folder)
    result = report("-q", "--out", str(tmp_path / "out"), str(source))
    assert result.returncode == 0, result.stderr
    produced = json.loads((tmp_path / "out" / "report.json").read_text())
    assert produced["steps"]["count"] >= 1 and produced["operators"] is not None
    assert not [f for f in produced["findings"] if f["id"] == "main-loop-preprocessing"]  # needs the step clock


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("truncated.json.gz", gzip.compress(b'{"traceEvents": [')[:-6], "trunc"),
        ("invalid.json", b"{this is not json", ""),
        ("shape.json", b"[1, 2, 3]", ""),
        ("corrupt.json.gz", b"\x1f\x8b\x08\x00garbage-not-gzip", ""),
        ("empty.json", b"", ""),
    ],
)
def test_bad_traces_are_one_line_and_status_2(tmp_path, name, content, message):
    result = report(str(write(tmp_path / name, content)))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("perfdoctor: error:") and "Traceback" not in result.stderr
    assert message.lower() in lines[0].lower()


def test_a_directory_without_traces_is_status_2(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = report(str(tmp_path))
    assert result.returncode == 2 and "no trace" in result.stderr and "Traceback" not in result.stderr


def test_a_partly_usable_trace_reports_what_was_skipped(tmp_path, shared_traces):
    text = gzip.decompress((shared_traces / "v100_training" / "rank0.pt.trace.json.gz").read_bytes())
    cut = write(tmp_path / "cut.json", text[: len(text) * 2 // 3])
    result = report("-q", str(cut))
    assert result.returncode == 0, result.stderr
    produced = json.loads((tmp_path / "cut.perfdoctor" / "report.json").read_text())
    assert produced["operators"]["skipped"] and any("skipped" in note.lower() or "unusable" in note.lower() for note in produced["notes"])


CPU_TRACE = REPO / "tests" / "data" / "traces" / "cpu_training_torch2.13.pt.trace.json.gz"


def report_in_process(capsys, *args):
    """`perfdoctor report` in this process (fast enough to run many times): exit status and stderr."""
    from perfdoctor.cli import main

    code = main(["report", *args])
    return code, capsys.readouterr().err


def test_one_corrupt_byte_in_an_event_name_is_skipped_and_noted_with_its_offset(tmp_path, capsys):
    text = bytearray(gzip.decompress(CPU_TRACE.read_bytes()))
    at = text.index(b'"name": "aten::') + len(b'"name": "aten::') + 1
    text[at] = 0xFE
    trace = write(tmp_path / "one.pt.trace.json", bytes(text))
    code, err = report_in_process(capsys, "-q", str(trace))
    assert code == 0, err
    produced = json.loads((tmp_path / "one.perfdoctor" / "report.json").read_text())
    assert produced["operators"]["skipped"] == [f"skipped 1 event: event with invalid UTF-8 text at byte {at}"]
    assert any(f"invalid UTF-8 text at byte {at}" in note for note in produced["notes"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=3))
def test_a_real_trace_with_bytes_flipped_anywhere_is_a_partial_report_or_one_line(tmp_path, capsys, flips):
    text = bytearray(gzip.decompress(CPU_TRACE.read_bytes()))
    for where, value in flips:
        text[int(where * len(text))] = value
    trace = write(tmp_path / "flipped.pt.trace.json", bytes(text))
    out = tmp_path / "out"
    code, err = report_in_process(capsys, "-q", "--out", str(out), str(trace))
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("perfdoctor: error:"), err
        return
    assert code == 0, err
    produced = json.loads((out / "report.json").read_text())
    skipped = produced["operators"]["skipped"] if produced.get("operators") else []
    if skipped:
        assert any("skipped" in note.lower() or "unusable" in note.lower() for note in produced["notes"])
