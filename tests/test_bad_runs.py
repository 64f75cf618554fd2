"""Issue 14 for `perfdoctor report RUN`: a run directory with damaged raw data gives a report
(exit 0, with a note for what was left out) or one line and exit status 2; never a traceback,
never a hang, never a change to anything but the two report files, never a file read from
outside the run directory, and the report.json written is one `check` and `diff` can read.

Three parts: the regression corpus (tests/data/bad_inputs/runs/, damaged raw files put over a
recorded run), the cases no repository can hold (FIFOs in raw/, symlinks out of the run
directory), and a property-based harness that damages the streams (and the files of a run from
before streaming) of two recorded runs.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from bad_input_helpers import (
    CORPUS, HARNESS, MANIFEST, assert_clean_terminal, assert_one_line, assert_report, fingerprint_tree, report,
)
from hypothesis import given
from hypothesis import strategies as st

from perfdoctor.gate.reportfile import load_report
from perfdoctor.stream.rundir import RunDir

DATA = Path(__file__).parent / "data"
STREAMED, LEGACY = DATA / "run_stream_cnn", DATA / "run_reference_cnn"
RUN_CASES = sorted(name for name in MANIFEST if name.startswith("runs/"))
LEAKED = "leaked_from_outside"  # in every file planted outside the run directory: must never reach a report


def copy_run(base: Path, into: Path) -> Path:
    return Path(shutil.copytree(base, into / "run", symlinks=True))


def check_report(run: Path, code: int, err: str, before: dict[str, tuple], out: Path | None = None) -> dict[str, Any] | None:
    """The invariants of every `perfdoctor report RUN`; the report.json written, if any."""
    assert_clean_terminal(err)
    if out is None:  # without its run record, a run directory is read as a directory of traces
        out = run if RunDir(run).is_run() else run / "perfdoctor-report"
    after = fingerprint_tree(run)
    reports = {"report.json", "report.html"}
    written = reports if out == run else {"perfdoctor-report", *(f"perfdoctor-report/{name}" for name in reports)}
    assert {name: value for name, value in after.items() if name not in written} == {
        name: value for name, value in before.items() if name not in written
    }, "an input changed, or a file other than the reports was written"
    if code == 2:
        assert_one_line(code, err)
        return None
    assert code == 0, err
    produced = assert_report(out)
    text = (out / "report.json").read_text() + (out / "report.html").read_text()
    if RunDir(run).is_run():  # without its run record it is a directory of traces, whose links are the user's
        assert LEAKED not in text, "a file outside the run directory was read"
    assert not any("failed and was skipped" in note for note in produced["notes"]), produced["notes"]  # a rule met bad data
    load_report(out / "report.json")  # decodes strictly: check and diff can read what report wrote
    return produced


# ------------------------------------------------------------------ the regression corpus

@pytest.mark.parametrize("case", RUN_CASES)
def test_regression_corpus(tmp_path, capsys, case):
    expected = MANIFEST[case]
    run = copy_run(DATA / expected["base"], tmp_path)
    for damaged in (CORPUS / case).rglob("*"):
        if damaged.is_file():
            shutil.copyfile(damaged, run / damaged.relative_to(CORPUS / case))
    before = fingerprint_tree(run)
    code, err = report(capsys, run)
    produced = check_report(run, code, err, before)
    if expected["exit"] == 2:
        assert expected["stderr"] in assert_one_line(code, err)
        return
    assert produced is not None
    if "note" in expected:
        assert any(expected["note"] in note for note in produced["notes"]), produced["notes"]


def test_the_recorded_runs_report_without_notes_of_damage(tmp_path, capsys):
    for base in (STREAMED, LEGACY):
        run = copy_run(base, tmp_path / base.name)
        code, err = report(capsys, "-q", run)
        produced = check_report(run, code, err, fingerprint_tree(run) | {"report.json": None, "report.html": None})
        assert produced["notes"] == ["The run was stopped cleanly after 8 steps (--max-steps)."] if base == STREAMED else [
            "The run was stopped cleanly after 12 steps (--max-steps)."
        ]
        assert produced["operators"]["windows"] >= 1 and produced["steps"]["count"] in (8, 12)


# ------------------------------------------------------------------ what no repository can hold

def outside_trace(folder: Path) -> Path:
    """A valid trace outside the run directory whose operators are named LEAKED."""
    source = next((STREAMED / "tb").rglob("*.pt.trace.json.gz"))
    path = folder / "outside.pt.trace.json.gz"
    path.write_bytes(gzip.compress(gzip.decompress(source.read_bytes()).replace(b"aten::", f"{LEAKED}::".encode())))
    return path


def outside_settings(folder: Path) -> Path:
    path = folder / "outside.jsonl"
    path.write_text(
        '{"schema": "perfdoctor.stream/1", "stream": "settings"}\n'
        f'{{"settings": {{"taken_at": "{LEAKED}", "cpu": {{"machine": "{LEAKED}", "logical_cores": 2}}}}}}\n'
    )
    return path


@pytest.mark.parametrize("name", ["host.jsonl", "steps.jsonl", "settings.jsonl", "profiler.jsonl"])
def test_a_fifo_in_raw_is_not_waited_on(tmp_path, capsys, name):
    run = copy_run(STREAMED, tmp_path)
    (run / "raw" / name).unlink()
    os.mkfifo(run / "raw" / name)
    before = fingerprint_tree(run)
    code, err = report(capsys, run)
    produced = check_report(run, code, err, before)
    note = next(note for note in produced["notes"] if f"raw/{name} could not be read" in note)
    assert "FIFO" in note


def test_a_fifo_as_the_run_record_is_one_line(tmp_path, capsys):
    run = copy_run(STREAMED, tmp_path)
    (run / "raw" / "run.jsonl").unlink()
    os.mkfifo(run / "raw" / "run.jsonl")
    code, err = report(capsys, run)
    assert "raw/run.jsonl: is a FIFO (named pipe), not a regular file" in assert_one_line(code, err)


def test_raw_files_and_traces_leading_out_of_the_run_directory_are_not_read(tmp_path, capsys):
    run = copy_run(STREAMED, tmp_path)
    (run / "raw" / "settings.jsonl").unlink()
    os.symlink(outside_settings(tmp_path), run / "raw" / "settings.jsonl")
    trace = next((run / "tb").rglob("*.pt.trace.json.gz"))
    trace.unlink()
    os.symlink(outside_trace(tmp_path), trace)
    before = fingerprint_tree(run)
    code, err = report(capsys, run)
    notes = " ".join(check_report(run, code, err, before)["notes"])
    assert "raw/settings.jsonl could not be read (it leads out of the run directory" in notes
    assert f"The trace {trace.relative_to(run)}: it leads out of the run directory" in notes


@pytest.mark.parametrize("named", ["absolute", "up", "symlinked folder"])
def test_a_trace_the_data_names_outside_the_run_directory_is_not_read(tmp_path, capsys, named):
    run = copy_run(STREAMED, tmp_path)
    outside = outside_trace(tmp_path)
    if named == "absolute":
        path = str(outside)
    elif named == "up":
        path = os.path.relpath(outside, run)
    else:
        os.symlink(tmp_path, run / "tb" / "elsewhere")
        path = f"tb/elsewhere/{outside.name}"
    with open(run / "raw" / "profiler.jsonl", "a") as stream:
        stream.write(json.dumps({"trace": {"path": path, "export_s": 0.1}}) + "\n")
    before = fingerprint_tree(run)
    code, err = report(capsys, run)
    produced = check_report(run, code, err, before)
    assert any(path in note and "only files inside" in note or "leads out" in note for note in produced["notes"]), produced["notes"]


def test_a_legacy_run_whose_tb_leads_out_is_read_without_its_traces(tmp_path, capsys):
    run = copy_run(LEGACY, tmp_path)
    (run / "raw" / "profiler.json").unlink()  # no trace named: every trace under tb/ is the run's
    shutil.rmtree(run / "tb")
    (tmp_path / "tb").mkdir()
    outside_trace(tmp_path / "tb")
    os.symlink(tmp_path / "tb", run / "tb")
    before = fingerprint_tree(run)
    code, err = report(capsys, run)
    produced = check_report(run, code, err, before)
    assert produced["operators"] is None
    assert any("leads out of the run directory" in note for note in produced["notes"]), produced["notes"]


def test_an_unreadable_trace_of_the_run_is_a_note(tmp_path, capsys):
    run = copy_run(STREAMED, tmp_path)
    trace = next((run / "tb").rglob("*.pt.trace.json.gz"))
    trace.write_bytes(trace.read_bytes()[:100])
    code, err = report(capsys, "-q", run)
    produced = check_report(run, code, err, fingerprint_tree(run) | {"report.json": None, "report.html": None})
    assert produced["operators"]["skipped"], produced["operators"]
    note = next(note for note in produced["notes"] if "A trace of this run was left out or read only in part" in note)
    assert trace.name in note


def test_a_dangling_or_looping_raw_file_is_a_note(tmp_path, capsys):
    run = copy_run(STREAMED, tmp_path)
    (run / "raw" / "host.jsonl").unlink()
    os.symlink(run / "raw" / "nowhere.jsonl", run / "raw" / "host.jsonl")
    (run / "raw" / "gpu.jsonl").unlink()
    os.symlink(run / "raw" / "gpu.jsonl", run / "raw" / "gpu.jsonl")
    before = fingerprint_tree(run)
    code, err = report(capsys, run)
    notes = " ".join(check_report(run, code, err, before)["notes"])
    assert "raw/host.jsonl could not be read" in notes and "raw/gpu.jsonl could not be read" in notes


# ------------------------------------------------------------------ property-based harness

HOSTILE_TOKENS = [
    '"12"', '"NaN"', "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 400, "-" + "9" * 30, "-5", "-1.5", "1e308",
    str(2**63), str(2**64), "[]", "{}", "null", "true", '"\\u001b[31mred\\u001b[0m"', '"a\\nb"', "[" * 1200 + "]" * 1200,
    "[" * 300 + "1" + "]" * 300, '"' + "x" * 5000 + '"', "0", '[1, "a", null]', '"../../../outside.pt.trace.json.gz"',
    '"/etc/passwd"', '"tb/../../outside.pt.trace.json.gz"', '"\\ud800"', "18446744073709551615",
]
NAMES = ["run", "steps", "dataloader", "host", "gpu", "profiler", "settings", "ddp"]
PLACEHOLDER = "\x00HOSTILE\x00"


def _mutate(value: Any, data: Any) -> Any:
    """`value` with one place (chosen by `data`) replaced by PLACEHOLDER."""
    if isinstance(value, dict) and value and not data.draw(st.booleans(), label="stop"):
        keys = sorted(value)
        key = keys[data.draw(st.integers(0, len(keys) - 1), label="key")] if data.draw(st.integers(0, 4)) else "mystery"
        return {**value, key: _mutate(value.get(key), data)}
    if isinstance(value, list) and value and not data.draw(st.booleans(), label="stop"):
        index = data.draw(st.integers(0, len(value) - 1), label="index")
        return [*value[:index], _mutate(value[index], data), *value[index + 1:]]
    return PLACEHOLDER


def _with_token(document: Any, token: str) -> bytes:
    return json.dumps(document).replace(json.dumps(PLACEHOLDER), token).encode()


def _damage_stream(path: Path, data: Any) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    how = data.draw(st.sampled_from(["value", "value", "value", "truncate", "flip", "line", "unknown kind", "empty"]), label="how")
    if how == "truncate":
        content = b"".join(lines)
        path.write_bytes(content[: data.draw(st.integers(0, len(content)), label="cut")])
    elif how == "flip":
        content = bytearray(b"".join(lines))
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            if content:
                content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(content))
    elif how == "empty":
        path.write_bytes(b"")
    elif how in ("line", "unknown kind"):
        at = data.draw(st.integers(0, len(lines)), label="at")
        token = data.draw(st.sampled_from(HOSTILE_TOKENS), label="token")
        line = f'{{"mystery": {token}}}' if how == "unknown kind" else token
        lines.insert(at, line.encode() + b"\n")
        path.write_bytes(b"".join(lines))
    elif lines:
        at = data.draw(st.integers(0, len(lines) - 1), label="line")
        try:
            record = json.loads(lines[at])
        except ValueError:
            return
        lines[at] = _with_token(_mutate(record, data), data.draw(st.sampled_from(HOSTILE_TOKENS), label="token")) + b"\n"
        path.write_bytes(b"".join(lines))


def _damage_json(path: Path, data: Any) -> None:
    how = data.draw(st.sampled_from(["value", "value", "truncate", "flip"]), label="how")
    content = path.read_bytes()
    if how == "truncate":
        path.write_bytes(content[: data.draw(st.integers(0, len(content)), label="cut")])
    elif how == "flip" and content:
        damaged = bytearray(content)
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(damaged))
    elif how == "value":
        try:
            document = json.loads(content)
        except ValueError:  # damaged already
            return
        path.write_bytes(_with_token(_mutate(document, data), data.draw(st.sampled_from(HOSTILE_TOKENS), label="token")))


def _replace(path: Path, kind: str, outside: Path) -> None:
    """Put something that is not a plain file of the run where `path` was."""
    if os.path.lexists(path):
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "dangling":
        os.symlink(path.parent / "nowhere", path)
    elif kind == "loop":
        os.symlink(path, path)
    else:
        os.symlink(outside, path)


@HARNESS
@given(st.sampled_from([STREAMED, LEGACY]), st.data())
def test_any_damaged_run_directory(capsys, base, data):
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        run = copy_run(base, folder)
        planted: list[str] = []
        for _ in range(data.draw(st.integers(1, 3), label="damages")):
            files = sorted(path for path in (run / "raw").iterdir() if path.is_file() and not path.is_symlink())
            if not files:
                break
            path = files[data.draw(st.integers(0, len(files) - 1), label="file")]
            kind = data.draw(st.sampled_from(["content"] * 6 + ["fifo", "directory", "dangling", "loop", "outside", "gone"]), label="kind")
            if kind == "content":
                (_damage_stream if path.suffix == ".jsonl" else _damage_json)(path, data)
            elif kind == "gone":
                path.unlink()
            else:
                _replace(path, kind, outside_settings(folder) if path.suffix == ".jsonl" else outside_trace(folder))
                planted.append(path.name)
        if data.draw(st.booleans(), label="trace leads out"):
            trace = next((run / "tb").rglob("*.pt.trace.json.gz"))
            trace.unlink()
            os.symlink(outside_trace(folder), trace)
        before = fingerprint_tree(run)
        code, err = report(capsys, run)
        produced = check_report(run, code, err, before)
        if produced is not None and RunDir(run).is_run():
            notes = " ".join(produced["notes"])
            for name in planted:
                if name.split(".")[0] in NAMES:  # every file the run reads that was not a plain file is named
                    assert re.search(rf"raw/{re.escape(name)} could not be read", notes), (name, notes)
