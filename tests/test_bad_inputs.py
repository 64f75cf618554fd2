"""Issue 14 for `perfdoctor report` on traces: every input is a report (with a note for what was
skipped) or one line and exit status 2; never a traceback, never a hang, never an input changed,
never a control character from the data on the terminal.

Three parts: the regression corpus (tests/data/bad_inputs/, made by make_corpus.py there, with
manifest.json saying what each file must give), the cases no repository can hold (FIFOs,
sockets, devices, symlink loops, file names that are not UTF-8, a gigabyte of whitespace), and a
property-based harness over trace files and directories of traces, run in this process through
perfdoctor.cli.main under a deadline.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
from bad_input_helpers import (
    CONTROL, CORPUS, DEADLINE_S, HARNESS, MANIFEST, assert_clean_terminal, assert_one_line, assert_report, deadline,
    fingerprint, report,
)
from hypothesis import given
from hypothesis import strategies as st
from trace_builders import cpu_training_events, kineto_text

from perfdoctor.cli import main
from perfdoctor.trace import TraceError, read_trace
from perfdoctor.trace.errors import shown

TRACE_CASES = sorted(name for name in MANIFEST if "/" not in name)  # runs/ and reports/ have harnesses of their own


# ------------------------------------------------------------------ the regression corpus

@pytest.mark.parametrize("name", TRACE_CASES)
def test_regression_corpus(tmp_path, capsys, name):
    expected = MANIFEST[name]
    trace = tmp_path / name
    shutil.copyfile(CORPUS / name, trace)
    before = fingerprint([tmp_path])
    code, err = report(capsys, trace, "--out", tmp_path / "out")
    assert_clean_terminal(err)
    assert fingerprint([trace]) == {trace: before[trace]}
    if expected["exit"] == 2:
        line = assert_one_line(code, err)
        assert expected["stderr"] in line
        assert line.count(str(trace)) == 1  # the path once, not twice
        return
    assert code == 0, err
    produced = assert_report(tmp_path / "out")
    if "note" in expected:
        assert any(expected["note"] in note for note in produced["notes"]), produced["notes"]


def test_the_corpus_is_what_make_corpus_writes(tmp_path):
    """The files match their generator (edit make_corpus.py, then run it)."""
    import runpy

    generator = runpy.run_path(str(CORPUS / "make_corpus.py"))
    files, manifest = generator["corpus"]()
    assert manifest == MANIFEST
    for name, data in files.items():
        assert (CORPUS / name).read_bytes() == data, name
    written = {str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*") if path.is_file()}
    assert written - {"make_corpus.py", "manifest.json"} == set(files), "files of the corpus that make_corpus.py does not write"


# ------------------------------------------------------------------ what no repository can hold

GOOD = kineto_text({"schemaVersion": 1, "traceEvents": cpu_training_events()}, "kineto").encode()


def test_a_fifo_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "job.pt.trace.json"
    os.mkfifo(fifo)
    code, err = report(capsys, fifo)
    assert "FIFO" in assert_one_line(code, err)


def test_a_fifo_swapped_in_after_the_check_is_refused_by_the_reader(tmp_path):
    fifo = tmp_path / "late.json"
    os.mkfifo(fifo)
    with deadline(DEADLINE_S), pytest.raises(TraceError, match="not a regular file"):
        read_trace(fifo)


def test_devices_and_sockets_are_refused(tmp_path, capsys):
    code, err = report(capsys, "/dev/null")
    assert "character device" in assert_one_line(code, err)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.json"))
        code, err = report(capsys, tmp_path / "s.json")
    assert "socket" in assert_one_line(code, err)


def test_symlink_loop_and_dangling_link_are_named_as_such(tmp_path, capsys):
    os.symlink(tmp_path / "b.json", tmp_path / "a.json")
    os.symlink(tmp_path / "a.json", tmp_path / "b.json")
    code, err = report(capsys, tmp_path / "a.json")
    assert "symlink loop" in assert_one_line(code, err)
    os.symlink(tmp_path / "gone.json", tmp_path / "dangling.json")
    code, err = report(capsys, tmp_path / "dangling.json")
    assert f"a symlink to {tmp_path / 'gone.json'}, which does not exist" in assert_one_line(code, err)
    code, err = report(capsys, tmp_path / "missing.json")
    assert "no such file or directory" in assert_one_line(code, err)


def test_a_file_name_that_is_not_utf8_gives_a_whole_report(tmp_path, capsys):
    name = os.fsdecode(b"job-\xff\xfe.json")
    trace = tmp_path / name
    trace.write_bytes(GOOD)
    code, err = report(capsys, trace)
    assert code == 0, err
    assert_clean_terminal(err)
    out = tmp_path / os.fsdecode(b"job-\xff\xfe.perfdoctor")
    assert f"report: {shown(out / 'report.html')}" in err.replace("\\\\", "\\")  # the summary points at a real page
    produced = assert_report(out)
    assert produced["run"]["script"] == "job-\\xff\\xfe.json"
    assert "job-\\xff\\xfe.json" in (out / "report.html").read_text(encoding="utf-8")


def test_control_characters_in_a_file_name_never_reach_the_terminal(tmp_path, capsys):
    trace = tmp_path / "\x1b[2J\x1b]0;owned\x07\nperfdoctor: fake.json"
    trace.write_bytes(b"")
    code, err = report(capsys, trace)
    line = assert_one_line(code, err)
    assert_clean_terminal(err)
    assert "\\x1b[2J\\x1b]0;owned\\x07\\nperfdoctor: fake.json: the file is empty" in line


def test_out_naming_the_input_file_itself_is_refused(tmp_path, capsys):
    trace = tmp_path / "t.json"
    trace.write_bytes(GOOD)
    code, err = report(capsys, trace, "--out", trace)
    assert "it is a regular file, not a directory" in assert_one_line(code, err)
    assert trace.read_bytes() == GOOD


@pytest.mark.parametrize("as_directory", [False, True])
def test_a_trace_named_report_json_is_never_overwritten(tmp_path, capsys, as_directory):
    trace = tmp_path / "report.json"
    trace.write_bytes(GOOD)
    code, err = report(capsys, tmp_path if as_directory else trace, "--out", tmp_path)
    assert "is an input: writing the report there would overwrite it" in assert_one_line(code, err)
    assert trace.read_bytes() == GOOD and not (tmp_path / "report.html").exists()
    code, err = report(capsys, "-q", tmp_path if as_directory else trace)  # the default place is beside it
    assert code == 0, err and trace.read_bytes() == GOOD


def test_output_places_that_cannot_be_used(tmp_path, capsys):
    trace = tmp_path / "t.json"
    trace.write_bytes(GOOD)
    os.mkfifo(tmp_path / "fifo")
    code, err = report(capsys, trace, "--out", tmp_path / "fifo")
    assert "FIFO" in assert_one_line(code, err)
    code, err = report(capsys, trace, "--out", trace / "below")
    assert "not a directory" in assert_one_line(code, err)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, out / "report.html")
    code, err = report(capsys, trace, "--out", out)
    assert "is a symlink" in assert_one_line(code, err)
    assert victim.read_text() == "keep me"
    (out / "report.html").unlink()
    (out / "report.json").mkdir()
    code, err = report(capsys, trace, "--out", out)
    assert "it is a directory" in assert_one_line(code, err)


def test_the_same_trace_given_twice_is_read_once(tmp_path, capsys):
    trace = tmp_path / "t.json"
    trace.write_bytes(GOOD)
    os.symlink(trace, tmp_path / "alias.json")
    code, err = report(capsys, "-q", trace, tmp_path / "alias.json", "--out", tmp_path / "out")
    assert code == 0, err
    assert assert_report(tmp_path / "out")["ddp"] is None  # one trace, not two ranks


def test_a_directory_names_every_trace_it_could_not_read_or_read_only_in_part(tmp_path, capsys):
    """The issue's 200 traces (40 unreadable, 40 partly read), scaled down to 20 (4 and 4)."""
    folder = tmp_path / "traces"
    folder.mkdir()
    bad, partial = [], []
    for i in range(20):
        path = folder / f"rank{i}.json"
        if i % 5 == 1:
            path.write_bytes(b"{not json")
            bad.append(path.name)
        elif i % 5 == 2:
            path.write_bytes(GOOD[: len(GOOD) * 2 // 3])
            partial.append(path.name)
        else:
            path.write_bytes(GOOD)
    os.mkfifo(folder / "fifo.json")
    os.symlink(folder / "nowhere.json", folder / "dangling.json")
    (folder / "subdir.json").mkdir()
    bad += ["fifo.json", "dangling.json", "subdir.json"]
    before = fingerprint([folder])
    code, err = report(capsys, folder)
    assert code == 0, err
    assert_clean_terminal(err)
    notes = assert_report(folder / "perfdoctor-report")["notes"]
    unreadable = next(note for note in notes if note.startswith("Skipped 7 unreadable traces"))
    in_part = next(note for note in notes if note.startswith("Read 4 of 16 traces only in part"))
    assert all(name in unreadable for name in bad), unreadable
    assert all(name in in_part for name in partial), in_part
    assert fingerprint([folder]) == before


def test_a_directory_of_nothing_usable_is_one_line(tmp_path, capsys):
    os.mkfifo(tmp_path / "a.json")
    (tmp_path / "b.json").write_bytes(b"")
    code, err = report(capsys, tmp_path)
    line = assert_one_line(code, err)
    assert "a.json" in line and "b.json" in line


def test_whitespace_only_is_not_called_empty(tmp_path, capsys):
    trace = tmp_path / "ws.json"
    with open(trace, "wb") as fh:
        for _ in range(64):
            fh.write(b" \n\t\r" * (1 << 18))
    code, err = report(capsys, trace)
    assert "the file holds only whitespace (67108864 bytes), no JSON" in assert_one_line(code, err)


@pytest.mark.slow
def test_a_gigabyte_of_whitespace(tmp_path, capsys):
    import zlib

    trace = tmp_path / "ws.json.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(trace, "wb") as fh:
        for _ in range(1024):
            fh.write(packer.compress(b" " * (1 << 20)))
        fh.write(packer.flush())
    code, err = report(capsys, trace)
    assert f"the file holds only whitespace ({1 << 30} bytes), no JSON" in assert_one_line(code, err)


# ------------------------------------------------------------------ property-based harness

HOSTILE_VALUES = st.sampled_from([
    1e308, -1.0, 0, 2 ** 63, 2 ** 64, -(2 ** 70), 10 ** 400, "1e400", "NaN", None, True, [], {}, [[[]]],
    "\x1b[31mred\x1b[0m", "\x9b2J", "a\nb", "\u202eevil", "}, {", "stream 7", "X",
])
NAMES = st.sampled_from(["aten::mm", "ProfilerStep#1", "Optimizer.step#SGD.step", "\x1b]0;title\x07", "cudaLaunchKernel", ""])
EVENTS = st.fixed_dictionaries(
    {"ph": st.sampled_from(["X", "X", "X", "M", "B"]), "name": NAMES},
    optional={
        "cat": st.sampled_from(["cpu_op", "kernel", "user_annotation", "gpu_memcpy", "\x1b[1m"]) | HOSTILE_VALUES,
        "ts": st.integers(0, 5000) | HOSTILE_VALUES, "dur": st.integers(0, 2000) | HOSTILE_VALUES,
        "pid": st.integers(0, 3) | HOSTILE_VALUES, "tid": st.integers(0, 3) | HOSTILE_VALUES,
        "args": st.dictionaries(st.sampled_from(["External id", "correlation", "device", "stream", "Input Dims", "name", "flops"]),
                                HOSTILE_VALUES | st.integers(-1, 9), max_size=3),
    },
)
HEADERS = st.fixed_dictionaries({}, optional={
    "deviceProperties": st.lists(st.dictionaries(st.sampled_from(["id", "name", "computeMajor", "totalGlobalMem", "numSms"]),
                                                 HOSTILE_VALUES | st.integers(0, 9), max_size=4), max_size=2) | HOSTILE_VALUES,
    "distributedInfo": st.dictionaries(st.sampled_from(["rank", "world_size", "backend"]), HOSTILE_VALUES | st.integers(0, 3), max_size=3)
    | HOSTILE_VALUES,
    "schemaVersion": HOSTILE_VALUES,
})


def _structured(events: list[dict], header: dict, style: str, with_good: bool) -> bytes:
    text = kineto_text({**header, "traceEvents": (cpu_training_events() if with_good else []) + events}, style)
    return text.replace("Infinity", "1e400").encode("utf-8", "surrogatepass")


STRUCTURED = st.builds(_structured, st.lists(EVENTS, max_size=6), HEADERS,
                       st.sampled_from(["kineto", "minified", "pretty"]), st.booleans())
MUTATED = st.one_of(
    st.integers(0, len(GOOD)).map(lambda cut: GOOD[:cut]),
    st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=4).map(
        lambda flips: bytes(_flip(GOOD, flips))),
)
TRACE_BYTES = st.one_of(STRUCTURED, MUTATED, st.binary(max_size=200))
PACKING = st.sampled_from(["plain", "plain", "gzip", "gzip-cut"])
FILE_NAMES = st.sampled_from([
    "t.json", "job.pt.trace.json.gz", "report.json", "with space.json", "\x1b[31mred.json", "new\nline.json",
    os.fsdecode(b"bytes-\xff.json"), "-dash.json",
])


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytearray:
    out = bytearray(data)
    for at, value in flips:
        out[at] = value
    return out


def _packed(data: bytes, packing: str) -> bytes:
    if packing == "plain":
        return data
    packed = gzip.compress(data)
    return packed if packing == "gzip" else packed[: max(10, len(packed) * 2 // 3)]


def _oracle(path: Path) -> str:
    """What the reader makes of one file: "bad", "partial" or "good"."""
    try:
        trace = read_trace(path)
    except TraceError:
        return "bad"
    return "partial" if trace.skipped else "good"


def _run_and_check(capsys, inputs: list[Path], out_mode: str, folder: Path) -> None:
    args: list[str | Path] = [*inputs]
    out = None
    if out_mode == "separate":
        out = folder / "out"
    elif out_mode == "input-folder":
        out = inputs[0] if inputs[0].is_dir() else inputs[0].parent
    elif out_mode == "input-itself":
        out = inputs[0]
    if out is not None:
        args += ["--out", out]
    expected = {}
    for path in inputs:
        for entry in sorted(os.scandir(path), key=lambda e: e.name) if path.is_dir() else [path]:
            entry = Path(entry)
            if entry.name.endswith((".json", ".json.gz")):
                expected[entry] = _oracle(entry) if entry.is_file() else "bad"
    before = fingerprint(inputs)
    code, err = report(capsys, *args)
    assert_clean_terminal(err)
    after = fingerprint(inputs)
    assert {path: after.get(path) for path in before} == before, "an input changed"
    if code == 2:
        assert_one_line(code, err)
        return
    assert code == 0, err
    target = out or (inputs[0] / "perfdoctor-report" if inputs[0].is_dir() else None)
    if target is None:
        stem = inputs[0].name
        for suffix in (".gz", ".json", ".trace", ".pt"):
            stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
        target = inputs[0].parent / f"{stem or 'trace'}.perfdoctor"
    produced = assert_report(target)
    notes = " ".join(produced["notes"])
    readable = [path for path, kind in expected.items() if kind != "bad"]
    for path, kind in expected.items():
        if kind == "bad" and (path.name != "report.json" or not path.is_file()):
            assert shown(path.name) in notes, (path, notes)
        if kind == "partial":
            if len(readable) > 1:
                assert shown(path.name) in notes, (path, notes)
            else:
                assert "unusable and skipped" in notes, notes


@HARNESS
@given(TRACE_BYTES, PACKING, FILE_NAMES, st.sampled_from(["default", "separate", "input-folder", "input-itself"]))
def test_any_trace_file(capsys, data, packing, name, out_mode):
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        trace = folder / name
        trace.write_bytes(_packed(data, packing))
        _run_and_check(capsys, [trace], out_mode, folder)


ENTRY = st.one_of(st.tuples(TRACE_BYTES, PACKING), st.sampled_from(["fifo", "dangling", "loop", "subdir", "good"]))


@HARNESS
@given(st.lists(st.tuples(FILE_NAMES, ENTRY), min_size=1, max_size=5, unique_by=lambda e: e[0]),
       st.sampled_from(["default", "separate", "input-folder"]))
def test_any_directory_of_traces(capsys, entries, out_mode):
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "traces"
        folder.mkdir()
        for name, entry in entries:
            path = folder / name
            if entry == "fifo":
                os.mkfifo(path)
            elif entry == "dangling":
                os.symlink(folder / "nowhere", path)
            elif entry == "loop":
                os.symlink(path, path)
            elif entry == "subdir":
                path.mkdir()
            elif entry == "good":
                path.write_bytes(GOOD)
            else:
                path.write_bytes(_packed(*entry))
        _run_and_check(capsys, [folder], out_mode, Path(scratch))


# ------------------------------------------------------------------ failures that are not the input's

def test_a_failure_while_writing_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    import perfdoctor.pipeline as finish

    trace = tmp_path / "t.json"
    trace.write_bytes(GOOD)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(finish, "write_reports", full)
    code, err = report(capsys, trace)
    assert "cannot write the reports: No space left on device" in assert_one_line(code, err)


def test_an_internal_error_is_one_line_and_verbose_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import perfdoctor.pipeline as finish

    trace = tmp_path / "t.json"
    trace.write_bytes(GOOD)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(finish, "analyse", broken)
    code, err = report(capsys, trace)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "internal error while reporting (ZeroDivisionError: a bug)" in lines[0]
    with pytest.raises(Exception) as raised:
        main(["-v", "report", str(trace)])
    assert isinstance(raised.value.__cause__, ZeroDivisionError)


@pytest.mark.slow
def test_a_script_name_that_is_not_utf8_gives_a_whole_report(tmp_path):
    """The run side of the issue's 0-byte report.html: a script whose name is not UTF-8."""
    import subprocess
    import sys

    script = os.fsencode(tmp_path) + b"/train-\xff.py"
    shutil.copyfile(Path(__file__).parent / "workloads" / "show_argv.py", script)
    out = tmp_path / "run"
    result = subprocess.run([os.fsencode(sys.executable), b"-m", b"perfdoctor", b"run", b"--no-profile", b"--out",
                             os.fsencode(out), script], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    err = result.stderr.decode("utf-8")  # what reached the terminal is UTF-8 ...
    assert "train-\\xff.py completed" in err and not CONTROL.search(err)  # ... and names the script visibly
    assert (out / "report.html").stat().st_size > 1000
    assert "train-\\xff.py" in (out / "report.html").read_text(encoding="utf-8")  # the same escape as the terminal's
    assert json.loads((out / "report.json").read_text())["run"]["status"] == "completed"


@pytest.mark.slow
def test_the_trace_of_a_script_whose_name_is_not_utf8_is_kept(tmp_path):
    """Its TensorBoard folder is UTF-8 without a backslash (Kineto's export takes `\\` for a path
    separator and lost the trace of `train-\\xff.py`); the trace and the scalars share it."""
    import subprocess
    import sys

    script = os.fsencode(tmp_path) + b"/train-\xff.py"
    shutil.copyfile(Path(__file__).parent / "workloads" / "tiny_train.py", script)
    out = tmp_path / "run"
    result = subprocess.run([os.fsencode(sys.executable), b"-m", b"perfdoctor", b"run", b"-q", b"--out", os.fsencode(out), script, b"12"],
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [path.name for path in (out / "tb").iterdir()] == ["train-_xff"]
    produced = json.loads((out / "report.json").read_text())
    assert produced["operators"]["trace_files"] and not any("export" in note for note in produced["notes"]), produced["notes"]
    assert list((out / "tb" / "train-_xff").glob("*.pt.trace.json.gz")) and list((out / "tb" / "train-_xff").glob("events.out.tfevents.*"))
