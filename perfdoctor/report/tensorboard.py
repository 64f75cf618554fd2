"""TensorBoard scalars: step time and its phases per step, host CPU and memory over time, GPU
utilisation when sampled, and memory at step ends (`memory/*`, with the limits as lines). Written beside the profiler traces (`RUN/tb/<run-name>/`), so one
TensorBoard run holds both.

The supervising `perfdoctor run` writes them while the job runs (`LiveScalars`, fed from the raw
streams), so `tensorboard --logdir RUN/tb` is a live dashboard. Every point carries its true wall
time; step series use the training step as their step, host and GPU series the number of
training steps done when the sample was taken (pick "Wall" or "Relative" on TensorBoard's
horizontal axis for a timeline). Written with TensorBoard's own event writer: no torch.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from ..analysis.rundata import RunData
from ..stream.rundir import SCALARS_SUFFIX

PHASE_NAMES = ("dataloader", "forward", "backward", "optimizer")


class ScalarWriter:
    """Legacy `simple_value` scalars (what every TensorBoard reader understands), written with
    TensorBoard's own record writer, in the calling thread: a failure (a full disk) is an
    exception here, never a traceback printed from a writer thread of TensorBoard's."""

    def __init__(self, folder: Path) -> None:
        import socket
        import time

        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0{SCALARS_SUFFIX}"
        self._file = open(folder / name, "ab")
        self._records = RecordWriter(self._file)
        self._records.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def add(self, tag: str, value: float, step: int, wall_time: float) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._records.write(Event(wall_time=wall_time, step=int(step), summary=summary).SerializeToString())

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def step_scalars(chunk: dict[str, Any]) -> list[tuple[int, int, dict[str, float]]]:
    """(step, end in ns since the clock's origin, {tag: ms}) for a chunk of the steps stream,
    durations less perfdoctor's own overhead, phases as the analysis splits them."""
    first = int(chunk.get("first", 0))
    out = []
    ends = chunk.get("end_ns") or []
    for i, end in enumerate(ends):
        def at(name: str) -> int:
            column = chunk.get(name) or []
            return int(column[i]) if i < len(column) else 0

        duration = max(0, int(end) - at("start_ns") - at("overhead_ns"))
        known: dict[str, float] = {phase: float(min(at(f"{phase}_ns"), duration)) for phase in PHASE_NAMES}
        total = sum(known.values())
        if total > duration and total:
            known = {phase: ns * duration / total for phase, ns in known.items()}
            total = duration
        values = {"step/time_ms": duration / 1e6, **{f"step/{phase}_ms": ns / 1e6 for phase, ns in known.items()}}
        values["step/other_ms"] = (duration - total) / 1e6
        out.append((first + i, int(end), values))
    return out


def host_scalars(sample: dict[str, Any]) -> dict[str, float]:
    values = {
        "host/system_cpu_percent": sample.get("system_cpu"),
        "host/process_cpu_percent": sample.get("process_cpu"),
        "host/workers_cpu_percent": sample.get("children_cpu"),
        "host/rss_mb": (sample.get("rss") or 0) / 2**20 if sample.get("rss") is not None else None,
    }
    return {tag: float(value) for tag, value in values.items() if value is not None}


