"""Host summary from the sampler: CPU use of the process, its workers and every core; memory;
and the job's CPU against other processes' (`contention.py`)."""

from __future__ import annotations

from typing import Any

from ..model.host import HostSummary, HostTimeline
from ..model.numbers import percentile
from .contention import summarize_contention

CORE_BUSY_PERCENT = 90.0  # a core at or above this in a sample counts as busy


def summarize_host(raw: dict[str, Any], affinity: list[int] | None, first_steady_step: int = 1) -> HostSummary | None:
    samples = raw.get("samples") or {}
    times = samples.get("t_ns") or []
    if not times:
        return None
    steps = samples.get("step") or [0] * len(times)
    # Samples from before training got going (imports, model set-up) say nothing about the step.
    chosen = [i for i, step in enumerate(steps) if step >= first_steady_step] or list(range(len(times)))

    def values(name: str) -> list[float]:
        column = samples.get(name) or []
        return [column[i] for i in chosen if i < len(column) and column[i] is not None]

    def mean(name: str) -> float | None:
        picked = values(name)
        return sum(picked) / len(picked) if picked else None

    system = sorted(values("system_cpu"))
    cores = [samples["core_cpu"][i] for i in chosen if i < len(samples.get("core_cpu") or [])]
    saturated = None
    if cores:
        def usable(row: list[float]) -> list[float]:
            picked = [row[c] for c in affinity if c < len(row)] if affinity else row
            return picked or row

        saturated = sum(1 for row in cores if min(usable(row)) >= CORE_BUSY_PERCENT) / len(cores)
    switches = values("ctx_switches_involuntary")
    span_s = (times[chosen[-1]] - times[chosen[0]]) / 1e9 if len(chosen) > 1 else 0.0
    switches_per_s = (switches[-1] - switches[0]) / span_s if len(switches) > 1 and span_s > 0 else None
    rss = values("rss")
    children_rss = values("children_rss")
    threads = values("threads")
    stride = max(1, len(times) // 600)  # the timeline chart needs a few hundred points at most
    usable_cores = len(affinity) if affinity else raw.get("logical_cores")
    contention = summarize_contention(raw, usable_cores, chosen)
    if contention is not None:
        contention.involuntary_switches_per_s = switches_per_s

    def thinned(name: str, scale: float = 1.0) -> list[float | None]:
        column = samples.get(name) or []
        if not any(value is not None for value in column):
            return []
        picked = [column[i] if i < len(column) else None for i in range(0, len(times), stride)]
        return [None if value is None else value * scale for value in picked]

    wait_percent: list[float | None] = []
    if contention is not None and contention.sources.schedstat:
        waits = samples.get("tree_wait_ms") or []
        for i in range(0, len(times), stride):
            dt_ms = (times[i] - times[i - 1]) / 1e6 if i > 0 else 0.0
            value = waits[i] if i < len(waits) else None
            wait_percent.append(round(100 * value / dt_ms, 1) if value is not None and dt_ms > 0 else None)
    return HostSummary(
        samples=len(times),
        interval_s=float(raw.get("interval_s") or 0.0),
        logical_cores=raw.get("logical_cores"),
        usable_cores=usable_cores,
        process_cpu_mean=mean("process_cpu"),
        children_cpu_mean=mean("children_cpu"),
        system_cpu_mean=sum(system) / len(system) if system else None,
        system_cpu_p90=percentile(system, 0.9) if system else None,
        saturated_share=saturated,
        rss_peak_bytes=int(max(rss)) if rss else None,
        children_rss_peak_bytes=int(max(children_rss)) if children_rss else None,
        threads_max=int(max(threads)) if threads else None,
        involuntary_switches_per_s=switches_per_s,
        timeline=HostTimeline(
            t_s=[times[i] / 1e9 for i in range(0, len(times), stride)],
            system_cpu=[samples["system_cpu"][i] for i in range(0, len(times), stride)],
            process_cpu=[samples["process_cpu"][i] for i in range(0, len(times), stride)],
            children_cpu=[samples["children_cpu"][i] for i in range(0, len(times), stride)],
            rss_mb=[samples["rss"][i] / 2**20 for i in range(0, len(times), stride)],
            job_cpu=thinned("tree_cpu"),
            others_cpu=thinned("others_cpu"),
            job_wait=wait_percent,
        ),
        contention=contention,
    )
