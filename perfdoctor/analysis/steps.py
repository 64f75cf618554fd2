"""Step-time statistics and the per-step breakdown, over all steps the step clock recorded.

The statistics describe the steady state: the first step (lazy initialisation, allocator and
cache warm-up) and the steps under the profiler (its overhead inflates them) are left out when
enough other steps remain. The breakdown is time-weighted (each phase's total over the total
step time), so it sums to 1.
"""

from __future__ import annotations

from typing import Any

from ..model.numbers import percentile
from ..model.steps import OTHER_PARTS, PHASES, OtherParts, PhaseValues
from .rundata import StepSeries, StepStats

WARMUP_STEPS = 1
MIN_STEADY_STEPS = 3  # fewer steady steps than this: use what there is, and say so


def series_from_raw(raw_steps: dict[str, Any], profiled_steps: list[int]) -> StepSeries:
    starts = raw_steps.get("start_ns") or []
    ends = raw_steps.get("end_ns") or []
    count = min(len(starts), len(ends))
    profiled = set(profiled_steps)
    series = StepSeries(mode=raw_steps.get("mode"))

    def column(name: str) -> list[int]:
        values = raw_steps.get(name) or []
        return [int(v) for v in values[:count]] + [0] * max(0, count - len(values))

    overhead = column("overhead_ns")
    parts = {part: column(f"{part}_ns") for part in OTHER_PARTS}
    measured = {phase: column(f"{phase}_ns") for phase in PHASES if phase != "other"}
    for i in range(count):
        duration_ns = max(0, int(ends[i]) - int(starts[i]) - overhead[i])
        known: dict[str, float] = {phase: min(values[i], duration_ns) for phase, values in measured.items()}
        known_total = sum(known.values())
        if known_total > duration_ns:  # nested phases (a forward inside next()): scale, never exceed
            scale = duration_ns / known_total
            known = {phase: ns * scale for phase, ns in known.items()}
            known_total = duration_ns
        series.duration_ms.append(duration_ns / 1e6)
        for phase, ns in known.items():
            series.phases_ms[phase].append(ns / 1e6)
        other_ns = duration_ns - known_total
        series.phases_ms["other"].append(other_ns / 1e6)
        budget = other_ns
        for part, values in parts.items():  # the timed parts of "other" never exceed it
            part_ns = min(values[i], budget)
            budget -= part_ns
            series.other_parts_ms[part].append(part_ns / 1e6)
    series.batches = column("batches")
    series.profiled = [i in profiled for i in range(count)]
    return series


def steady_steps(series: StepSeries) -> tuple[list[int], str]:
    """Indices of the steps the statistics use, and a sentence on what was left out."""
    everything = list(range(len(series)))
    after_warmup = everything[WARMUP_STEPS:]
    if len(after_warmup) < MIN_STEADY_STEPS:
        return everything, "too few steps to leave out warm-up: all steps used"
    unprofiled = [i for i in after_warmup if not series.profiled[i]]
    if len(unprofiled) >= MIN_STEADY_STEPS:
        return unprofiled, "first step (warm-up) and profiled steps left out"
    return after_warmup, "first step (warm-up) left out; profiled steps kept (too few others)"


FASTEST_SHARE = 0.1
MIN_STEPS_FOR_FASTEST = 10


def fastest_steps(series: StepSeries) -> list[int]:
    """The tenth of the steady steps that took least time (empty with fewer than 10 steps). On a
    busy machine they are the steps that waited least for a CPU: the nearest this run has to what
    a quiet machine gives, where the mean mixes in every wait."""
    chosen, _ = steady_steps(series)
    if len(chosen) < MIN_STEPS_FOR_FASTEST:
        return []
    return sorted(chosen, key=lambda i: series.duration_ms[i])[: max(1, round(len(chosen) * FASTEST_SHARE))]


def step_stats(series: StepSeries) -> StepStats:
    stats = StepStats(count=len(series), profiled=sum(series.profiled))
    if not len(series):
        stats.excluded = "no step was seen"
        return stats
    chosen, stats.excluded = steady_steps(series)
    durations = sorted(series.duration_ms[i] for i in chosen)
    stats.measured = len(chosen)
    stats.mean_ms = sum(durations) / len(durations)
    stats.p50_ms = percentile(durations, 0.5)
    stats.p95_ms = percentile(durations, 0.95)
    stats.min_ms, stats.max_ms = durations[0], durations[-1]
    total = sum(durations)
    totals = {phase: sum(series.phases_ms[phase][i] for i in chosen) for phase in PHASES}
    if total > 0:
        stats.breakdown = PhaseValues.from_dict({phase: totals[phase] / total for phase in PHASES})
        stats.other_parts = OtherParts(
            **{part: sum(series.other_parts_ms[part][i] for i in chosen) / total for part in OTHER_PARTS}
        )
    stats.breakdown_ms = PhaseValues.from_dict({phase: totals[phase] / len(chosen) for phase in PHASES})
    return stats
