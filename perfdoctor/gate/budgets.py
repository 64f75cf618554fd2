"""Budgets: limits on what one report.json measured, and whether it keeps them.

    max_step_time_ms        median steady-state step (steps.time_ms.p50)
    max_p95_step_time_ms    95th percentile step
    max_dataloader_share    fraction of step time waiting on the DataLoader (0..1)
    min_gpu_utilization     fraction of step time the GPU is busy (0..1, gpu.utilization), when measured
    min_samples_per_second  busiest DataLoader's batch size x batches per step / median step
    max_peak_memory_mb      peak GPU memory when the report has it, else host RSS peak (MiB)
    fail_on                 no finding at or above this severity (critical|warning|info)
    fail_on_ids             none of these finding ids

`perfdoctor check` reads them from flags and `[tool.perfdoctor.budgets]`; the pytest plugin from
its marker. A budget on something the report did not measure is an error (exit 2), never a pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PerfdoctorError
from ..model.dataloader import LoaderEntry
from ..model.finding import SEVERITIES
from ..model.report import Report
from .reportfile import REPORT_NAME, LoadedReport

MIB = 2**20


class Unmeasured(PerfdoctorError):
    """A budget names something this report did not measure (exit status 2)."""


@dataclass(frozen=True)
class Measurement:
    value: float
    detail: str = ""  # how it was measured, when that is not obvious


@dataclass(frozen=True)
class Metric:
    """One numeric budget: what it limits, in which direction, and how to read it from a report."""

    field: str  # Budgets field and [tool.perfdoctor.budgets] key: max_step_time_ms
    marker: str  # the pytest marker's keyword: step_time_ms
    what: str  # for people: "median step time"
    unit: str  # "ms", "share" (a fraction shown as %), "MiB", "samples/s"
    upper: bool  # True: the measured value must stay at or below the limit
    measure: Callable[[LoadedReport], Measurement]

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def name(self) -> str:
        return self.field.replace("_", "-")


# --- reading the measured values ------------------------------------------------------------------


def _step_time(loaded: LoadedReport, key: str) -> float:
    time_ms = loaded.report.steps.time_ms
    value = getattr(time_ms, key) if time_ms else None
    if value is None:
        raise Unmeasured(f"{loaded.path} has no step times (steps.time_ms is null: no training step was seen)")
    return float(value)


def _median_step(loaded: LoadedReport) -> Measurement:
    return Measurement(_step_time(loaded, "p50"))


def _p95_step(loaded: LoadedReport) -> Measurement:
    return Measurement(_step_time(loaded, "p95"))


def _dataloader_share(loaded: LoadedReport) -> Measurement:
    breakdown = loaded.report.steps.breakdown
    if breakdown is None:
        raise Unmeasured(f"{loaded.path} has no step breakdown (steps.breakdown is null: no training step was seen)")
    return Measurement(breakdown.dataloader)


def _gpu_utilization(loaded: LoadedReport) -> Measurement:
    gpu = loaded.report.gpu
    if gpu is None:
        raise Unmeasured(f"{loaded.path} measured no GPU (report['gpu'] is null): a GPU utilization budget cannot be checked")
    if gpu.utilization is None:
        raise Unmeasured(f"{loaded.path} has a GPU section without a utilization: a GPU utilization budget cannot be checked")
    return Measurement(gpu.utilization)


def busiest_loader(loaded: LoadedReport) -> LoaderEntry | None:
    return max(loaded.report.dataloader.loaders, key=lambda loader: loader.batches, default=None)


def _samples_per_second(loaded: LoadedReport) -> Measurement:
    loader = busiest_loader(loaded)
    if loader is None:
        raise Unmeasured(f"{loaded.path} saw no DataLoader: samples per second needs its batch size")
    batch_size = loader.args.get("batch_size")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, float)) or not math.isfinite(batch_size) or batch_size <= 0:
        raise Unmeasured(f"{loaded.path}: the DataLoader's batch size is unknown (a custom batch_sampler?): samples per second cannot be checked")
    count = loaded.report.steps.count
    # Gradient accumulation puts several batches into one step.
    per_step = max(1, round(loader.batches / count)) if loader.batches and count else 1
    median = _step_time(loaded, "p50")
    if median <= 0:
        raise Unmeasured(f"{loaded.path}: the median step time is 0: samples per second is undefined")
    detail = f"{batch_size:g} samples/batch x {per_step} batch{'es' if per_step > 1 else ''}/step / median step {median:g} ms"
    return Measurement(batch_size * per_step * 1000 / median, detail)


def samples_per_second(report: Report) -> Measurement | None:
    """Throughput as `min_samples_per_second` measures it (for the report's header); None where
    this report cannot tell it (no DataLoader, an unknown batch size, no step time)."""
    try:
        return _samples_per_second(LoadedReport(path=Path(REPORT_NAME), report=report))
    except Unmeasured:
        return None


def _peak_memory(loaded: LoadedReport) -> Measurement:
    report = loaded.report
    gpu_peak = report.gpu.peak_memory_bytes if report.gpu else None
    if gpu_peak is not None:
        return Measurement(gpu_peak / MIB, "GPU peak")
    host_peak = report.host.rss_peak_bytes if report.host else None
    if host_peak is None:
        duration = report.run.duration_s
        lasted = f"; the run lasted {duration:g} s" if duration is not None else ""
        raise Unmeasured(f"{loaded.path} measured no peak memory (no GPU, and no host sample was taken{lasted})")
    return Measurement(host_peak / MIB, "host RSS peak")


METRICS: tuple[Metric, ...] = (
    Metric("max_step_time_ms", "step_time_ms", "median step time", "ms", True, _median_step),
    Metric("max_p95_step_time_ms", "p95_step_time_ms", "p95 step time", "ms", True, _p95_step),
    Metric("max_dataloader_share", "dataloader_share", "dataloader share of step time", "share", True, _dataloader_share),
    Metric("min_gpu_utilization", "gpu_utilization", "GPU utilization", "share", False, _gpu_utilization),
    Metric("min_samples_per_second", "samples_per_second", "throughput", "samples/s", False, _samples_per_second),
    Metric("max_peak_memory_mb", "peak_memory_mb", "peak memory", "MiB", True, _peak_memory),
)
METRIC_BY_FIELD = {metric.field: metric for metric in METRICS}
SHARE_FIELDS = {metric.field for metric in METRICS if metric.unit == "share"}


# --- the budgets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budgets:
    max_step_time_ms: float | None = None
    max_p95_step_time_ms: float | None = None
    max_dataloader_share: float | None = None
    min_gpu_utilization: float | None = None
    min_samples_per_second: float | None = None
    max_peak_memory_mb: float | None = None
    fail_on: str | None = None  # a severity
    fail_on_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for metric in METRICS:
            limit = getattr(self, metric.field)
            if limit is None:
                continue
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit <= 0:
                raise PerfdoctorError(f"budget {metric.name} must be a number above 0, got {limit!r}")
            if metric.field in SHARE_FIELDS and limit > 1:
                raise PerfdoctorError(f"budget {metric.name} is a fraction of step time (0..1], got {limit!r}")
        if self.fail_on is not None and self.fail_on not in SEVERITIES:
            raise PerfdoctorError(f"fail-on must be one of {', '.join(SEVERITIES)}, got {self.fail_on!r}")
        if isinstance(self.fail_on_ids, str) or not all(isinstance(item, str) and item for item in self.fail_on_ids):
            raise PerfdoctorError(f"fail-on-id must be finding ids (strings), got {self.fail_on_ids!r}")
        object.__setattr__(self, "fail_on_ids", tuple(self.fail_on_ids))

    def is_empty(self) -> bool:
        return self == Budgets()

    def overridden_by(self, other: "Budgets") -> "Budgets":
        """These budgets with every budget that `other` sets taken from it (flags over config)."""
        changes = {f.name: getattr(other, f.name) for f in dataclasses.fields(self) if getattr(other, f.name) not in (None, ())}
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "[tool.perfdoctor.budgets]") -> "Budgets":
        """From a `[tool.perfdoctor.budgets]` table; `max_regression` there is the baseline's business."""
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key == "max_regression":
                continue
            if key not in known:
                raise PerfdoctorError(f"{where}: unknown budget {key!r} (known: {', '.join(sorted(known | {'max_regression'}))})")
            if key == "fail_on_ids":
                if not isinstance(value, list):
                    raise PerfdoctorError(f"{where}: fail_on_ids must be a list of finding ids")
                value = tuple(value)
            values[key] = value
        try:
            return cls(**values)
        except PerfdoctorError as error:
            raise PerfdoctorError(f"{where}: {error}")

    @classmethod
    def from_marker(cls, step_time_ms: float | None = None, p95_step_time_ms: float | None = None,
                    dataloader_share: float | None = None, gpu_utilization: float | None = None,
                    samples_per_second: float | None = None, peak_memory_mb: float | None = None,
                    no_findings: str | None = None, finding_ids: Any = ()) -> "Budgets":
        """The pytest marker's keywords: `perf_budget(step_time_ms=120, no_findings="warning")`."""
        return cls(
            max_step_time_ms=step_time_ms, max_p95_step_time_ms=p95_step_time_ms, max_dataloader_share=dataloader_share,
            min_gpu_utilization=gpu_utilization, min_samples_per_second=samples_per_second,
            max_peak_memory_mb=peak_memory_mb, fail_on=no_findings,
            fail_on_ids=(finding_ids,) if isinstance(finding_ids, str) else tuple(finding_ids or ()),
        )


@dataclass(frozen=True)
class BudgetResult:
    name: str  # max-step-time-ms, fail-on, fail-on-id
    what: str
    ok: bool
    limit: float | str | list[str]
    measured: float | list[str]  # a number, or the offending finding ids
    unit: str = ""
    detail: str = ""
    report: str = ""

    @property
    def upper(self) -> bool:
        metric = METRIC_BY_FIELD.get(self.name.replace("-", "_"))
        return metric.upper if metric else True

    def margin(self) -> tuple[float, float] | None:
        """How far past the limit, absolute and relative to the limit (positive: broken)."""
        if not isinstance(self.measured, (int, float)) or not isinstance(self.limit, (int, float)):
            return None
        over = self.measured - self.limit if self.upper else self.limit - self.measured
        return over, over / self.limit

    def line(self) -> str:
        if isinstance(self.measured, list):
            shown = ", ".join(self.measured) if self.measured else "none"
            limit = ", ".join(self.limit) if isinstance(self.limit, list) else str(self.limit)
            text = f"{self.name} {limit}: {self.what}: {shown}"
            return f"OK    {text}" if self.ok else f"FAIL  {text} [{self.report}]"
        assert isinstance(self.limit, (int, float)), self.limit  # a numeric budget has a numeric limit
        measured, limit = format_value(self.measured, self.unit), format_value(self.limit, self.unit)
        detail = f" ({self.detail})" if self.detail else ""
        if self.ok:
            return f"OK    {self.name}: {self.what} {measured}{detail} {'<=' if self.upper else '>='} {limit}"
        over, relative = self.margin() or (0.0, 0.0)
        word, sign = ("over", "+") if self.upper else ("under", "-")
        return (
            f"FAIL  {self.name}: {self.what} {measured}{detail}, limit {limit}: {word} by "
            f"{format_value(over, self.unit, points=True)} ({sign}{relative:.1%}) [{self.report}]"
        )

    def to_json(self) -> dict[str, Any]:
        margin = self.margin()
        return {
            "budget": self.name,
            "what": self.what,
            "measured": self.measured,
            "limit": self.limit,
            "unit": self.unit,
            "ok": self.ok,
            "over": None if margin is None else round(margin[0], 6),
            "over_relative": None if margin is None else round(margin[1], 6),
            "detail": self.detail,
        }


def format_value(value: float, unit: str, points: bool = False) -> str:
    if unit == "share":
        return f"{value * 100:.1f}{' points' if points else '%'}"
    if unit == "ms":
        return f"{value:.2f} ms" if abs(value) < 100 else f"{value:,.0f} ms"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "samples/s":
        return f"{value:,.1f} samples/s"
    return f"{value:g}"


def _finite(metric: Metric, report: LoadedReport) -> Measurement:
    """The metric measured on this report, which must be a finite number at or above 0: a budget
    never passes on NaN, infinity or a negative time (decoding refuses them; this holds even for a
    report built in memory)."""
    try:
        measured = metric.measure(report)
        value = float(measured.value)
    except OverflowError:
        value = math.inf
    else:
        if math.isfinite(value) and value >= 0:
            return Measurement(value, measured.detail)
    raise Unmeasured(f"{report.path}: the {metric.what} is {value!r}, not a measurement: the {metric.name} budget cannot be checked")


def check_budgets(report: LoadedReport, budgets: Budgets) -> list[BudgetResult]:
    """Every budget that is set, measured on this report. Raises Unmeasured (exit 2) when the
    report did not measure what a budget names."""
    where = str(report.path)
    results: list[BudgetResult] = []
    for metric in METRICS:
        limit = getattr(budgets, metric.field)
        if limit is None:
            continue
        measured = _finite(metric, report)
        ok = measured.value <= limit if metric.upper else measured.value >= limit
        results.append(BudgetResult(metric.name, metric.what, ok, float(limit), measured.value, metric.unit, measured.detail, where))
    if budgets.fail_on is not None:
        worst_allowed = SEVERITIES.index(budgets.fail_on)
        offending = [
            f"{finding.id} ({finding.severity})"
            for finding in report.report.findings
            if SEVERITIES.index(finding.severity) <= worst_allowed
        ]
        results.append(BudgetResult("fail-on", f"findings at or above {budgets.fail_on}", not offending, budgets.fail_on, offending, report=where))
    if budgets.fail_on_ids:
        present = {finding.id for finding in report.report.findings}
        offending = [finding_id for finding_id in budgets.fail_on_ids if finding_id in present]
        results.append(BudgetResult("fail-on-id", "findings present", not offending, list(budgets.fail_on_ids), offending, report=where))
    return results
