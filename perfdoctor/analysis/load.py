"""Build RunData from a run directory's raw files and traces, nothing else.

Raw files are read as the collectors wrote them (dicts, through `RunDir`) and turned into the
typed model here, at the edge: a raw file of the wrong shape costs its own section and a note
saying why, never the report. A distributed run is read as its first rank's data, plus the
job-wide `ddp` section merged from every rank's compact summary (see `ranks.py`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..errors import PerfdoctorError
from ..model.ddp import SUMMARY_SCHEMA, DdpRecord, RankSummary
from ..model.environment import Environment
from ..model.gpu import OptimizerConfig
from ..model.profiler import ProfilerSection
from ..model.run import RunError, RunInfo, status_of, worse
from ..stream import shapes
from ..stream.rundir import RunDir
from .dataloader import summarize_loaders
from .host import summarize_host
from .memory import memory_section
from .memory_events import leak_sites
from .ranks import merge_ranks, rank_summary
from .processes import add_child_processes
from .rundata import RunData
from .steps import WARMUP_STEPS, series_from_raw, step_stats

if TYPE_CHECKING:
    from ..trace import Trace

T = TypeVar("T")
ENVIRONMENT_KEYS = ("versions", "cpu", "threads", "memory", "backends", "autograd", "cuda", "env", "thread_probe")


def typed(kind: type[T], raw: Any, where: str, notes: list[str]) -> T | None:
    """`raw` (a raw file, or part of one) as `kind`; None, and a note, when it has another shape."""
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as error:
        notes.append(f"{where} is not in the shape this perfdoctor reads ({error}); it is left out of the report.")
        return None


def typed_fields(kind: type, raw: dict[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    """`raw` without the fields that do not have their shape in `kind` (a note names each);
    fields `kind` does not describe are kept as they are."""
    shapes_of = {field.name: field.type for field in msgspec.structs.fields(kind)}
    kept: dict[str, Any] = {}
    for name, value in raw.items():
        if name in shapes_of:
            try:
                msgspec.convert(value, shapes_of[name])
            except msgspec.ValidationError as error:
                notes.append(f"{where}: {name} is not in the shape this perfdoctor reads ({error}); it is left out of the report.")
                continue
        kept[name] = value
    return kept


def load_run(root: Path) -> RunData:
    rundir = RunDir(Path(root))
    ranks = rundir.ranks("run")
    if not ranks:
        raise PerfdoctorError(f"{root} is not a perfdoctor run directory (no raw/run.json)")
    data, ddp_raw = load_rank(rundir, ranks[0])
    distributed = ranks != [None]
    if distributed or ddp_raw:
        loaded = [_summary(rundir, rank, (data, ddp_raw) if rank == ranks[0] else None) for rank in ranks]
        summaries = [summary for summary in loaded if summary is not None]
        data.ddp = merge_ranks(summaries, data.run.ranks if distributed else 1)
        _job_outcome(data, summaries, ranks[0])
        if data.memory is not None and distributed:
            data.memory.ranks = [s.memory for s in summaries if s.memory is not None]
    return data


def load_rank(rundir: RunDir, rank: int | None) -> tuple[RunData, DdpRecord | None]:
    """One rank's RunData (its own steps, DataLoader, host, trace) and its raw DDP record."""
    notes: list[str] = []

    def where(name: str) -> str:
        return rundir.raw_file_name(name, rank)

    def raw(name: str) -> dict[str, Any]:
        """A raw file, checked: one of the wrong shape costs its own section (or, for the run and
        the settings, the fields of the wrong shape), with a note."""
        data = rundir.read_raw_file(name, rank) or {}
        shape = shapes.SECTIONS.get(name)
        if not data or shape is None:
            return data
        if name in ("run", "settings"):
            return typed_fields(shape, data, where(name), notes)
        return data if typed(shape, data, where(name), notes) is not None else {}

    run_raw = raw("run")
    if not run_raw:
        why = rundir.read_raw_checked("run", rank).unreadable or f"{where('run')} holds no run record"
        raise PerfdoctorError(f"{rundir.root}: {why}")
    status = run_raw.get("status")
    if status is not None and status_of(status) is None:
        notes.append(f"{where('run')} gives the run's status as {status!r}, which this perfdoctor does not know: reported as failed.")
    settings = raw("settings")
    profiler_raw = raw("profiler")
    profiler = typed(ProfilerSection, profiler_raw, where("profiler"), notes) if profiler_raw else None
    steps_raw = raw("steps")
    series = series_from_raw(steps_raw, profiler.profiled_steps if profiler else [])
    environment = environment_from_settings(settings, where("settings"), notes)
    data = RunData(
        run=_run_info(run_raw),
        environment=environment,
        steps=step_stats(series),
        series=series,
        dataloaders=summarize_loaders(raw("dataloader"), environment.usable_cores()),
        host=summarize_host(raw("host"), environment.cpu.affinity if environment.cpu else None, WARMUP_STEPS),
        profiler=profiler,
        notes=notes,
    )
    trace = _add_trace(data, rundir, profiler, rank)
    try:
        data.memory = memory_section(raw("memory"), raw("host"), data.run, run_raw, series, data.dataloaders)
    except (TypeError, ValueError, KeyError, AttributeError) as error:  # a raw file of another shape
        notes.append(f"{where('memory')} could not be read ({type(error).__name__}: {error}); the memory section is left out.")
    if data.memory is not None and trace is not None:
        data.memory.leak_sites = leak_sites(trace)
    optimizers = typed(list[OptimizerConfig], steps_raw.get("optimizers") or [], where("steps") + " optimizers", notes)
    _add_gpu(data, trace, raw("gpu"), optimizers)
    _add_notes(data, run_raw, profiler)
    add_child_processes(data, rundir, rank)
    ddp_raw = raw("ddp")
    return data, typed(DdpRecord, ddp_raw, where("ddp"), data.notes) if ddp_raw else None


