"""The shapes raw data is checked against before the analysis reads it (perfdoctor/stream/shapes.py):
every column the assemblers write has one, what the collectors write passes, damage is named."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest

from perfdoctor.collect.cpu import CpuAccount, job_root
from perfdoctor.stream import assemble, lines, shapes

RECORDED = Path(__file__).parent.parent / "data" / "run_stream_cnn" / "raw"


def field_names(kind: type) -> set[str]:
    return {field.name for field in msgspec.structs.fields(kind)}


def test_every_column_the_assemblers_write_has_a_shape():
    """A column added to a stream without a shape would go unchecked into the analysis."""
    assert set(assemble.STEP_COLUMNS) <= field_names(shapes.StepColumns)
    assert set(assemble.HOST_COLUMNS) <= field_names(shapes.HostColumns)
    assert set(assemble.HOST_COLUMNS) <= field_names(shapes.HostSample)


def test_every_step_mode_the_step_clock_writes_has_a_shape():
    """A mode the shapes do not know costs the run its step mode (manual updates: 'backward')."""
    from perfdoctor.collect import stepclock

    modes = {value for name, value in vars(stepclock).items() if name.startswith("MODE_")}
    assert modes >= {"optimizer", "backward", "batch"}
    for mode in modes:
        kept, rejected = shapes.check_records("steps", [{"mode": mode}])
        assert rejected == [] and kept == [{"mode": mode}], mode


@pytest.mark.parametrize("stream", sorted(shapes.RECORDS))
def test_the_recorded_run_has_its_shapes(stream):
    found = lines.read(RECORDED / f"{stream}.jsonl")
    assert found.unreadable is None and (found.records or stream == "ddp")  # a run of one process: no DDP records
    kept, rejected = shapes.check_records(stream, found.records)
    assert rejected == [] and kept == found.records


def test_a_host_sample_with_the_job_cpu_columns_has_its_shape():
    account = CpuAccount(job_root(False, 1), threading.main_thread().native_id or 0)
    account.prime(time.monotonic_ns())
    time.sleep(0.05)
    sample = {"t_ns": 1, "step": 0, "core_cpu": [1.0, 2.0], "rss": 1, **account.read(time.monotonic_ns())}
    assert shapes.record_error("host", {"sample": sample}) is None
    assert shapes.record_error("host", {"meta": {"interval_s": 0.2, "cpu_sources": account.sources()}}) is None


@pytest.mark.parametrize(
    "stream, record, why",
    [
        ("steps", {"steps": {"first": 0, "start_ns": [1, 2], "end_ns": [3]}}, "end_ns has 1 values for 2 start_ns values"),
        ("steps", {"steps": {"first": 0, "start_ns": ["1"], "end_ns": [3]}}, "Expected `int`, got `str`"),
        ("steps", {"steps": {"first": -1, "start_ns": [1], "end_ns": [3]}}, "Expected `int` >= 0"),
        ("host", {"sample": {"t_ns": 1, "step": 0, "core_cpu": [1.0], "rss": 1, "others_cpu": -3.0}}, "others_cpu"),
        ("host", {"sample": {"t_ns": 1, "step": 0, "core_cpu": [1.0], "rss": 1, "top_others": [[5, 1.0]]}}, "top_others"),
        ("host", {"sample": {"t_ns": 1, "step": 0, "core_cpu": [1.0], "rss": 1, "pressure_some": 1.5}}, "pressure_some"),
        ("gpu", {"sample": {"t_ns": 1, "step": 0, "devices": [{"index": 0, "utilization_gpu": 150}]}}, "<= 100"),
        ("dataloader", {"totals": {"loader": 0, "job_run_ns": "many"}}, "job_run_ns"),
        ("run", {"outcome": {"world_size": 0}}, "world_size"),
    ],
)
def test_a_record_of_the_wrong_shape_is_named(stream, record, why):
    error = shapes.record_error(stream, record)
    assert error is not None and why in error, error
    assert shapes.check_records(stream, [record]) == ([], [error])


def test_records_of_kinds_this_perfdoctor_does_not_know_are_left_alone():
    record = {"mystery": {"start_ns": "x"}}
    assert shapes.record_error("steps", record) is None
    assert shapes.record_error("a_newer_stream", {"anything": 1}) is None


def test_a_raw_file_of_the_wrong_shape_is_refused():
    with pytest.raises(msgspec.ValidationError, match="system_cpu has 1 values for 2 t_ns values"):
        columns = {name: [0, 0] for name in shapes.HOST_TIMELINE} | {"t_ns": [1, 2], "core_cpu": [[1.0], [1.0]]}
        msgspec.convert({"samples": columns | {"system_cpu": [1.0]}}, shapes.RawHost)
    msgspec.convert({"samples": columns}, shapes.RawHost)  # the same, of one length: in shape
    with pytest.raises(msgspec.ValidationError, match="3 busy ticks of 2"):
        msgspec.convert({"loaders": [{"id": 0, "cpu_in_long_waits": {"busy_ticks": 3, "total_ticks": 2}}]}, shapes.RawDataLoader)


def test_a_memory_record_of_the_wrong_shape_costs_itself_not_the_stream():
    good = {"samples": {"first": 0, "step": [1, 2], "t_ns": [5, 6], "rss": [10, None], "children_rss": [0, 0], "children": [0, 0]}}
    wrong_type = {"samples": {"first": 2, "step": [3], "t_ns": [7], "rss": ["x"]}}
    ragged = {"samples": {"first": 2, "step": [3, 4], "t_ns": [7, 8], "rss": [1]}}
    negative = {"oom": {"kind": "host", "rss_bytes": -1}}
    records = [{"meta": {"limit_bytes": 1 << 30, "limit_source": "ram"}}, good, wrong_type, ragged, negative, {"restart": {}}]
    kept, rejected = shapes.check_records("memory", records)
    assert kept == [records[0], good, {"restart": {}}]  # a kind this perfdoctor does not check is left alone
    assert [reason.split(":")[0] for reason in rejected] == ["samples", "samples", "oom"]
