"""The report's `host` section: CPU use of the process, its workers and every core; memory; and
the job's CPU against other processes' (`contention`)."""

from __future__ import annotations

import msgspec

from .numbers import Count, NonNegative, Share


class HostTimeline(msgspec.Struct, kw_only=True):
    """Sampled values over the run, a few hundred points at most."""

    t_s: list[float] = msgspec.field(default_factory=list)
    system_cpu: list[float | None] = msgspec.field(default_factory=list)  # percent of all cores
    process_cpu: list[float | None] = msgspec.field(default_factory=list)  # percent of one core
    children_cpu: list[float | None] = msgspec.field(default_factory=list)
    rss_mb: list[float | None] = msgspec.field(default_factory=list)
    job_cpu: list[float | None] = msgspec.field(default_factory=list)  # the job's process tree, percent of one core
    others_cpu: list[float | None] = msgspec.field(default_factory=list)  # every other process, same unit
    job_wait: list[float | None] = msgspec.field(default_factory=list)  # the tree's threads waiting for a CPU, same unit


class OtherProcess(msgspec.Struct, kw_only=True):
    """A competing process, by its short name only (never its arguments)."""

    name: str
    cpu_cores: float  # mean over the samples that named it (cores busy)
    samples: int  # how many samples named it among the busiest


class ContentionSources(msgspec.Struct, kw_only=True):
    """What the kernel let the sampler read; a missing source is said, never guessed at."""

    job_root: str | None = None  # the tree counted as the job: "script", "supervisor" or "launcher"
    schedstat: bool = False  # per-thread run-queue waits (/proc/<pid>/task/*/schedstat)
    pressure: bool = False  # /proc/pressure/cpu
    cgroup_version: int | None = None  # the CPU controller's cgroup version (1 or 2), None: none found
    cgroup_quota_cores: float | None = None
    cgroup_throttling: bool = False  # cpu.stat's throttling counters
    cgroup_pressure: bool = False  # the cgroup's cpu.pressure
    missing: list[str] = msgspec.field(default_factory=list)  # in words


class CpuContention(msgspec.Struct, kw_only=True):
    """The job's CPU against everyone else's over the training steps (host sampler).

    The job is the script's process tree (DataLoader workers included; under torchrun, every
    local rank). Waiting is time a thread was runnable but not on a CPU (kernel schedstats);
    the part other processes (or the cgroup's quota) caused is what remains after the waiting
    the job's own threads would do on their own (their demand beyond the usable cores)."""

    samples: int
    interval_s: float
    usable_cores: int | None
    sources: ContentionSources = msgspec.field(default_factory=ContentionSources)
    job_cpu_cores: float | None = None  # mean CPU of the job's tree, cores busy
    others_cpu_cores: float | None = None  # mean CPU of every other process, cores busy
    others_cpu_p90_cores: float | None = None
    job_demand_cores: float | None = None  # the tree's threads running or runnable, mean (cores)
    wait_share: float | None = None  # the tree's waiting as a share of its runnable time
    others_wait_share: float | None = None  # ... of which others (or the quota) are the cause
    # The CPU time the job's threads could have used on the usable cores (their demand, at most the
    # cores) that others (or the quota) took, as a share of it: unlike the waiting share, not
    # diluted by a job's own oversubscription.
    lost_cpu_share: float | None = None
    wait_ms_per_step: float | None = None  # the tree's threads' waiting caused by others, summed, per step
    main_wait_ms_per_step: float | None = None  # the training thread's waiting caused by others, per step
    main_wait_share: float | None = None  # ... as a share of wall time (of the step)
    main_wait_any_ms_per_step: float | None = None  # the training thread's waiting for a CPU, whatever held it
    main_cpu_share: float | None = None  # the training thread on a CPU, share of wall time
    involuntary_switches_per_s: float | None = None
    throttled_periods: int | None = None  # cgroup quota periods in which the job was throttled
    throttled_ms: float | None = None
    throttled_share: float | None = None  # throttled time as a share of wall time
    pressure_some: float | None = None  # machine PSI: share of time some task waited for a CPU
    cgroup_pressure_some: float | None = None
    top_others: list[OtherProcess] = msgspec.field(default_factory=list)
    shared: bool = False  # other processes (or a quota) measurably took CPU time the job wanted


class HostSummary(msgspec.Struct, kw_only=True):
    samples: Count
    interval_s: NonNegative
    logical_cores: Count | None
    usable_cores: Count | None
    process_cpu_mean: NonNegative | None  # percent of one core (200 = two cores busy)
    children_cpu_mean: NonNegative | None  # DataLoader workers and other children, same unit
    system_cpu_mean: NonNegative | None  # percent of all cores
    system_cpu_p90: NonNegative | None
    saturated_share: Share | None  # share of samples with every usable core >= the busy bar
    rss_peak_bytes: Count | None
    children_rss_peak_bytes: Count | None
    threads_max: Count | None
    involuntary_switches_per_s: float | None
    timeline: HostTimeline = msgspec.field(default_factory=HostTimeline)
    contention: CpuContention | None = None  # None: sampled by a perfdoctor that did not measure it