def write_rank_summary(rundir: RunDir, rank: int | None) -> RankSummary:
    """Where a rank ran: summarise it (its trace included) for the merge."""
    data, ddp_raw = load_rank(rundir, rank)
    summary = rank_summary(data, ddp_raw, rank, socket.gethostname())
    rundir.write_raw("summary", rank, msgspec.to_builtins(summary))
    return summary


def _summary(rundir: RunDir, rank: int | None, loaded: tuple[RunData, DdpRecord | None] | None) -> RankSummary | None:
    existing = rundir.read_raw_file("summary", rank)
    if existing and existing.get("schema") == SUMMARY_SCHEMA:
        try:
            return msgspec.convert(existing, RankSummary)
        except msgspec.ValidationError:
            pass  # written by another version: summarise the rank again from its raw files
    try:
        data, ddp_raw = loaded or load_rank(rundir, rank)
    except PerfdoctorError:
        return None
    return rank_summary(data, ddp_raw, rank, None)


def _job_outcome(data: RunData, summaries: list[RankSummary], shown: int | None) -> None:
    """The job ended as badly as its worst rank; every other rank that did not end well is
    named (a rank the OOM killer took is often the cause of the others' failing: gloo and NCCL
    raise when a peer vanishes, a race with torchrun's own SIGTERM); say which ranks are missing."""
    worst = next((s for s in summaries if not any(worse(other.status, s.status) for other in summaries)), None)
    if worst and worse(worst.status, data.run.status):
        data.run.status = worst.status
    for summary in summaries:
        if summary.rank != shown and summary.status not in ("completed", "stopped"):
            data.notes.append(f"Rank {summary.rank} ended {summary.status} (exit status {summary.exit_code}).")
    expected = data.run.ranks
    if expected > len(summaries):
        data.notes.append(
            f"{len(summaries)} of {expected} ranks left their measurements in this run directory "
            "(on several machines, point --out at a shared file system)."
        )


