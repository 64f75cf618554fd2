"""The `memory` section: what the memory collector sampled at step ends, the limits, the trend of
each series (analysis/trend.py), how long until the limit at the rate measured, an out-of-memory
end, and (merged later, ranks.py) each rank's memory.

Time to the limit is projected from where this run ended: headroom (the limit less what was in
use at the last sample) over the growth rate, at this run's pace in wall time per step (pauses
for evaluation or checkpoints included). For the host, "in use" is the cgroup's working set, or
the machine's memory in use, from the host sampler (other processes' memory counts against the
same RAM); for a GPU, what the caching allocator has reserved (it can grow only into the rest of
the device, or of the share `set_per_process_memory_fraction` allows).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ..model.memory import (
    ExpectedLength, GpuAllocator, MemorySection, MemorySeries, MemoryTrend, OomEvent, RankMemory, TrendSubject,
)
from ..model.run import RunInfo
from .rundata import LoaderSummary, StepSeries
from .trend import Trend, TrendLimits, fit_trend

MAX_SERIES_POINTS = 600
MIB = 2**20

STEP_FLAGS = (
    "--max-steps", "--max_steps", "--steps", "--num-steps", "--num_steps", "--total-steps", "--total_steps",
    "--train-steps", "--train_steps", "--iters", "--iterations", "--max-iters", "--max_iters", "--num-iterations",
)
EPOCH_FLAGS = (
    "--epochs", "--num-epochs", "--num_epochs", "--max-epochs", "--max_epochs", "--n-epochs", "--n_epochs",
    "--num-train-epochs", "--num_train_epochs", "--train-epochs",
)


def first_steady_step(series: StepSeries) -> int:
    """The first sample (in steps done) that says anything about the steady state: after the first
    step, and after a profiled window early in the run (the profiler holds memory while it records)."""
    profiled = [i for i, flag in enumerate(series.profiled) if flag]
    if profiled and max(profiled) < len(series) / 2:
        return max(profiled) + 2
    return 2


def _column(samples: dict[str, Any], name: str) -> list[Any]:
    return list(samples.get(name) or [])


def _peak(values: list[Any]) -> int | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return int(max(numbers)) if numbers else None


def _last(values: list[Any]) -> Any:
    return next((v for v in reversed(values) if v is not None), None)


def in_use_at(host_raw: dict[str, Any], t_ns: int | None) -> int | None:
    """Memory in use against the limit (the host sampler's) at the last host sample up to `t_ns`:
    the run's last step-end sample, not the sample taken after the script returned (what it held
    may be freed by then)."""
    samples = host_raw.get("samples") or {}
    used, times = samples.get("memory_used_bytes") or [], samples.get("t_ns") or []
    pairs = [(t, u) for t, u in zip(times, used) if t is not None and u is not None]
    if not pairs:
        return _last(used)
    before = [u for t, u in pairs if t_ns is None or t <= t_ns]
    return before[-1] if before else pairs[0][1]


def seconds_per_step(steps: list[Any], times: list[Any], trend: Trend | None) -> float | None:
    """Wall seconds per step over the fitted window (else the whole run)."""
    pairs = [(s, t) for s, t in zip(steps, times) if s is not None and t is not None]
    if trend is not None:
        window = [(s, t) for s, t in pairs if trend.from_step <= s <= trend.to_step]
        pairs = window if len(window) >= 2 else pairs
    if len(pairs) < 2 or pairs[-1][0] == pairs[0][0]:
        return None
    return (pairs[-1][1] - pairs[0][1]) / 1e9 / (pairs[-1][0] - pairs[0][0])


def expected_length(run: RunInfo, loaders: list[LoaderSummary], series: StepSeries) -> ExpectedLength | None:
    """How many steps the job means to run, when its own arguments say so: a step count, or a
    number of epochs times the training DataLoader's batches per epoch (its dataset's length over
    its batch size) over the batches per step. perfdoctor's own --max-steps is not the job's length."""
    argv = list(run.argv)  # the script's own arguments (argv[0] is not in it)

    def value_of(flags: tuple[str, ...]) -> tuple[str, int] | None:
        for i, word in enumerate(argv):
            name, equals, inline = word.partition("=")
            if name in flags:
                text = inline if equals else (argv[i + 1] if i + 1 < len(argv) else "")
                if re.fullmatch(r"\d+", text or ""):
                    return name, int(text)
        return None

    found = value_of(STEP_FLAGS)
    if found and found[1] > 0:
        return ExpectedLength(steps=found[1], source=f"the script's {found[0]} {found[1]}")
    found = value_of(EPOCH_FLAGS)
    if not found or found[1] <= 0 or not loaders:
        return None
    loader = max(loaders, key=lambda item: item.batches)
    length, batch = loader.dataset.get("length"), loader.batch_size
    if not isinstance(length, int) or not batch:
        return None
    drop_last = bool(loader.args.get("drop_last"))
    per_epoch = length // batch if drop_last else -(-length // batch)
    batches = sorted(b for b in series.batches if b > 0)
    per_step = batches[len(batches) // 2] if batches else 1
    steps = found[1] * per_epoch // max(1, per_step)
    if steps <= 0:
        return None
    per = f" / {per_step} batches per step" if per_step > 1 else ""
    return ExpectedLength(steps=steps, source=f"the script's {found[0]} {found[1]} x {per_epoch} batches per epoch{per}")


def _trend(
    subject: TrendSubject, steps: list[Any], values: list[Any], first: int, limit: int | None, used: int | None,
    step_s: float | None, limits: TrendLimits,
) -> tuple[MemoryTrend, Trend] | None:
    trend = fit_trend(steps, values, first, limits)
    if trend is None:
        return None
    fit = trend.fit
    rate = trend.rate
    per_hour = rate * 3600 / step_s if step_s else None
    headroom = max(0, limit - used) if limit is not None and used is not None else None
    seconds = steps_left = None
    if trend.growing and headroom is not None and rate > 0:
        steps_left = headroom / rate
        seconds = steps_left * step_s if step_s else None
    last_step = max((s for s in steps if s is not None), default=trend.to_step)
    return MemoryTrend(
        subject=subject,
        from_step=trend.from_step,
        to_step=trend.to_step,
        points=trend.points,
        bytes_per_step=round(fit.slope, 1),
        bytes_per_step_low=round(fit.low, 1),
        bytes_per_step_high=round(fit.high, 1),
        late_bytes_per_step=None if trend.late_slope is None else round(trend.late_slope, 1),
        projected_bytes_per_step=round(rate, 1),
        bytes_per_hour=None if per_hour is None else round(per_hour),
        growth_bytes=round(trend.growth),
        noise_bytes=round(trend.noise),
        drawdown_bytes=round(trend.drawdown),
        level_bytes=round(trend.level),
        fitted_end_bytes=round(fit.intercept + fit.slope * trend.to_step),
        growing=trend.growing,
        reason=trend.reason,
        limit_bytes=limit,
        headroom_bytes=headroom,
        seconds_to_limit=None if seconds is None else round(seconds, 1),
        limit_at_step=None if steps_left is None else int(last_step + steps_left),
    ), trend


def _gpu(raw: dict[str, Any], samples: dict[str, Any]) -> GpuAllocator | None:
    cuda = raw.get("cuda")
    if not isinstance(cuda, dict) or not cuda.get("total_bytes"):
        return None
    allocated, reserved = _column(samples, "cuda_allocated"), _column(samples, "cuda_reserved")
    peak_allocated = _peak(_column(samples, "cuda_peak_allocated")) or _peak(allocated)
    peak_reserved = _peak(_column(samples, "cuda_peak_reserved")) or _peak(reserved)
    unused = None
    pairs = [(r, a) for r, a in zip(reserved, allocated) if r is not None and a is not None]
    if pairs:
        r, a = max(pairs)
        unused = max(0, r - a)
    retries = _peak(_column(samples, "cuda_alloc_retries"))
    conf = cuda.get("alloc_conf")
    total = int(cuda["total_bytes"])
    return GpuAllocator(
        device=int(cuda.get("device") or 0),
        name=cuda.get("name"),
        total_bytes=total,
        limit_bytes=int(cuda.get("limit_bytes") or total),
        peak_allocated_bytes=peak_allocated,
        peak_reserved_bytes=peak_reserved,
        allocated_bytes=_last(allocated),
        reserved_bytes=_last(reserved),
        reserved_unused_bytes=unused,
        inactive_split_peak_bytes=_peak(_column(samples, "cuda_inactive_split")),
        alloc_retries=retries,
        alloc_conf=conf,
        expandable_segments=bool(conf and "expandable_segments:true" in conf.replace(" ", "").lower()),
        peaks_per_window=bool(cuda.get("peaks_per_window")),
    )


def _thin(values: list[Any], picked: range, scale: float = 1.0) -> list[Any]:
    return [round(values[i] / scale, 2) if i < len(values) and values[i] is not None else None for i in picked]


def _series(samples: dict[str, Any], gpu: bool) -> MemorySeries:
    steps = _column(samples, "step")
    n = len(steps)
    stride = max(1, -(-n // MAX_SERIES_POINTS))
    picked = range(0, n, stride)
    times = _column(samples, "t_ns")
    series = MemorySeries(
        step=[int(steps[i]) if steps[i] is not None else -1 for i in picked],
        t_s=[round(times[i] / 1e9, 3) if i < len(times) and times[i] is not None else 0.0 for i in picked],
        process_rss_mb=_thin(_column(samples, "rss"), picked, MIB),
        workers_rss_mb=_thin(_column(samples, "children_rss"), picked, MIB),
    )
    if gpu:
        series.gpu_allocated_mb = _thin(_column(samples, "cuda_allocated"), picked, MIB)
        series.gpu_reserved_mb = _thin(_column(samples, "cuda_reserved"), picked, MIB)
        # Thinned: the largest peak of the samples each point stands for.
        peaks = _column(samples, "cuda_peak_allocated")
        series.gpu_peak_allocated_mb = [
            round(max(v for v in values) / MIB, 2) if values else None
            for i in picked
            for values in [[v for v in peaks[i : i + stride] if v is not None]]
        ]
    return series


def oom_from_raw(raw: dict[str, Any]) -> OomEvent | None:
    """An out-of-memory error the script raised, as the memory collector recorded it."""
    oom = raw.get("oom")
    if not isinstance(oom, dict):
        return None
    found = oom.get("cuda")
    cuda: dict[str, Any] = found if isinstance(found, dict) else {}
    try:
        return msgspec.convert({
            "kind": oom.get("kind") if oom.get("kind") in ("cuda", "host") else "host",
            "step": oom.get("step"), "phase": oom.get("phase"), "module_type": oom.get("module_type"),
            "module_path": oom.get("module_path"), "source": oom.get("source"), "error_type": oom.get("error_type"),
            "message": oom.get("message"), "rss_bytes": oom.get("rss_bytes"),
            "allocated_bytes": cuda.get("allocated_bytes"), "reserved_bytes": cuda.get("reserved_bytes"),
            "peak_allocated_bytes": cuda.get("peak_allocated_bytes"), "peak_reserved_bytes": cuda.get("peak_reserved_bytes"),
            "total_bytes": cuda.get("total_bytes"), "alloc_retries": cuda.get("alloc_retries"),
            "summary": cuda.get("summary"),
        }, OomEvent)
    except msgspec.ValidationError:
        return None


def killed_oom(run_raw: dict[str, Any], steps_done: int) -> OomEvent | None:
    """The kernel's OOM killer, as the supervisor judged it (`oom` in its outcome record)."""
    judged = run_raw.get("oom")
    if not isinstance(judged, dict) or run_raw.get("status") != "killed":
        return None
    return OomEvent(
        kind="host_killed", step=steps_done, phase=None,
        error_type=str((run_raw.get("error") or {}).get("type") or "SIGKILL"),
        message=str((run_raw.get("error") or {}).get("message") or ""),
        used_bytes=judged.get("used_bytes"), limit_bytes=judged.get("limit_bytes"),
        limit_source=judged.get("source"), oom_kills=judged.get("oom_kills"),
    )


