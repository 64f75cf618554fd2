"""Was the machine shared, and what did it cost the job? From the host sampler's per-interval
readings (`collect/cpu.py`): the job's process tree's CPU and its threads' waiting for a CPU,
other processes' CPU, cgroup throttling and CPU pressure.

Waiting is split by cause, per sampling interval. The job's threads ask for `demand` cores
(time running plus time runnable but waiting, over the interval); on `capacity` usable cores,
threads beyond the cores would wait even on an empty machine (`demand - capacity`: the job's own
oversubscription). The rest of the waiting is what other processes, or a cgroup quota, took
from the job. The training thread's share of that waiting (its own waiting, times the share of
the tree's waiting that others caused) lengthens the step one for one: it is the measured cost.
For a job with more threads than cores, whose training thread mostly waits for its own threads
at parallel regions, the cost shows instead in the CPU time the job could have used on the
usable cores (`min(demand, capacity)`) that others took (`lost_cpu_share`).
"""

from __future__ import annotations

from typing import Any

from ..model.host import ContentionSources, CpuContention, OtherProcess
from ..model.numbers import percentile

# The one definition of "the machine was shared", read by the contention rule, the console and
# the regression gate: other processes used at least this many cores on average ...
SHARED_MIN_OTHERS_CORES = 0.25
# ... and the job's threads waited for a CPU at least this share of their runnable time because
# of them; or the cgroup's quota throttled the job at least this share of the time.
SHARED_MIN_WAIT_SHARE = 0.03
SHARED_MIN_THROTTLED_SHARE = 0.01


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def contention_sources(meta: dict[str, Any] | None) -> ContentionSources:
    meta = meta or {}
    cgroup = meta.get("cgroup") if isinstance(meta.get("cgroup"), dict) else None
    sources = ContentionSources(
        job_root=meta.get("job_root") if isinstance(meta.get("job_root"), str) else None,
        schedstat=bool(meta.get("schedstat")),
        pressure=bool(meta.get("pressure")),
        cgroup_version=cgroup.get("version") if cgroup else None,
        cgroup_quota_cores=_number(cgroup.get("quota_cores")) if cgroup else None,
        cgroup_throttling=bool(cgroup.get("throttling")) if cgroup else False,
        cgroup_pressure=bool(cgroup.get("pressure")) if cgroup else False,
    )
    if not sources.schedstat:
        sources.missing.append("per-thread run-queue waits (/proc/<pid>/task/*/schedstat: kernel without schedstats)")
    if not sources.pressure:
        sources.missing.append("CPU pressure (/proc/pressure/cpu: kernel without PSI)")
    if sources.cgroup_version is None:
        sources.missing.append("the CPU cgroup (no cpu controller found under /sys/fs/cgroup)")
    elif not sources.cgroup_throttling:
        sources.missing.append("cgroup throttling counters (cpu.stat)")
    return sources


