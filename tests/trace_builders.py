"""Helpers for the trace tests: the shared real traces, and traces built by hand.

Plain functions rather than conftest.py fixtures: a second conftest.py would be imported under
the module name "conftest" and shadow tests/conftest.py for the modules that import from it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest


def kineto_text(trace: dict[str, Any], style: str = "pretty") -> str:
    """A trace dict as JSON text: "pretty" (one field per line, like PyTorch 2.x), "kineto"
    (events as Kineto writes them: `  {` ... `},` between), or "minified"."""
    if style == "minified":
        return json.dumps(trace, separators=(",", ":"))
    if style == "pretty":
        return json.dumps(trace, indent=2)
    members = []
    for key, value in trace.items():
        if key != "traceEvents":
            members.append(f"  {json.dumps(key)}: {json.dumps(value)}")
            continue
        events = []
        for event in value:
            if not isinstance(event, dict):
                events.append("  " + json.dumps(event))
                continue
            fields = [f'"{k}": {json.dumps(v)}' for k, v in event.items() if k != "args"]
            text = "  {\n    " + ", ".join(fields)
            if "args" in event:
                args = event["args"]
                body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in args.items()) if isinstance(
                    args, dict) else json.dumps(args)
                text += ',\n    "args": {\n      ' + body + "\n    }" if isinstance(args, dict) else \
                    ',\n    "args": ' + body
            events.append(text + "\n  }")
        members.append('  "traceEvents": [\n' + ",\n".join(events) + "\n  ]")
    parts = ["{", ",\n".join(members), "}"]
    return "\n".join(parts)


def op(name: str, ts: float, dur: float, *, cat: str = "cpu_op", pid: Any = 1, tid: Any = 1,
       args: dict[str, Any] | None = None) -> dict:
    """A complete ("X") event; ts and dur in microseconds, as Kineto writes them."""
    event = {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur}
    if args:
        event["args"] = args
    return event


def shifted(events: list[dict], by_us: float, step: int | None = None) -> list[dict]:
    """A copy of events moved later by by_us (ProfilerStep renumbered to step if given)."""
    out = []
    for event in events:
        event = {**event, "ts": event["ts"] + by_us}
        if step is not None and event["name"].startswith("ProfilerStep#"):
            event["name"] = f"ProfilerStep#{step}"
        out.append(event)
    return out


def annotation(name: str, ts: float, dur: float, **kw: Any) -> dict:
    return op(name, ts, dur, cat="user_annotation", **kw)


def cpu_training_events(tid2: int | None = None) -> list[dict]:
    """One CPU training step, ProfilerStep#1 = [0, 1000) us on pid 1 / tid 1, with known phases.

    dataloader [10,110) (100) | forward hull [150,320) and aten::item [950,960) (180) |
    zero_grad [330,350) + step [700,900) (220) | backward [400,600) with a 5 us engine gap (200) |
    other 300. With tid2, the backward ranges run on that thread (GPU-style autograd thread).
    """
    bwd_tid = tid2 if tid2 is not None else 1
    return [
        annotation("ProfilerStep#1", 0, 1000),
        annotation("enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__", 10, 100),
        op("aten::stack", 20, 80, args={"Input Dims": [[32, 3], [32, 3]]}),
        op("aten::linear", 150, 100, args={"Input Dims": [[32, 64], [10, 64], [10]]}),
        op("aten::addmm", 160, 80, args={"Input Dims": [[10], [32, 64], [64, 10]]}),
        op("aten::relu", 300, 20, args={"Input Dims": [[32, 10]]}),
        annotation("Optimizer.zero_grad#SGD.zero_grad", 330, 20),
        op("aten::zero_", 335, 10),
        op("autograd::engine::evaluate_function: AddmmBackward0", 400, 100, tid=bwd_tid),
        op("AddmmBackward0", 402, 96, tid=bwd_tid),
        op("aten::mm", 410, 80, tid=bwd_tid, args={"Input Dims": [[32, 10], [10, 64]]}),
        op("autograd::engine::evaluate_function: ReluBackward0", 505, 95, tid=bwd_tid),
        annotation("Optimizer.step#SGD.step", 700, 200),
        op("aten::add_", 710, 180),
        op("aten::item", 950, 10),
    ]


def launch(name: str, ts: float, dur: float, corr: int) -> dict:
    """A CUDA runtime call on the host thread, linked to its device work by `corr`."""
    return op(name, ts, dur, cat="cuda_runtime", args={"correlation": corr, "cbid": 211})


def kernel(name: str, ts: float, dur: float, corr: int, stream: int = 7, cat: str = "kernel", **args: Any) -> dict:
    """Device work (a kernel, or a memcpy/memset/sync with `cat`) on device 0."""
    return op(name, ts, dur, cat=cat, pid=0, tid=stream, args={"device": 0, "stream": stream, "correlation": corr, **args})


def gpu_training_events() -> list[dict]:
    """Two steps with device work whose numbers are worked out in test_trace_gpu.py."""

    return [
        annotation("ProfilerStep#1", 0, 1000),
        annotation("ProfilerStep#2", 1000, 1000),
        launch("cudaLaunchKernel", 20, 5, 7),
        op("aten::mm", 90, 20),
        launch("cudaLaunchKernel", 100, 5, 1),
        kernel("volta_h884gemm_64x64_ldg8_nn", 120, 180, 1),
        op("aten::relu", 395, 15),
        launch("cudaLaunchKernel", 400, 5, 2),
        kernel("void at::native::vectorized_elementwise_kernel<4, relu>", 420, 5, 2),
        op("aten::to", 490, 60),
        op("aten::_to_copy", 492, 56),
        launch("cudaMemcpyAsync", 500, 5, 3),
        {**kernel("Memcpy HtoD (Pageable -> Device)", 510, 20, 3, cat="gpu_memcpy"),
         "args": {"device": 0, "stream": 7, "correlation": 3, "bytes": 4096}},
        launch("cudaStreamSynchronize", 506, 34, 4),
        kernel("Stream Sync", 512, 20, 4, cat="cuda_sync"),
        op("c10d::allreduce_", 545, 15),
        annotation("nccl:all_reduce", 548, 10),
        launch("cudaLaunchKernel", 550, 5, 5),
        kernel("ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)", 600, 200, 5,
               stream=20),
        op("aten::mm", 562, 18),
        launch("cudaLaunchKernel", 565, 5, 6),
        kernel("sm80_xmma_gemm_f16f16_f16f32_f32_nn_n_tilesize96x128x32", 700, 200, 6),
        kernel("void at::native::reduce_kernel<512, 1>", 950, 10, 7),
        launch("cudaLaunchKernel", 980, 5, 8),
        kernel("void at::native::elementwise_kernel<128, 2>", 1010, 40, 8),
        launch("cudaLaunchKernel", 1500, 5, 9),
        kernel("void at::native::elementwise_kernel<128, 4>", 1600, 100, 9),
    ]


SHARED_TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
#: A real CPU training trace recorded with torch 2.13 (see tests/data/traces/README.md).
SEED_TRACE = Path(__file__).resolve().parent / "data" / "traces" / "cpu_training_torch2.13.pt.trace.json.gz"

TEST_TRACES = Path(__file__).resolve().parent / "data" / "traces"
#: Real traces from other jobs, trimmed; provenance in tests/data/traces/README.md.
KINETO_RESNET50_WORKERS_0 = TEST_TRACES / "kineto_resnet50_num_workers_0" / "worker0.1623143089861.pt.trace.json.gz"
KINETO_RESNET50_WORKERS_4 = TEST_TRACES / "kineto_resnet50_num_workers_4" / "worker0.1623212756351.pt.trace.json.gz"
HTA_MI250 = TEST_TRACES / "hta_mi250_rocm6.2" / "mi250_minitoy_train_ROCm6_2_kineto.json.gz"


def shared_trace(relative: str) -> Path:
    """Path of a trace under shared/traces; skips the calling test when shared/ is absent."""
    path = SHARED_TRACES / relative
    if not path.exists():
        pytest.skip(f"shared trace {relative} not available")
    return path


def write_trace(folder: Path, content: Any, name: str | None = None, style: str = "kineto", gz: bool = False,
                **top: Any) -> Path:
    """Write events (or a whole trace dict) as a trace file in folder; returns its path."""
    trace = content if isinstance(content, dict) else {"schemaVersion": 1, **top, "traceEvents": list(content)}
    name = name or f"trace{len(list(folder.iterdir())) + 1}.json" + (".gz" if gz else "")
    path = folder / name
    data = kineto_text(trace, style).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
