"""Processes the script started itself to train (a hogwild pool, `mp.spawn`): joined from the
parent's `processes` stream (which started, how they ended) and the children's own summaries
(`children`), see `collect/collectors/processes.py`.

When children trained and the parent itself never did (its steps are DataLoader batches of a
test pass, or nothing), the parent's steps are not the job's training: they are left out of the
statistics, and the report says where the training ran and that it was not measured step by step.
"""

from __future__ import annotations

from typing import Any

from ..stream.rundir import RunDir
from .rundata import ChildProcess, RunData, StepSeries
from .steps import step_stats

TRAINING_MODES = ("optimizer", "backward")


def child_processes(rundir: RunDir, rank: int | None) -> list[ChildProcess]:
    started = (rundir.read_raw_file("processes", rank) or {}).get("records") or []
    summaries = (rundir.read_raw_file("children", None) or {}).get("records") or []
    children: dict[Any, ChildProcess] = {}
    for record in started:
        if not isinstance(record, dict):
            continue
        if "started" in record and isinstance(record["started"], dict):
            info = record["started"]
            children[info.get("pid")] = ChildProcess(
                pid=info.get("pid"), target=str(info.get("target")), start_method=info.get("start_method")
            )
        elif "ended" in record and isinstance(record["ended"], dict):
            child = children.get(record["ended"].get("pid"))
            if child is not None:
                child.exitcode = record["ended"].get("exitcode")
    for record in summaries:
        summary = record.get("child") if isinstance(record, dict) else None
        if not isinstance(summary, dict):
            continue
        child = children.get(summary.get("pid"))
        if child is None:  # a grandchild, or the parent's record was lost: keep what the child said
            child = children[summary.get("pid")] = ChildProcess(pid=summary.get("pid"), target=str(summary.get("target")))
        child.status = summary.get("status")
        child.mode = summary.get("mode")
        child.steps = int(summary.get("steps") or 0)
        child.median_step_ms = summary.get("median_step_ms")
        child.total_step_ms = float(summary.get("total_step_ms") or 0.0)
        child.phase_ms = {k: float(v) for k, v in (summary.get("phase_ms") or {}).items()}
        child.intra_op_threads = summary.get("intra_op_threads")
        child.wall_s = summary.get("wall_s")
        child.cpu_s = summary.get("cpu_s")
    return [child for child in children.values() if child.steps > 0]


def add_child_processes(data: RunData, rundir: RunDir, rank: int | None) -> None:
    trained = child_processes(rundir, rank)
    if not trained:
        return
    data.child_processes = trained
    steps = ", ".join(
        f"pid {c.pid}: {c.steps} steps" + (f", median {c.median_step_ms:.1f} ms" if c.median_step_ms is not None else "")
        for c in trained
    )
    data.notes.append(
        f"Training ran in {len(trained)} process(es) the script started itself ({trained[0].target}, "
        f"{trained[0].start_method or 'unknown'} start method): perfdoctor counted their steps ({steps}) "
        "but did not measure them in detail (no DataLoader probe, profiler or host sampler there)."
    )
    if data.series.mode not in TRAINING_MODES and data.series.mode != "trace":
        count = len(data.series)
        data.series = StepSeries()
        data.steps = step_stats(data.series)
        data.steps.excluded = (
            f"training ran in child processes, not measured step by step; the parent's own {count} "
            "step(s) (DataLoader batches without training, such as a test pass) are left out"
        )