def summarize_contention(raw: dict[str, Any], usable_cores: float | None, chosen: list[int]) -> CpuContention | None:
    """The contention over the samples `chosen` (the training steps'); None for samples taken by
    a perfdoctor that did not read these sources."""
    samples = raw.get("samples") or {}
    times = samples.get("t_ns") or []
    if "tree_cpu" not in samples or not any(v is not None for v in samples.get("tree_cpu") or []):
        return None
    steps = samples.get("step") or [0] * len(times)

    def column(name: str) -> list[Any]:
        values = samples.get(name) or []
        return values + [None] * (len(times) - len(values))

    tree_cpu, others = column("tree_cpu"), column("others_cpu")
    run, wait = column("tree_run_ms"), column("tree_wait_ms")
    main_run, main_wait = column("main_run_ms"), column("main_wait_ms")
    throttled_ms, throttled_periods = column("throttled_ms"), column("throttled_periods")
    pressure, cgroup_pressure = column("pressure_some"), column("cgroup_pressure_some")
    # Intervals inside training: both ends among the chosen samples, and not after the last step
    # ended (the thread probe and the trace export run after it).
    chosen_set = set(chosen)
    last_step = max((i for i in range(1, len(times)) if steps[i] > steps[i - 1]), default=len(times) - 1)
    intervals = [i for i in range(1, len(times)) if i in chosen_set and i - 1 in chosen_set and i <= last_step]
    if not intervals:
        intervals = [i for i in range(1, len(times)) if i <= last_step] or list(range(1, len(times)))
    capacity = float(usable_cores or 1)
    sources = contention_sources(raw.get("cpu_sources"))
    quota = sources.cgroup_quota_cores
    if quota:
        capacity = min(capacity, quota)
    wall_ms = step_count = 0.0
    tree_run = tree_wait = attributed = main_attributed = main_on_cpu = main_any = usable = 0.0
    waits_measured = False
    for i in intervals:
        dt_ms = (times[i] - times[i - 1]) / 1e6
        if dt_ms <= 0:
            continue
        wall_ms += dt_ms
        step_count += max(0, steps[i] - steps[i - 1])
        r, w = _number(run[i]), _number(wait[i])
        if r is None or w is None:
            continue
        waits_measured = True
        tree_run += r
        tree_wait += w
        demand = (r + w) / dt_ms
        own = max(0.0, demand - capacity) * dt_ms
        caused = max(0.0, w - own)
        attributed += caused
        usable += min(demand, capacity) * dt_ms
        main_w, main_r = _number(main_wait[i]) or 0.0, _number(main_run[i]) or 0.0
        main_attributed += main_w * (caused / w if w > 0 else 0.0)
        main_any += main_w
        main_on_cpu += main_r

    def mean_cores(values: list[Any]) -> float | None:
        picked = [v for i in intervals if (v := _number(values[i])) is not None]
        return sum(picked) / len(picked) / 100 if picked else None

    others_picked = sorted(v / 100 for i in intervals if (v := _number(others[i])) is not None)
    throttled = [v for i in intervals if (v := _number(throttled_ms[i])) is not None]
    periods = [int(v) for i in intervals if (v := _number(throttled_periods[i])) is not None]
    result = CpuContention(
        samples=len(intervals),
        interval_s=float(raw.get("interval_s") or 0.0),
        usable_cores=int(usable_cores) if usable_cores else None,
        sources=sources,
        job_cpu_cores=mean_cores(tree_cpu),
        others_cpu_cores=sum(others_picked) / len(others_picked) if others_picked else None,
        others_cpu_p90_cores=percentile(others_picked, 0.9) if others_picked else None,
        throttled_periods=sum(periods) if periods else None,
        throttled_ms=sum(throttled) if throttled else None,
        throttled_share=sum(throttled) / wall_ms if throttled and wall_ms else None,
        top_others=_top_others(column("top_others"), intervals),
    )
    if waits_measured and wall_ms > 0:
        result.job_demand_cores = (tree_run + tree_wait) / wall_ms
        result.wait_share = tree_wait / (tree_run + tree_wait) if tree_run + tree_wait > 0 else 0.0
        result.others_wait_share = attributed / (tree_run + tree_wait) if tree_run + tree_wait > 0 else 0.0
        result.lost_cpu_share = min(1.0, attributed / usable) if usable > 0 else 0.0
        result.main_wait_share = main_attributed / wall_ms
        result.main_cpu_share = main_on_cpu / wall_ms
        if step_count > 0:
            result.wait_ms_per_step = attributed / step_count
            result.main_wait_ms_per_step = main_attributed / step_count
            result.main_wait_any_ms_per_step = main_any / step_count
    picked_pressure = [v for i in intervals if (v := _number(pressure[i])) is not None]
    picked_cgroup = [v for i in intervals if (v := _number(cgroup_pressure[i])) is not None]
    result.pressure_some = sum(picked_pressure) / len(picked_pressure) if picked_pressure else None
    result.cgroup_pressure_some = sum(picked_cgroup) / len(picked_cgroup) if picked_cgroup else None
    result.shared = machine_shared(result)
    return result


def machine_shared(contention: CpuContention | None) -> bool:
    """Other processes, or a quota, measurably took CPU time the job wanted."""
    if contention is None:
        return False
    throttled = (contention.throttled_share or 0.0) >= SHARED_MIN_THROTTLED_SHARE
    others = (contention.others_cpu_cores or 0.0) >= SHARED_MIN_OTHERS_CORES
    waited = max(contention.others_wait_share or 0.0, contention.lost_cpu_share or 0.0) >= SHARED_MIN_WAIT_SHARE
    if contention.others_wait_share is None:  # no schedstats: the others' CPU alone, when it fills the cores
        waited = (contention.others_cpu_cores or 0.0) + (contention.job_cpu_cores or 0.0) >= 0.9 * (contention.usable_cores or 1)
    return throttled or (others and waited)


def _top_others(column: list[Any], intervals: list[int]) -> list[OtherProcess]:
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i in intervals:
        for entry in column[i] or []:
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and _number(entry[1]) is not None:
                totals[entry[0]] = totals.get(entry[0], 0.0) + float(entry[1])
                counts[entry[0]] = counts.get(entry[0], 0) + 1
    ranked = sorted(totals, key=lambda name: -totals[name])[:5]
    n = max(1, len(intervals))
    return [OtherProcess(name=name, cpu_cores=round(totals[name] / n / 100, 3), samples=counts[name]) for name in ranked]


def contention_caveat(contention: CpuContention) -> str:
    """One sentence for a finding whose timings the shared machine may have distorted."""
    parts = []
    if contention.others_cpu_cores is not None:
        parts.append(f"other processes used {contention.others_cpu_cores:.1f} cores")
    if contention.main_wait_share is not None:
        parts.append(f"the training thread waited for a CPU {contention.main_wait_share:.0%} of the time")
    if contention.throttled_share:
        parts.append(f"the cgroup's quota held the job off the CPUs {contention.throttled_share:.0%} of the time")
    measured = ", ".join(parts) or "other processes took CPU time the job wanted"
    return f"The machine was shared while this was measured ({measured}): timings are inflated; confirm on a quiet machine."
