"""report.json, schema `perfdoctor.report/1`: the contract that CI and other tools read.

`build_report` turns the analysed run into the typed Report (values rounded for people, long
per-step series thinned); the renderer encodes that model, nothing else. The schema is
documented in docs/contracts.md and docs/report.schema.json; fields are only ever added.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..analysis.rundata import RunData
from ..model.dataloader import DataLoaderSection, EpochStats, LoaderEntry
from ..model.finding import Finding
from ..model.host import HostSummary, HostTimeline
from ..model.numbers import rounded
from ..model.operators import OperatorRow, OperatorsSection
from ..model.report import SCHEMA, Report, report_to_builtins
from ..model.run import RunInfo
from ..model.steps import PHASES, StepSeriesSection, StepsSection, StepTimes
from ..redact import redact_argv, redact_text
from ..stream.atomic import write_json
from .renderer import AnalysedRun, Renderer

__all__ = ["SCHEMA", "JsonRenderer", "build_report", "write_report_json"]

MAX_SERIES_POINTS = 1000  # the per-step series is thinned to about this many steps for charts


def build_report(data: RunData, findings: list[Finding]) -> Report:
    steps = data.steps
    return Report(
        schema=SCHEMA,
        run=_redacted(data.run),
        environment=data.environment,
        steps=StepsSection(
            count=steps.count,
            profiled=steps.profiled,
            measured=steps.measured,
            excluded=steps.excluded,
            mode=data.series.mode,
            source=steps.source,
            time_ms=None
            if steps.mean_ms is None
            else StepTimes(
                mean=rounded(steps.mean_ms),
                p50=rounded(steps.p50_ms),
                p95=rounded(steps.p95_ms),
                min=rounded(steps.min_ms),
                max=rounded(steps.max_ms),
            ),
            breakdown=steps.breakdown.rounded(4) if steps.breakdown else None,
            breakdown_ms=steps.breakdown_ms.rounded(3) if steps.breakdown_ms else None,
            other_parts=msgspec.structs.replace(
                steps.other_parts,
                before_forward=round(steps.other_parts.before_forward, 4),
                loss=round(steps.other_parts.loss, 4),
            )
            if steps.other_parts
            else None,
            series=_series(data),
        ),
        dataloader=DataLoaderSection(
            loaders=[
                LoaderEntry(
                    id=loader.loader_id,
                    args=loader.args,
                    dataset=loader.dataset,
                    batches=loader.batches,
                    wait_total_ms=round(loader.wait_total_ms, 3),
                    wait_p50_ms=rounded(loader.wait_p50_ms),
                    wait_p95_ms=rounded(loader.wait_p95_ms),
                    epochs=[
                        EpochStats(
                            first_batch_ms=rounded(epoch.first_batch_ms),
                            iter_ms=round(epoch.iter_ms, 3),
                            batches=epoch.batches,
                            wait_ms=round(epoch.wait_ms, 3),
                            end_ms=round(epoch.end_ms, 3),
                        )
                        for epoch in loader.epochs
                    ],
                    source="trace" if loader.source == "trace" else None,
                    iterator=loader.iterator,
                )
                for loader in data.dataloaders
            ]
        ),
        host=None if data.host is None else _host(data.host),
        operators=None if data.trace is None else _operators(data),
        profiler=data.profiler,
        gpu=data.gpu,
        ddp=data.ddp,
        notes=[redact_text(note) for note in data.notes],  # collector errors of older run files
        memory=data.memory,
        findings=[msgspec.structs.replace(finding, estimated_saving=round(finding.estimated_saving, 4)) for finding in findings],
    )


def _redacted(run: RunInfo) -> RunInfo:
    """argv and the error masked again: the raw files may come from an older perfdoctor."""
    error = run.error and msgspec.structs.replace(run.error, message=redact_text(run.error.message))
    return msgspec.structs.replace(run, argv=redact_argv(run.argv), error=error)


def _series(data: RunData) -> StepSeriesSection:
    series = data.series
    stride = max(1, -(-len(series) // MAX_SERIES_POINTS))
    picked = range(0, len(series), stride)
    phases = {f"{phase}_ms": [rounded(series.phases_ms[phase][i]) for i in picked] for phase in PHASES}
    return StepSeriesSection(
        stride=stride,
        step=[series.number(i) for i in picked],  # the trace's own ProfilerStep numbers, when it has them
        duration_ms=[rounded(series.duration_ms[i]) for i in picked],
        profiled=[series.profiled[i] for i in picked],
        **phases,
    )


def _host(host: HostSummary) -> HostSummary:
    def r(value: float | None) -> float | None:
        return rounded(value)

    timeline = host.timeline
    return msgspec.structs.replace(
        host,
        interval_s=round(host.interval_s, 3),
        process_cpu_mean=r(host.process_cpu_mean),
        children_cpu_mean=r(host.children_cpu_mean),
        system_cpu_mean=r(host.system_cpu_mean),
        system_cpu_p90=r(host.system_cpu_p90),
        saturated_share=r(host.saturated_share),
        involuntary_switches_per_s=r(host.involuntary_switches_per_s),
        timeline=HostTimeline(
            t_s=[round(v, 2) for v in timeline.t_s],
            system_cpu=[rounded(v, 2) for v in timeline.system_cpu],
            process_cpu=[rounded(v, 2) for v in timeline.process_cpu],
            children_cpu=[rounded(v, 2) for v in timeline.children_cpu],
            rss_mb=[rounded(v, 2) for v in timeline.rss_mb],
        ),
    )


def _operators(data: RunData) -> OperatorsSection:
    trace = data.trace
    assert trace is not None
    return OperatorsSection(
        trace_files=trace.files,
        windows=trace.windows,
        step_ms=rounded(trace.step_ms),
        ops_per_step=rounded(trace.ops_per_step, 1),
        median_op_us=rounded(trace.median_op_us, 2),
        small_op_share=rounded(trace.small_op_share, 4),
        gap_share=rounded(trace.gap_share, 4),
        breakdown=trace.breakdown,
        skipped=trace.skipped,
        top=[
            OperatorRow(name=op.name, calls=op.calls, self_ms=round(op.self_ms, 3), total_ms=round(op.total_ms, 3), input_dims=op.input_dims)
            for op in trace.top_operators
        ],
    )


def write_report_json(report: Report, path: Path) -> Path:
    """Atomically: a reader (`check` in CI) never sees half a report."""
    return write_json(path, report_to_builtins(report))


class JsonRenderer(Renderer):
    output = "report.json"
    essential = True

    def render(self, run: AnalysedRun, out: Path) -> None:
        write_report_json(run.report, out / self.output)
