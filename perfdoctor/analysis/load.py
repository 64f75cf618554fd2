"""Build RunData from a run directory's raw files and traces, nothing else.

A distributed run is read as its first rank's data, plus the job-wide `ddp` section merged from
every rank's compact summary (see `ranks.py`).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from ..errors import PerfdoctorError
from ..stream.rundir import RunDir
from .dataloader import summarize_loaders
from .host import summarize_host
from .ranks import SUMMARY_SCHEMA, merge_ranks, rank_summary
from .rundata import RunData, RunInfo
from .steps import WARMUP_STEPS, series_from_raw, step_stats

STATUS_WEIGHT = {"failed": 4, "killed": 3, "interrupted": 2, "stopped": 1, "completed": 0}  # a failing rank is the cause of the others being stopped


def load_run(root: Path) -> RunData:
    rundir = RunDir(Path(root))
    ranks = rundir.ranks("run")
    if not ranks:
        raise PerfdoctorError(f"{root} is not a perfdoctor run directory (no raw/run.json)")
    data, ddp_raw = load_rank(rundir, ranks[0])
    distributed = ranks != [None]
    if distributed or ddp_raw:
        summaries = [_summary(rundir, rank, (data, ddp_raw) if rank == ranks[0] else None) for rank in ranks]
        summaries = [summary for summary in summaries if summary]
        data.ddp = merge_ranks(summaries, data.run.ranks if distributed else 1)
        _job_outcome(data, summaries)
    return data


def load_rank(rundir: RunDir, rank: int | None) -> tuple[RunData, dict[str, Any] | None]:
    """One rank's RunData (its own steps, DataLoader, host, trace) and its raw DDP record."""
    run_raw = rundir.read_raw_file("run", rank)
    if run_raw is None:
        raise PerfdoctorError(f"{rundir.root}: unreadable {rundir.raw_path('run', rank).name}")

    def raw(name: str) -> dict[str, Any]:
        return rundir.read_raw_file(name, rank) or {}

    settings = raw("settings")
    profiler = raw("profiler") or None
    series = series_from_raw(raw("steps"), (profiler or {}).get("profiled_steps") or [])
    data = RunData(
        run=_run_info(run_raw),
        environment=environment_from_settings(settings),
        steps=step_stats(series),
        series=series,
        dataloaders=summarize_loaders(raw("dataloader")),
        host=summarize_host(raw("host"), (settings.get("cpu") or {}).get("affinity"), WARMUP_STEPS),
        profiler=profiler,
    )
    trace = _add_trace(data, rundir, profiler, rank)
    _add_gpu(data, trace, raw("gpu"), raw("steps").get("optimizers"))
    _add_notes(data, run_raw, profiler)
    return data, rundir.read_raw_file("ddp", rank)


def write_rank_summary(rundir: RunDir, rank: int | None) -> dict[str, Any]:
    """Where a rank ran: summarise it (its trace included) for the merge."""
    data, ddp_raw = load_rank(rundir, rank)
    summary = rank_summary(data, ddp_raw, rank, socket.gethostname())
    rundir.write_raw("summary", rank, summary)
    return summary


def _summary(rundir: RunDir, rank: int | None, loaded: tuple[RunData, Any] | None) -> dict[str, Any] | None:
    existing = rundir.read_raw_file("summary", rank)
    if existing and existing.get("schema") == SUMMARY_SCHEMA:
        return existing
    try:
        data, ddp_raw = loaded or load_rank(rundir, rank)
    except PerfdoctorError:
        return None
    return rank_summary(data, ddp_raw, rank, None)


def _job_outcome(data: RunData, summaries: list[dict[str, Any]]) -> None:
    """The job ended as badly as its worst rank; say which ranks are missing."""
    worst = max(summaries, key=lambda s: STATUS_WEIGHT.get(str(s.get("status")), 0), default=None)
    if worst and STATUS_WEIGHT.get(str(worst.get("status")), 0) > STATUS_WEIGHT.get(data.run.status, 0):
        data.run.status = str(worst["status"])
        data.notes.append(f"Rank {worst.get('rank')} ended {worst['status']} (exit status {worst.get('exit_code')}).")
    expected = data.run.ranks
    if expected > len(summaries):
        data.notes.append(
            f"{len(summaries)} of {expected} ranks left their measurements in this run directory "
            "(on several machines, point --out at a shared file system)."
        )


def _run_info(raw: dict[str, Any]) -> RunInfo:
    return RunInfo(
        script=raw.get("script"),
        module=raw.get("module"),
        argv=[str(a) for a in raw.get("argv") or []],
        exit_code=raw.get("exit_code"),
        status=str(raw.get("status") or "completed"),
        started=raw.get("started"),
        duration_s=raw.get("duration_s"),
        ranks=int(raw.get("world_size") or 1),
        error=raw.get("error"),
        max_steps=raw.get("max_steps"),
        collector_errors=dict(raw.get("collector_errors") or {}),
    )


def environment_from_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The report's environment block: the settings that matter, nothing from outside the allow-list."""
    keys = ("versions", "cpu", "threads", "memory", "backends", "autograd", "cuda", "env", "thread_probe")
    environment = {key: settings[key] for key in keys if key in settings}
    if "taken_at" in settings:
        environment["settings_taken_at"] = settings["taken_at"]
    return environment


def _add_trace(data: RunData, rundir: RunDir, profiler: dict[str, Any] | None, rank: int | None) -> Any:
    """Summarise the rank's trace into data.trace; return the Trace read (or None)."""
    listed = [rundir.root / path for path in (profiler or {}).get("traces") or []]
    paths = [path for path in listed if path.exists()]
    if not paths and rank is None and not profiler:
        paths = rundir.trace_files()
    if not paths:
        return None
    from .trace_summary import summarize_traces

    data.trace, trace = summarize_traces(paths, relative_to=rundir.root)
    return trace


def _add_gpu(data: RunData, trace: Any, nvml: dict[str, Any], optimizers: list[dict[str, Any]] | None) -> None:
    """The `gpu` section, when the run used a GPU (from the trace already read, and NVML)."""
    cuda = data.environment.get("cuda") or {}
    if not cuda.get("initialized") and not nvml.get("available"):
        return
    from .gpu import gpu_section

    data.gpu = gpu_section(trace, nvml=nvml or None, environment=data.environment, optimizers=optimizers)


def _add_notes(data: RunData, run_raw: dict[str, Any], profiler: dict[str, Any] | None) -> None:
    notes = data.notes
    notes.extend(str(note) for note in run_raw.get("notes") or [])  # how the run ended, what the streams lost
    if profiler and profiler.get("stood_aside"):
        aside = profiler["stood_aside"]
        notes.append(
            f"The script started its own profiler at step {aside.get('at_step')}: perfdoctor's profiler "
            "stepped aside, so operator-level detail comes only from the steps profiled before that."
        )
    if profiler and not profiler.get("traces") and not (profiler.get("stood_aside")):
        window = profiler.get("window") or {}
        if data.steps.count <= (window.get("start") or 0):
            notes.append(
                f"The run ended after {data.steps.count} steps, before the profiling window "
                f"(step {window.get('start')}); use --profile-steps to profile earlier steps."
            )
    for where, error in data.run.collector_errors.items():
        notes.append(f"Collector {where} failed ({error}); the rest of the report is unaffected.")
    if data.steps.count == 0:
        notes.append(
            "No training step was seen: no optimizer.step() and no DataLoader batch. Step statistics "
            "and the breakdown need one of them."
        )
    if data.run.status == "stopped":
        notes.append(f"The run was stopped cleanly after {data.run.max_steps} steps (--max-steps).")
