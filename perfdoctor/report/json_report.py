"""report.json, schema `perfdoctor.report/1`: the contract that CI and other tools read.

Fields are only ever added; a rename bumps the schema number.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..analysis.rundata import RunData
from ..redact import redact_argv, redact_error, redact_text
from ..rules.base import Finding
from ..rundir import write_json

SCHEMA = "perfdoctor.report/1"


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def build_report(data: RunData, findings: list[Finding]) -> dict[str, Any]:
    run = data.run
    steps = data.steps
    return {
        "schema": SCHEMA,
        "run": {
            "script": run.script,
            "module": run.module,
            "argv": redact_argv(run.argv),  # again: run.json may come from an older perfdoctor
            "exit_code": run.exit_code,
            "status": run.status,
            "started": run.started,
            "duration_s": run.duration_s,
            "ranks": run.ranks,
            "error": redact_error(run.error),
            "max_steps": run.max_steps,
            "source": run.source,
        },
        "environment": data.environment,
        "steps": {
            "count": steps.count,
            "profiled": steps.profiled,
            "measured": steps.measured,
            "excluded": steps.excluded,
            "mode": data.series.mode,
            "source": steps.source,
            "time_ms": None
            if steps.mean_ms is None
            else {
                "mean": _r(steps.mean_ms),
                "p50": _r(steps.p50_ms),
                "p95": _r(steps.p95_ms),
                "min": _r(steps.min_ms),
                "max": _r(steps.max_ms),
            },
            "breakdown": None if steps.breakdown is None else {k: _r(v, 4) for k, v in steps.breakdown.items()},
            "breakdown_ms": None if steps.breakdown_ms is None else {k: _r(v) for k, v in steps.breakdown_ms.items()},
            "other_parts": None if steps.other_parts is None else {k: _r(v, 4) for k, v in steps.other_parts.items()},
            "series": _series(data),
        },
        "dataloader": {
            "loaders": [
                {
                    "id": loader.loader_id,
                    "args": loader.args,
                    "dataset": loader.dataset,
                    "batches": loader.batches,
                    "wait_total_ms": _r(loader.wait_total_ms),
                    "wait_p50_ms": _r(loader.wait_p50_ms),
                    "wait_p95_ms": _r(loader.wait_p95_ms),
                    "epochs": [
                        {key: _r(value) if isinstance(value, float) else value for key, value in dataclasses.asdict(epoch).items()}
                        for epoch in loader.epochs
                    ],
                }
                for loader in data.dataloaders
            ]
        },
        "host": None if data.host is None else _host(data),
        "operators": None if data.trace is None else _operators(data),
        "profiler": data.profiler,
        "gpu": data.gpu,
        "ddp": data.ddp,
        "notes": [redact_text(note) for note in data.notes],  # collector errors of older run.json files
        "findings": [finding.to_json() for finding in findings],
    }


MAX_SERIES_POINTS = 1000  # the per-step series is thinned to about this many steps for charts


def _series(data: RunData) -> dict[str, Any]:
    series = data.series
    stride = max(1, -(-len(series) // MAX_SERIES_POINTS))
    picked = range(0, len(series), stride)
    return {
        "stride": stride,
        "step": list(picked),
        "duration_ms": [_r(series.duration_ms[i]) for i in picked],
        "profiled": [series.profiled[i] for i in picked],
        **{f"{phase}_ms": [_r(values[i]) for i in picked] for phase, values in series.phases_ms.items()},
    }


def _host(data: RunData) -> dict[str, Any]:
    host = data.host
    assert host is not None
    fields = dataclasses.asdict(host)
    timeline = fields.pop("timeline")
    summary = {key: _r(value) if isinstance(value, float) else value for key, value in fields.items()}
    summary["timeline"] = {key: [_r(v, 2) for v in values] for key, values in timeline.items()}
    return summary


def _operators(data: RunData) -> dict[str, Any]:
    trace = data.trace
    assert trace is not None
    return {
        "trace_files": trace.files,
        "windows": trace.windows,
        "step_ms": _r(trace.step_ms),
        "ops_per_step": _r(trace.ops_per_step, 1),
        "median_op_us": _r(trace.median_op_us, 2),
        "small_op_share": _r(trace.small_op_share, 4),
        "gap_share": _r(trace.gap_share, 4),
        "breakdown": trace.breakdown,
        "skipped": trace.skipped,
        "top": [
            {"name": op.name, "calls": op.calls, "self_ms": _r(op.self_ms), "total_ms": _r(op.total_ms), "input_dims": op.input_dims}
            for op in trace.top_operators
        ],
    }


def write_report_json(report: dict[str, Any], path: Path) -> Path:
    return write_json(path, report)