def _run_info(raw: dict[str, Any]) -> RunInfo:
    error = raw.get("error")
    return RunInfo(
        script=raw.get("script"),
        module=raw.get("module"),
        argv=[str(a) for a in raw.get("argv") or []],
        exit_code=raw.get("exit_code"),
        status=status_of(raw.get("status") or "completed") or "failed",  # an unknown status is noted in load_rank
        started=raw.get("started"),
        duration_s=raw.get("duration_s"),
        ranks=int(raw.get("world_size") or 1),
        error=RunError(type=error.get("type") or "unknown", message=error.get("message") or "") if isinstance(error, dict) else None,
        max_steps=raw.get("max_steps"),
    )


def environment_from_settings(settings: dict[str, Any], where: str = "raw/settings.json", notes: list[str] | None = None) -> Environment:
    """The report's environment block: the settings that matter, nothing from outside the allow-list.

    A block of the wrong shape is left out (with a note); the other blocks stay."""
    notes = notes if notes is not None else []
    fields = {field.name: field.type for field in msgspec.structs.fields(Environment)}
    environment = Environment(settings_taken_at=settings.get("taken_at"))
    for key in ENVIRONMENT_KEYS:
        if settings.get(key) is not None:
            block = typed(fields[key], settings[key], f"{where} {key}", notes)
            setattr(environment, key, block)
    return environment


def _add_trace(data: RunData, rundir: RunDir, profiler: ProfilerSection | None, rank: int | None) -> Trace | None:
    """Summarise the rank's trace into data.trace; return the Trace read (or None). A trace the
    run names but that cannot be read (or lies outside the run directory) is said in the notes."""
    refused: list[str] = []
    paths: list[Path] = []
    for relative in profiler.traces if profiler else []:
        path, why = rundir.run_file(relative)
        if path is None:
            refused.append(str(why))
        elif os.path.lexists(path):
            paths.append(path)
        else:
            refused.append(f"{relative} that the profiler recorded is missing")
    if not paths and rank is None and not profiler:
        paths = rundir.trace_files(refused)
    for why in refused:
        data.notes.append(f"The trace {why}; operator statistics come only from the run's other traces, if any.")
    if not paths:
        return None
    from .trace_summary import summarize_traces

    data.trace, trace = summarize_traces(paths, relative_to=rundir.root)
    for why in data.trace.skipped:
        data.notes.append(f"A trace of this run was left out or read only in part: {why}.")
    return trace


def _add_gpu(data: RunData, trace: Trace | None, nvml: dict[str, Any], optimizers: list[OptimizerConfig] | None) -> None:
    """The `gpu` section, when the run used a GPU (from the trace already read, and NVML)."""
    cuda = data.environment.cuda
    if not (cuda and cuda.initialized) and not nvml.get("available"):
        return
    from .gpu import gpu_section

    data.gpu = gpu_section(trace, nvml=nvml or None, environment=data.environment, optimizers=optimizers)


def _add_notes(data: RunData, run_raw: dict[str, Any], profiler: ProfilerSection | None) -> None:
    notes = data.notes
    notes.extend(str(note) for note in run_raw.get("notes") or [])  # how the run ended, what the streams lost
    if profiler and profiler.stood_aside:
        notes.append(
            f"The script started its own profiler at step {profiler.stood_aside.at_step}: perfdoctor's profiler "
            "stepped aside, so operator-level detail comes only from the steps profiled before that."
        )
    if profiler and not profiler.traces and not profiler.stood_aside:
        start = profiler.window.start if profiler.window else 0
        if data.steps.count <= start:
            notes.append(
                f"The run ended after {data.steps.count} steps, before the profiling window "
                f"(step {profiler.window.start if profiler.window else None}); use --profile-steps to profile earlier steps."
            )
    collector_errors = run_raw.get("collector_errors") or {}
    for place, error in collector_errors.items() if isinstance(collector_errors, dict) else ():
        notes.append(f"Collector {place} failed ({error}); the rest of the report is unaffected.")
    if data.steps.count == 0:
        notes.append(
            "No training step was seen: no optimizer.step() and no DataLoader batch. Step statistics "
            "and the breakdown need one of them."
        )
    if data.run.status == "stopped":
        notes.append(f"The run was stopped cleanly after {data.run.max_steps} steps (--max-steps).")