def memory_section(
    raw: dict[str, Any],
    host_raw: dict[str, Any],
    run: RunInfo,
    run_raw: dict[str, Any],
    series: StepSeries,
    loaders: list[LoaderSummary],
    limits: TrendLimits = TrendLimits(),
) -> MemorySection | None:
    samples = raw.get("samples") or {}
    steps = _column(samples, "step")
    oom = oom_from_raw(raw) or killed_oom(run_raw, len(series))
    if not steps and oom is None:
        return None
    meta = raw.get("meta") or {}
    times = _column(samples, "t_ns")
    first = first_steady_step(series)
    limit = meta.get("limit_bytes") if meta.get("limit_bytes") is not None else host_raw.get("memory_limit_bytes")
    source = meta.get("limit_source") or host_raw.get("memory_limit_source")
    used_now = in_use_at(host_raw, _last(times))
    rss, workers = _column(samples, "rss"), _column(samples, "children_rss")
    gpu = _gpu(raw, samples)

    process = fit_trend(steps, rss, first, limits)
    step_s = seconds_per_step(steps, times, process)
    trends: list[MemoryTrend] = []
    # Host series count against the machine's (or cgroup's) memory in use; without that, their own level.
    host_used = used_now if used_now is not None else (_last(rss) or 0) + (_last(workers) or 0)
    candidates: list[tuple[TrendSubject, list[Any], int | None, int | None]] = [
        ("host_process", rss, limit, host_used),
    ]
    counts = [c for c in _column(samples, "children") if c is not None]
    if counts and sum(1 for c in counts if c > 0) >= len(counts) / 2:
        candidates.append(("host_workers", workers, limit, host_used))
    if gpu is not None:
        gpu_used = gpu.reserved_bytes if gpu.reserved_bytes is not None else _last(_column(samples, "cuda_allocated"))
        candidates.append(("gpu_allocated", _column(samples, "cuda_allocated"), gpu.limit_bytes, gpu_used))
        candidates.append(("gpu_reserved", _column(samples, "cuda_reserved"), gpu.limit_bytes, gpu_used))
    for subject, values, cap, used in candidates:
        fitted = _trend(subject, steps, values, first, cap, used, step_s, limits)
        if fitted is not None:
            trends.append(fitted[0])
    recorded = raw.get("cost")
    cost: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    duration = run.duration_s
    return MemorySection(
        samples=len(steps),
        sample_cost_share=round(cost["ns"] / 1e9 / duration, 6) if cost.get("ns") is not None and duration else None,
        host_limit_bytes=limit,
        host_limit_source=source if source in ("cgroup", "ram") else None,
        host_used_bytes=used_now,
        process_rss_peak_bytes=_peak(rss),
        workers_rss_peak_bytes=_peak(workers) if any(counts) else None,
        seconds_per_step=None if step_s is None else round(step_s, 6),
        gpu=gpu,
        trends=trends,
        expected=expected_length(run, loaders, series),
        oom=oom,
        series=_series(samples, gpu is not None),
    )


def rank_memory(section: MemorySection | None, rank: int | None) -> RankMemory | None:
    """What a rank's summary carries of its memory, for the job's table."""
    if section is None:
        return None
    process, allocated = section.trend("host_process"), section.trend("gpu_allocated")
    gpu = section.gpu
    return RankMemory(
        rank=rank,
        host_rss_peak_bytes=section.process_rss_peak_bytes,
        gpu_peak_allocated_bytes=gpu.peak_allocated_bytes if gpu else None,
        gpu_peak_reserved_bytes=gpu.peak_reserved_bytes if gpu else None,
        gpu_limit_bytes=gpu.limit_bytes if gpu else None,
        host_bytes_per_step=process.bytes_per_step if process else None,
        gpu_bytes_per_step=allocated.bytes_per_step if allocated else None,
    )
