"""The raw stream: JSON Lines read back with a torn last record skipped, atomic replacement that
keeps the old file when a write fails, and a trace export that is complete or absent."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from perfdoctor.stream import assemble, lines
from perfdoctor.stream.atomic import write_json, write_text
from perfdoctor.stream.rundir import RunDir


def test_a_torn_last_record_is_skipped_and_counted(tmp_path):
    path = tmp_path / "steps.jsonl"
    chunk = {"first": 0, **{name: [1, 2] for name in assemble.STEP_COLUMNS}}
    path.write_bytes(lines.encode(lines.header("steps")) + lines.encode({"steps": chunk}) + b'{"steps": {"first": 2, "end_')
    found = lines.read(path)
    assert found.header["stream"] == "steps" and found.skipped == 1
    assert assemble.steps(found.records)["end_ns"] == [1, 2]


def test_a_garbled_line_in_the_middle_is_skipped(tmp_path):
    path = tmp_path / "host.jsonl"
    path.write_bytes(lines.encode(lines.header("host")) + b"\x00\x00garbage\n" + lines.encode({"sample": {"t_ns": 5, "rss": 1}}))
    found = lines.read(path)
    assert found.skipped == 1 and assemble.host(found.records)["samples"]["t_ns"] == [5]


def test_a_file_name_that_is_not_utf8_is_kept_as_a_visible_escape(tmp_path):
    """os.fsdecode keeps an undecodable byte as a lone surrogate, which UTF-8 cannot store: the
    record is written with that byte as the terminal shows it, and nothing else changes."""
    path = tmp_path / "run.jsonl"
    name = os.fsdecode(b"train-\xff.py")
    path.write_bytes(lines.encode(lines.header("run")) + lines.encode({"start": {"argv": [name, "--lr=\u00e9"], name: 1}}))
    found = lines.read(path)
    assert found.skipped == 0
    assert found.records == [{"start": {"argv": ["train-\\xff.py", "--lr=\u00e9"], "train-\\xff.py": 1}}]


def test_tail_returns_only_complete_records_as_the_file_grows(tmp_path):
    path = tmp_path / "steps.jsonl"
    tail = lines.Tail(path)
    assert tail.poll() == []
    data = lines.encode(lines.header("steps")) + lines.encode({"mode": "optimizer"})
    path.write_bytes(data[:-5])
    assert tail.poll() == []  # the record is not whole yet
    path.write_bytes(data)
    assert tail.poll() == [{"mode": "optimizer"}]


def test_a_restart_drops_the_folded_steps():
    chunk = {"first": 0, **{name: [1, 2, 3] for name in assemble.STEP_COLUMNS}}
    after = {"first": 0, **{name: [9] for name in assemble.STEP_COLUMNS}}
    assert assemble.steps([{"steps": chunk}, {"restart": {}}, {"steps": after}])["end_ns"] == [9]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_tmp(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    write_json(target, {"old": True})
    import os

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        write_text(target, "new")
    assert target.read_text() == '{"old":true}'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


class FakeProfile:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def export_chrome_trace(self, path: str) -> None:
        if self.fail:
            Path(path).write_text('{"traceEvents": [')  # half written, then the disk filled
            raise OSError(28, "No space left on device")
        Path(path).write_text('{"traceEvents": []}' + " " * (3 << 20))


@pytest.mark.parametrize("case", ["complete", "given-up", "failed"])
def test_a_trace_export_is_complete_or_absent(tmp_path, case):
    import gzip
    import json

    from perfdoctor.collect.collectors.profiler import ExportGivenUp, export_trace

    hurry = threading.Event()
    path = tmp_path / "w.1.pt.trace.json.gz"
    if case == "complete":
        export_trace(FakeProfile(), path, hurry)
        assert json.loads(gzip.decompress(path.read_bytes()))["traceEvents"] == []
    else:
        if case == "given-up":
            hurry.set()
        with pytest.raises(ExportGivenUp if case == "given-up" else OSError):
            export_trace(FakeProfile(fail=case == "failed"), path, hurry)
        assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ([path.name] if case == "complete" else [])


def test_the_run_dir_lock_names_its_holder(tmp_path):
    import os

    from perfdoctor.errors import PerfdoctorError
    from perfdoctor.stream.lock import RunLock

    with RunLock(tmp_path).acquire():
        with pytest.raises(PerfdoctorError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # free again once released


def test_legacy_raw_json_files_read_as_before(tmp_path):
    from conftest import REPO

    rundir = RunDir(REPO / "tests" / "data" / "run_reference_cnn")
    assert rundir.is_run() and rundir.ranks("run") == [None]
    assert len(rundir.read_raw_file("steps", None)["end_ns"]) > 0
    assert rundir.trace_files()
