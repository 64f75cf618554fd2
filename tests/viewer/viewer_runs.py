"""Run directories for the viewer tests, made from the repository's recorded run and the shared
GPU traces: a finished run whose report has findings pointing into its trace (and a DDP section
naming a slow rank), a run still in progress (its lock held, its steps stream growing), and a
folder of foreign GPU traces reported with `perfdoctor report`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from perfdoctor.model.report import report_from_builtins, report_to_builtins

REPO = Path(__file__).resolve().parents[2]
REFERENCE_RUN = REPO / "tests" / "data" / "run_reference_cnn"
SHARED_TRACES = REPO.parent / "shared" / "traces"


def report_cli(*args: str) -> None:
    from perfdoctor.cli import main

    assert main(["report", "-q", *map(str, args)]) == 0


def finished_run(path: Path) -> Path:
    """The recorded reference run, reported, with two findings resting on places in its trace
    and a DDP section whose slow rank's step is in the same trace."""
    from perfdoctor.analysis.trace_summary import summarize_traces
    from perfdoctor.report.html import write_report_html

    shutil.copytree(REFERENCE_RUN, path)
    report_cli(path)
    document = json.loads((path / "report.json").read_text())
    traces = sorted((path / "tb").rglob("*.pt.trace.json.gz"))
    summary, _ = summarize_traces(traces, relative_to=path)
    places = summary.places
    assert places.slowest_step is not None and places.longest_dataloader_wait is not None
    wait = report_to_builtins_place(places.longest_dataloader_wait)
    step = report_to_builtins_place(places.slowest_step)
    document["findings"] = [
        {
            "id": "dataloader-bottleneck", "severity": "critical", "title": "The step waits 41% of its time on the DataLoader (num_workers=0)",
            "evidence": {"wait_share": 0.41, "wait_per_step_ms": 9.2, "num_workers": 0, "batch_wait_p95_ms": 12.5},
            "estimated_saving": 0.34, "advice": "Batches are loaded in the training process itself (num_workers=0).",
            "fix": "loader = DataLoader(\n    dataset,\n    batch_size=64,\n    num_workers=4,\n)",
            "docs": "https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html", "area": "data loading",
            "locations": [wait],
        },
        {
            "id": "host-overhead-bound", "severity": "info", "title": "Many tiny operators: 412 ops per step, median 8 µs each",
            "evidence": {"ops_per_step": 412, "median_op_us": 8.5, "small_op_share": 0.12},
            "estimated_saving": 0.05, "advice": "Give each op more work.", "fix": "model = torch.compile(model)",
            "docs": "https://pytorch.org/tutorials/intermediate/torch_compile_tutorial.html", "area": "cpu",
            "locations": [step],
        },
    ]
    document["ddp"] = ddp_section(step)
    report = report_from_builtins(document)
    (path / "report.json").write_text(json.dumps(report_to_builtins(report)))
    write_report_html(report, path / "report.html")
    return path


def report_to_builtins_place(place: Any) -> dict[str, Any]:
    import msgspec

    return dict(msgspec.to_builtins(place))


def ddp_section(slow_step: dict[str, Any]) -> dict[str, Any]:
    def row(rank: int, step: float, local: float) -> dict[str, Any]:
        return {"rank": rank, "node": f"node-{rank}", "status": "completed", "steps": 100, "step_p50_ms": step, "local_p50_ms": local,
                "dataloader_ms": 1.0, "forward_ms": 9.0, "backward_ms": 15.0, "optimizer_ms": 1.0, "other_ms": local - 26.0,
                "comm_ms": 5.0, "exposed_comm_ms": 1.0}

    logged = {"backend_name": "nccl", "communication_share": 0.22, "bucket_sizes": [25 * 2**20, 25 * 2**20, 1024], "has_rebuilt_buckets": 1}
    return {
        "backend": "nccl", "world_size": 4, "ranks_reported": 4,
        "ranks": [row(0, 42.0, 30.0), row(1, 42.1, 41.0), row(2, 42.0, 29.5), row(3, 41.9, 30.2)],
        "straggler": {"rank": 1, "local_p50_ms": 41.0, "others_local_p50_ms": 30.0, "others_wait_ms_per_step": 11.0,
                      "step_p50_ms": 42.1, "slowest_step_share": 0.97, "trace_step": {**slow_step, "rank": 1}},
        "comm_ms_per_backward": 5.0, "exposed_comm_ms_per_backward": 1.0, "comm_source": "DDP logger, rank 1",
        "collectives_per_step": {"all_reduce": 3.0}, "data_parallel": [],
        "instances": [{"module": "ResNet50WithAVeryLongModuleNameForTheTable", "find_unused_parameters": True, "static_graph": False,
                       "gradient_as_bucket_view": False, "broadcast_buffers": True, "bucket_cap_mb": 25.0, "device_ids": [0],
                       "parameter_devices": ["cuda:0"], "parameters": 161, "parameter_bytes": 102_228_128, "logged": logged}],
        "synced_forwards_per_step_max": 1, "synced_forwards_per_step_median": 1.0, "unsynced_forwards_total": 0, "logged": logged,
    }


def quiet_run(path: Path) -> Path:
    """The recorded reference run, reported as it is: no findings."""
    shutil.copytree(REFERENCE_RUN, path)
    report_cli(path)
    return path


def foreign_traces(path: Path, folder: str = "a100_alexnet_sync") -> Path:
    """A folder of real GPU traces recorded elsewhere, with `perfdoctor report DIR`'s reports."""
    shutil.copytree(SHARED_TRACES / folder, path)
    os.chmod(path, 0o755)
    report_cli(path)
    return path


class LiveRun:
    """A run directory as `perfdoctor run` leaves it mid-job: `.lock` naming a live process (a
    stand-in that sleeps), streams with a header and some steps, more steps appended on demand."""

    def __init__(self, path: Path, name: str = "train") -> None:
        self.path = path
        (path / "raw").mkdir(parents=True)
        (path / "tb" / name).mkdir(parents=True)
        self.holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (path / ".lock").write_text(f"{self.holder.pid}\n")
        self._write("run", {"start": {"script": f"{name}.py", "argv": [], "started": "2026-11-30T10:00:00+00:00", "run_name": name}})
        self._write("steps", {"origin_unix_s": 1_800_000_000.0}, {"mode": "optimizer"})
        self.steps = 0

    def _write(self, stream: str, *records: dict[str, Any]) -> None:
        file = self.path / "raw" / f"{stream}.jsonl"
        if not file.exists():
            records = ({"schema": "perfdoctor.stream/1", "stream": stream, "rank": None, "pid": self.holder.pid}, *records)
        with open(file, "a") as out:
            out.write("".join(json.dumps(record) + "\n" for record in records))

    def add_steps(self, count: int, step_ms: float = 40.0, dataloader_ms: float = 10.0) -> None:
        ns = 1_000_000
        start = [int((self.steps + i) * step_ms * ns) for i in range(count)]
        chunk = {
            "first": self.steps, "start_ns": start, "end_ns": [s + int(step_ms * ns) for s in start],
            "dataloader_ns": [int(dataloader_ms * ns)] * count, "forward_ns": [int(12 * ns)] * count,
            "backward_ns": [int(14 * ns)] * count, "optimizer_ns": [int(2 * ns)] * count, "overhead_ns": [0] * count,
            "before_forward_ns": [0] * count, "loss_ns": [int(ns)] * count, "batches": [1] * count,
        }
        self._write("steps", {"steps": chunk})
        self.steps += count

    def stop(self) -> None:
        self.holder.kill()
        self.holder.wait()
