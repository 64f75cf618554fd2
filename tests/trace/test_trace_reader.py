"""read_trace against an independent json-based reading, on real traces and hand-built schemas."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from trace_builders import SEED_TRACE, kineto_text, op, shared_trace, write_trace

from perfdoctor.trace import Category, Trace, read_trace
from perfdoctor.trace.categories import category_of
from perfdoctor.trace.model import COLUMNS, STRING_ID_BASE

REAL = [
    "a100_alexnet_sync/trace.pt.trace.json.gz",
    "a100_ddp_nccl_2rank/rank0.pt.trace.json.gz",
    "cpu_only/rank34.pt.trace.json.gz",
    "sampled_128rank_job/rank0.pt.trace.json.gz",
    "v100_training/rank0.pt.trace.json.gz",
]


def _ns(literal: str) -> int:
    return int(Decimal(literal) * 1000)


def reference_rows(path: Path) -> list[tuple]:
    """Complete events read with json (numbers kept as text, converted exactly)."""
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        trace = json.loads(fh.read(), parse_float=str, parse_int=str)
    rows = []
    for event in trace["traceEvents"]:
        if event.get("ph") != "X":
            continue
        args = event.get("args", {})

        def arg(key: str, args: dict = args) -> int:
            return int(args[key]) if key in args else -1

        rows.append((
            event.get("name", ""),
            int(category_of(event.get("cat", ""))),
            _ns(event["ts"]),
            _ns(event["dur"]),
            str(event["pid"]),
            str(event["tid"]),
            arg("correlation"),
            arg("External id") if "External id" in args else arg("external id"),
        ))
    return sorted(rows)


def trace_rows(trace: Trace) -> list[tuple]:
    def ident(value: int) -> str:
        return trace.string_ids.get(int(value), str(int(value)))

    return sorted(
        (trace.names[n], int(c), int(t), int(d), ident(p), ident(i), int(r), int(x))
        for n, c, t, d, p, i, r, x in zip(
            trace.name_id, trace.cat, trace.ts_ns, trace.dur_ns, trace.pid, trace.tid, trace.correlation,
            trace.external_id,
        )
    )


def check_invariants(trace: Trace) -> None:
    n = len(trace)
    for column, dtype in COLUMNS.items():
        values = getattr(trace, column)
        assert values.dtype == dtype, column
        assert values.shape == (n,), column
    order = np.lexsort((-trace.dur_ns, trace.ts_ns))
    assert np.array_equal(trace.ts_ns[order], trace.ts_ns)
    assert (trace.dur_ns >= 0).all()
    assert trace.name_id.max() < len(trace.names)
    assert trace.input_dims_id.max() < len(trace.input_dims)


@pytest.mark.parametrize("relative", REAL)
def test_real_traces_match_json(relative):
    path = shared_trace(relative)
    trace = read_trace(path)
    check_invariants(trace)
    assert not trace.skipped
    assert trace_rows(trace) == reference_rows(path)


def test_seed_trace_matches_json_with_tiny_blocks():
    """Blocks of 4 KiB force hundreds of splits, some inside strings and nested arrays."""
    expected = reference_rows(SEED_TRACE)
    for block in (4096, 1 << 20):
        trace = read_trace(SEED_TRACE, block_bytes=block)
        check_invariants(trace)
        assert trace_rows(trace) == expected
    assert trace.metadata.record_shapes
    assert trace.metadata.base_time_ns == 1790857026000000000


def test_v100_keeps_nanoseconds():
    """The ns-resolution trace has epoch timestamps with 3 decimals (~1.7e15 us): beyond float64."""
    path = shared_trace("v100_training/rank0.pt.trace.json.gz")
    trace = read_trace(path)
    assert trace.ts_ns.min() > 1_700_000_000_000_000_000
    assert (trace.ts_ns % 1000 != 0).mean() > 0.9  # the sub-microsecond digits survived
    assert trace.metadata.display_time_unit == "ns"


def test_metadata_of_real_traces():
    ddp = read_trace(shared_trace("a100_ddp_nccl_2rank/rank0.pt.trace.json.gz"))
    assert ddp.metadata.distributed_info["backend"] == "nccl"
    assert (ddp.metadata.rank, ddp.metadata.world_size, ddp.metadata.backend) == (0, 2, "nccl")
    assert len(ddp.metadata.device_properties) == 8
    assert ddp.metadata.device_properties[0]["name"] == "NVIDIA A100-PG509-200"
    assert ddp.metadata.schema_version == 1
    assert ddp.metadata.process_labels[0] == "GPU 0"
    assert "INFO" in ddp.metadata.extra
    sampled = read_trace(shared_trace("sampled_128rank_job/rank0.pt.trace.json.gz"))
    assert sampled.metadata.device_properties == []
    assert sampled.metadata.world_size == 128
    assert sampled.metadata.record_shapes
    assert len(sampled.input_dims) > 100
    # String pids/tids ("Spans", "PyTorch Profiler") become stable ids below STRING_ID_BASE.
    assert set(sampled.string_ids.values()) >= {"Spans", "PyTorch Profiler"}
    assert all(key <= STRING_ID_BASE for key in sampled.string_ids)
    assert sampled.string_ids == read_trace(shared_trace("sampled_128rank_job/rank1.pt.trace.json.gz")).string_ids


def test_device_and_stream_columns():
    trace = read_trace(shared_trace("a100_alexnet_sync/trace.pt.trace.json.gz"))
    kernels = trace.cat == Category.KERNEL
    assert (trace.device[kernels] == 0).all()
    assert set(trace.stream[kernels].tolist()) <= {7, 20}
    host = trace.cat == Category.CPU_OP
    assert (trace.device[host] == -1).all() and (trace.stream[host] == -1).all()
    copies = trace.cat == Category.MEMCPY
    assert (trace.nbytes[copies] > 0).all()


@pytest.mark.parametrize("style", ["kineto", "pretty", "minified"])
@pytest.mark.parametrize("gz", [False, True])
def test_styles_and_compression(tmp_path, style, gz):
    events = [op(f"aten::op{i}", 1000 + 10 * i, 5.5, args={"External id": i}) for i in range(50)]
    path = write_trace(tmp_path, events, style=style, gz=gz)
    trace = read_trace(path, block_bytes=256)
    assert len(trace) == 50
    assert trace.names[trace.name_id[49]] == "aten::op49"
    assert trace.external_id.tolist() == list(range(50))
    assert trace.dur_ns.tolist() == [5500] * 50


def test_old_schema_pytorch_1_9(tmp_path):
    """Capitalised categories, "external id" on GPU events, tids like "stream 7", no args.device."""
    events = [
        op("ProfilerStep#1", 0, 100, cat="Operator", pid=10, tid=10),
        op("aten::mm", 10, 20, cat="Operator", pid=10, tid=10, args={"External id": 5}),
        op("cudaLaunchKernel", 12, 3, cat="Runtime", pid=10, tid=10, args={"correlation": 77, "external id": 5}),
        op("volta_sgemm_128x64_nn", 30, 40, cat="Kernel", pid=0, tid="stream 7",
           args={"correlation": 77, "external id": 5}),
        op("Memcpy HtoD (Pageable -> Device)", 80, 5, cat="Memcpy", pid=0, tid="stream 7",
           args={"correlation": 78, "external id": 6, "bytes": 1024}),
        op("Memset (Device)", 90, 1, cat="Memset", pid=0, tid="stream 7", args={"correlation": 79}),
    ]
    trace = read_trace(write_trace(tmp_path, events))
    by_name = {trace.names[n]: i for i, n in enumerate(trace.name_id)}
    kernel = by_name["volta_sgemm_128x64_nn"]
    assert trace.cat[kernel] == Category.KERNEL
    assert trace.cat[by_name["aten::mm"]] == Category.CPU_OP
    assert trace.cat[by_name["cudaLaunchKernel"]] == Category.CUDA_RUNTIME
    assert trace.cat[by_name["Memcpy HtoD (Pageable -> Device)"]] == Category.MEMCPY
    assert trace.cat[by_name["Memset (Device)"]] == Category.MEMSET
    assert trace.external_id[kernel] == 5
    assert (trace.device[kernel], trace.stream[kernel]) == (0, 7)
    assert trace.describe_id(trace.tid[kernel]) == "stream 7"
    assert trace.nbytes[by_name["Memcpy HtoD (Pageable -> Device)"]] == 1024


def test_flops_bytes_and_input_dims(tmp_path):
    events = [
        op("aten::mm", 0, 10, args={"Input Dims": [[2, 3], [3, 4]], "flops": 48}),
        op("aten::mm", 20, 10, args={"Input Dims": [[2, 3], [3, 4]], "flops": 48.0}),
        op("aten::relu", 40, 1),
        op("Memcpy DtoH (Device -> Pinned)", 50, 2, cat="gpu_memcpy", pid=0, tid=7,
           args={"device": 0, "stream": 7, "correlation": 3, "bytes": 4096}),
    ]
    trace = read_trace(write_trace(tmp_path, events))
    assert trace.flops.tolist() == [48.0, 48.0, -1.0, -1.0]
    assert trace.nbytes.tolist() == [-1, -1, -1, 4096]
    assert trace.input_dims == ["[[2, 3], [3, 4]]"]
    assert trace.input_dims_id.tolist() == [0, 0, -1, -1]
    assert trace.metadata.record_shapes


def test_timestamps_integer_fractional_and_epoch(tmp_path):
    """Literal text matters: 1712195495406752.797 is not representable as a float64."""
    rows = [("int_us", "1682725898236567", "68"), ("frac_us", "4458676524670.502", "92.804"),
            ("epoch_frac", "1712195495406752.797", "0.5"), ("four_digits", "1712195495406752.7976", "1.0001")]
    events = ", ".join(
        f'{{"ph": "X", "cat": "cpu_op", "name": "{name}", "pid": 1, "tid": 1, "ts": {ts}, "dur": {dur}}}'
        for name, ts, dur in rows
    )
    path = tmp_path / "t.json"
    path.write_text(f'{{"traceEvents": [{events}]}}')
    trace = read_trace(path)
    got = {trace.names[n]: (int(t), int(d)) for n, t, d in zip(trace.name_id, trace.ts_ns, trace.dur_ns)}
    assert got == {
        "int_us": (1682725898236567000, 68000),
        "frac_us": (4458676524670502, 92804),
        "epoch_frac": (1712195495406752797, 500),
        "four_digits": (1712195495406752798, 1000),
    }


def test_metadata_after_events_and_thread_names(tmp_path):
    trace_dict = {
        "traceEvents": [
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "thread 2 (python)"}},
            {"ph": "M", "name": "process_labels", "pid": 0, "tid": 0, "args": {"labels": "GPU 0"}},
            op("a", 1, 1, tid=2),
            {"ph": "i", "s": "g", "name": "Iteration Start", "pid": "Traces", "tid": "x", "ts": 1},
            {"ph": "s", "id": 1, "pid": 1, "tid": 2, "ts": 1, "cat": "fwdbwd", "name": "fwdbwd"},
        ],
        "deviceProperties": [{"id": 0, "name": "GPU"}],
        "distributedInfo": {"backend": "gloo", "rank": 3, "world_size": 4},
        "traceName": "x.json",
        "baseTimeNanoseconds": 1700000000000000000,
        "custom": {"nested": [{"a": "}, {"}, {"b": 2}]},
    }
    for style in ("kineto", "minified"):
        trace = read_trace(write_trace(tmp_path, trace_dict, style=style))
        assert len(trace) == 1
        meta = trace.metadata
        assert (meta.rank, meta.world_size, meta.backend) == (3, 4, "gloo")
        assert meta.device_properties == [{"id": 0, "name": "GPU"}]
        assert meta.trace_name == "x.json" and meta.base_time_ns == 1700000000000000000
        assert meta.thread_names[(1, 2)] == "thread 2 (python)"
        assert meta.process_labels[0] == "GPU 0"
        assert meta.extra["custom"] == {"nested": [{"a": "}, {"}, {"b": 2}]}
        assert meta.schema_version is None and meta.distributed_info is not None


def test_boundaries_inside_strings_and_nested_objects(tmp_path):
    """Split candidates inside names and nested args must never break an event apart."""
    tricky = ["}, {", "},\n  {", '}\\", {', "]}], [{", "{{}}", "\\\\"]
    events = []
    for i in range(200):
        name = f"op{i} {tricky[i % len(tricky)]}"
        args = {"External id": i, "nested": [{"k": "}, {"}, {"k": [1, {"x": "}]"}]}]}
        events.append(op(name, i, 1, args=args))
    path = write_trace(tmp_path, events, style="kineto")
    for block in (64, 200, 1000, 4096):
        trace = read_trace(path, block_bytes=block)
        assert len(trace) == 200, block
        assert [trace.names[n] for n in trace.name_id] == [e["name"] for e in events]
        assert not trace.skipped


def test_string_pids_are_stable_and_distinct(tmp_path):
    events = [op("a", 1, 1, pid="Spans", tid="PyTorch Profiler", cat="Trace"), op("b", 2, 1, pid=5, tid=-549452224)]
    trace = read_trace(write_trace(tmp_path, events))
    a, b = (trace.name_id == trace.names.index("a")), (trace.name_id == trace.names.index("b"))
    assert trace.describe_id(trace.pid[a][0]) == "Spans"
    assert trace.pid[a][0] <= STRING_ID_BASE
    assert trace.tid[b][0] == -549452224  # real negative tids are kept as they are
    assert trace.cat[a][0] == Category.TRACE


def test_a_decimal_string_tid_is_one_thread_however_the_blocks_fall(tmp_path):
    """PyTorch 1.x writes tids as strings ("25738"); GPU rows as "stream 7". A block holding
    both once gave the main thread a string id, a block of host events alone its number:
    one thread split in two, and the ProfilerStep in the other half lost."""
    events = [op("Memset (Device)", 0, 1, cat="Memset", pid=0, tid="stream 7")]
    events += [op(f"ProfilerStep#{i}", i * 100, 100, cat="Operator", pid=5, tid="25738") for i in range(1, 40)]
    events += [{"ph": "M", "name": "thread_name", "pid": 5, "tid": "25738", "args": {"name": "thread 25738 (python)"}}]
    path = write_trace(tmp_path, events)
    for block in (256, 1000, 1 << 20):
        trace = read_trace(path, block_bytes=block)
        steps = trace.name_mask(lambda n: n.startswith("ProfilerStep#"))
        assert set(trace.tid[steps].tolist()) == {25738}, block
        assert trace.thread_name(5, 25738) == "thread 25738 (python)"
        assert trace.describe_id(trace.tid[~steps][0]) == "stream 7"


def test_name_mask_and_memory():
    trace = read_trace(SEED_TRACE)
    steps = trace.name_mask(lambda n: n.startswith("ProfilerStep#"))
    assert steps.sum() == 3
    assert trace.memory_bytes() / len(trace) < 80


def test_does_not_import_torch():
    code = (
        "import sys\n"
        "from perfdoctor.trace import read_trace\n"
        "from perfdoctor.trace import steps, cpu, gpu, comm\n"
        f"t = read_trace({str(SEED_TRACE)!r})\n"
        "cpu.cpu_breakdown(t); gpu.gpu_steps(t); comm.comm_steps(t)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={"PYTHONPATH": str(root)})


def test_kineto_text_helper_round_trips():
    trace = {"a": 1, "traceEvents": [op("x", 1, 2, args={"k": [1, 2]})]}
    assert json.loads(kineto_text(trace, "kineto")) == trace


def test_rocm_stream_handles_in_text_are_no_error(tmp_path):
    """ROCm writes a host call's stream as a pointer in hex text; device events write a number."""
    events = [
        op("hipLaunchKernel", 10, 5, cat="cuda_runtime", args={"correlation": 1, "stream": "0x0"}),
        op("hipMemcpyWithStream", 20, 5, cat="cuda_runtime", args={"correlation": 2, "stream": "0x7f3a"}),
        op("Cijk_Ailk_Bljk_SB_MT64x64x8", 30, 5, cat="kernel", pid=2, tid=0, args={"device": 2, "stream": 0, "correlation": 1}),
        op("Memcpy HtoD (Host -> Device)", 40, 5, cat="gpu_memcpy", pid=2, tid=0, args={"device": 2, "stream": "3", "correlation": 2}),
    ]
    for block in (64, 1 << 20):
        trace = read_trace(write_trace(tmp_path, events, name=f"rocm{block}.json"), block_bytes=block)
        assert not trace.skipped, trace.skipped.summary()
        assert trace.stream.tolist() == [-1, -1, 0, 3] and trace.device.tolist() == [-1, -1, 2, 2]
        assert trace.correlation.tolist() == [1, 2, 1, 2]