def gpu_scalars(sample: dict[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for reading in sample.get("devices") or []:
        index = reading.get("index")
        if reading.get("utilization_gpu") is not None:
            values[f"gpu{index}/utilization_percent"] = float(reading["utilization_gpu"])
        if reading.get("memory_used_bytes") is not None:
            values[f"gpu{index}/memory_used_mb"] = reading["memory_used_bytes"] / 2**20
    return values


MEMORY_TAGS = {
    "rss": "memory/process_rss_mb",
    "children_rss": "memory/workers_rss_mb",
    "cuda_allocated": "memory/gpu_allocated_mb",
    "cuda_reserved": "memory/gpu_reserved_mb",
    "cuda_peak_allocated": "memory/gpu_peak_allocated_mb",
}


def memory_scalars(chunk: dict[str, Any], limits: dict[str, float] | None = None) -> list[tuple[int, int, dict[str, float]]]:
    """(steps done, time in ns since the clock's origin, {tag: MiB}) for a chunk of the memory
    stream's samples; `limits` ({tag: MiB}: the host limit, the GPU's) go with every point, so that
    TensorBoard draws them as lines beside the series."""
    steps, times = chunk.get("step") or [], chunk.get("t_ns") or []
    out = []
    for i, step in enumerate(steps):
        if step is None or i >= len(times) or times[i] is None:
            continue
        values: dict[str, float] = {}
        for name, tag in MEMORY_TAGS.items():
            column = chunk.get(name) or []
            if i < len(column) and column[i] is not None:
                values[tag] = column[i] / 2**20
        if values:
            values.update(limits or {})
            out.append((int(step), int(times[i]), values))
    return out


def memory_limits(meta: dict[str, Any] | None, cuda: dict[str, Any] | None) -> dict[str, float]:
    limits = {}
    if meta and meta.get("limit_bytes"):
        limits["memory/host_limit_mb"] = meta["limit_bytes"] / 2**20
    if cuda and cuda.get("limit_bytes"):
        limits["memory/gpu_limit_mb"] = cuda["limit_bytes"] / 2**20
    return limits


class LiveScalars:
    """Scalars from the raw streams as they arrive (see `run/live.py`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer: ScalarWriter | None = None
        self.origin_unix_s: float | None = None
        self.failed: str | None = None

    def _out(self) -> ScalarWriter | None:
        if self._writer is None and self.failed is None:
            try:
                self._writer = ScalarWriter(self.folder)
            except Exception as error:  # no tensorboard, a full disk: the run goes on without
                self.failed = f"{type(error).__name__}: {error}"
        return self._writer

    def steps(self, chunk: dict[str, Any]) -> None:
        if self.origin_unix_s is None:
            return
        out = self._out()
        for step, end_ns, values in step_scalars(chunk) if out else []:
            for tag, value in values.items():
                self._add(tag, value, step, self.origin_unix_s + end_ns / 1e9)

    def memory(self, chunk: dict[str, Any], limits: dict[str, float] | None = None) -> None:
        if self.origin_unix_s is None or not self._out():
            return
        for step, t_ns, values in memory_scalars(chunk, limits):
            for tag, value in values.items():
                self._add(tag, value, step, self.origin_unix_s + t_ns / 1e9)

    def sample(self, values: dict[str, float], t_ns: int | None, step: int | None) -> None:
        if self.origin_unix_s is None or t_ns is None or not self._out():
            return
        for tag, value in values.items():
            self._add(tag, value, step or 0, self.origin_unix_s + t_ns / 1e9)

    def _add(self, tag: str, value: float, step: int, wall: float) -> None:
        try:
            assert self._writer is not None
            self._writer.add(tag, value, step, wall)
        except Exception as error:
            self.failed = f"{type(error).__name__}: {error}"
            self._writer = None

    def flush(self) -> None:
        if self._writer is not None:
            try:
                self._writer.flush()
            except Exception as error:
                self.failed, self._writer = f"{type(error).__name__}: {error}", None

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception as error:
                self.failed = f"{type(error).__name__}: {error}"
            self._writer = None


def write_scalars(data: RunData, folder: Path) -> None:
    """Scalars for a run whose scalars were not written live (a run directory read again,
    or from before streaming); a no-op where live scalars are already there."""
    if folder.is_dir() and any(folder.rglob(f"events.out.tfevents.*{SCALARS_SUFFIX}")):
        return
    started = _unix_time(data.run.started)
    writer = ScalarWriter(folder)
    try:
        series = data.series
        elapsed = 0.0
        for step, duration in enumerate(series.duration_ms):
            elapsed += duration / 1e3
            wall = started + elapsed
            writer.add("step/time_ms", duration, step, wall)
            for phase, values in series.phases_ms.items():
                writer.add(f"step/{phase}_ms", values[step], step, wall)
        host = data.host
        if host is not None:
            timeline = host.timeline
            for i, t_s in enumerate(timeline.t_s):
                wall = started + t_s
                for tag, column in (
                    ("host/system_cpu_percent", timeline.system_cpu),
                    ("host/process_cpu_percent", timeline.process_cpu),
                    ("host/workers_cpu_percent", timeline.children_cpu),
                    ("host/rss_mb", timeline.rss_mb),
                ):
                    value = column[i]
                    if value is not None:
                        writer.add(tag, value, i, wall)
        memory = data.memory
        if memory is not None:
            sampled = memory.series
            limits = {}
            if memory.host_limit_bytes:
                limits["memory/host_limit_mb"] = memory.host_limit_bytes / 2**20
            if memory.gpu is not None:
                limits["memory/gpu_limit_mb"] = memory.gpu.limit_bytes / 2**20
            columns: dict[str, list[float | None]] = {
                "memory/process_rss_mb": sampled.process_rss_mb, "memory/workers_rss_mb": sampled.workers_rss_mb,
                "memory/gpu_allocated_mb": sampled.gpu_allocated_mb, "memory/gpu_reserved_mb": sampled.gpu_reserved_mb,
                "memory/gpu_peak_allocated_mb": sampled.gpu_peak_allocated_mb,
            }
            for i, (step, t_s) in enumerate(zip(sampled.step, sampled.t_s)):
                wall = started + t_s
                for tag, points in columns.items():
                    point = points[i] if i < len(points) else None
                    if point is not None:
                        writer.add(tag, point, step, wall)
                for tag, value in limits.items():
                    writer.add(tag, value, step, wall)
    finally:
        writer.close()


def _unix_time(started: str | None) -> float:
    try:
        return dt.datetime.fromisoformat(str(started)).timestamp()
    except (TypeError, ValueError):
        return dt.datetime.now().timestamp()
