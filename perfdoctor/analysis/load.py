"""Build RunData from a run directory's raw files and traces, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PerfdoctorError
from ..rundir import RunDir
from .dataloader import summarize_loaders
from .host import summarize_host
from .rundata import RunData, RunInfo
from .steps import WARMUP_STEPS, series_from_raw, step_stats


def load_run(root: Path) -> RunData:
    rundir = RunDir(Path(root))
    runs = rundir.read_raw("run")
    if not runs:
        raise PerfdoctorError(f"{root} is not a perfdoctor run directory (no raw/run.json)")
    rank = min(runs, key=lambda r: -1 if r is None else r)
    run_raw = runs[rank]

    def raw(name: str) -> dict[str, Any]:
        return rundir.read_raw(name).get(rank) or {}

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
    _add_trace(data, rundir, profiler)
    _add_notes(data, run_raw, profiler)
    return data


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


def _add_trace(data: RunData, rundir: RunDir, profiler: dict[str, Any] | None) -> None:
    listed = [rundir.root / path for path in (profiler or {}).get("traces") or []]
    paths = [path for path in listed if path.exists()] or rundir.trace_files()
    if not paths:
        return
    from .trace_summary import summarize_traces

    data.trace = summarize_traces(paths, relative_to=rundir.root)


def _add_notes(data: RunData, run_raw: dict[str, Any], profiler: dict[str, Any] | None) -> None:
    notes = data.notes
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
