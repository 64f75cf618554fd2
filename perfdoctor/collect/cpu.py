"""What the kernel says about CPU time: who used it, who waited for it, and what the cgroup allows.

The host sampler (`collectors/host.py`) reads these every interval, outside the training step:

- every process's CPU time and parent from `/proc/<pid>/stat` (one scan serves the job's process
  tree, the other processes' use and the names of the busiest ones);
- each of the tree's threads' time on a CPU and time runnable but waiting for one, from
  `/proc/<pid>/task/<tid>/schedstat` (run_ns, wait_ns, timeslices: kernel schedstats);
- the machine's busy time from `/proc/stat`;
- the cgroup's CPU quota and throttling (v2 `cpu.max` and `cpu.stat`; v1 `cpu.cfs_quota_us`,
  `cpu.cfs_period_us` and `cpu.stat`);
- CPU pressure (PSI): `/proc/pressure/cpu`, and the cgroup's `cpu.pressure` (v2).

Every reader returns None (or leaves a source out) where the kernel lacks the file: a missing
source is a fact for the report, never an error. No torch and no psutil here: plain reads of
small files, a few hundred microseconds per sample for a tree of dozens of threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ProcessTimes:
    pid: int
    ppid: int
    name: str  # the kernel's short name (comm): never the command line, which can hold secrets
    cpu_s: float  # user + system time of its own threads
    children_cpu_s: float  # of its children it has waited for (reaped)


def read_process(pid: int) -> ProcessTimes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode(errors="replace")
    except OSError:
        return None
    return parse_stat(pid, text)


def parse_stat(pid: int, text: str) -> ProcessTimes | None:
    """A /proc/<pid>/stat line: the name sits in parentheses and may itself hold spaces or ')'."""
    open_at, close_at = text.find("("), text.rfind(")")
    if open_at < 0 or close_at < 0:
        return None
    fields = text[close_at + 2 :].split()
    try:  # fields[0] is the state (field 3); utime is field 14
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    except (IndexError, ValueError):
        return None
    return ProcessTimes(
        pid=pid, ppid=ppid, name=text[open_at + 1 : close_at],
        cpu_s=(utime + stime) / CLOCK_TICKS, children_cpu_s=(cutime + cstime) / CLOCK_TICKS,
    )


def scan_processes() -> dict[int, ProcessTimes]:
    """Every process this one can see (a container sees its own namespace only)."""
    found: dict[int, ProcessTimes] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if name.isdigit():
            times = read_process(int(name))
            if times is not None:
                found[times.pid] = times
    return found


def descendants(processes: dict[int, ProcessTimes], root: int) -> set[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for times in processes.values():
        children.setdefault(times.ppid, []).append(times.pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo.extend(children.get(pid, ()))
    return tree


def schedstat(path: str) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one) of one thread, or None."""
    try:
        with open(path, "rb") as file:
            fields = file.read().split()
        return int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def thread_schedstats(pid: int) -> dict[int, tuple[int, int]]:
    """Each thread of `pid`: (run ns, wait ns)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        reading = schedstat(f"/proc/{pid}/task/{tid}/schedstat")
        if reading is not None:
            out[int(tid)] = reading
    return out


def schedstats_available() -> bool:
    return schedstat(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat") is not None


def machine_busy_s() -> tuple[float, float] | None:
    """(busy CPU seconds, all CPU seconds) of every core since boot, from /proc/stat."""
    try:
        with open("/proc/stat", "rb") as file:
            line = file.readline().split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in line[1:9])
    except (OSError, ValueError):
        return None
    busy = user + nice + system + irq + softirq + steal
    return busy / CLOCK_TICKS, (busy + idle + iowait) / CLOCK_TICKS


def pressure_some_us(path: Path) -> int | None:
    """The `some total=` of a PSI file: µs in which at least one runnable task waited for a CPU."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("some"):
                for part in line.split():
                    if part.startswith("total="):
                        return int(part[6:])
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class Throttling:
    periods: int  # enforcement periods with runnable tasks
    throttled: int  # of those, periods in which the quota ran out
    throttled_ns: int  # time the cgroup's tasks were held off the CPUs


@dataclass(frozen=True)
class CgroupCpu:
    """The job's CPU cgroup: where it is, its version, and its quota (cores) if any."""

    version: int  # 1 or 2
    path: Path
    quota_cores: float | None

    def throttling(self) -> Throttling | None:
        fields: dict[str, int] = {}
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    fields[key] = int(value)
        except OSError:
            return None
        if "nr_throttled" not in fields:
            return None
        throttled_ns = fields.get("throttled_usec", 0) * 1000 if self.version == 2 else fields.get("throttled_time", 0)
        return Throttling(periods=fields.get("nr_periods", 0), throttled=fields["nr_throttled"], throttled_ns=throttled_ns)

    def pressure_path(self) -> Path | None:
        """The cgroup's own cpu.pressure (v2), unless it is the machine's root (that is /proc's)."""
        path = self.path / "cpu.pressure"
        return path if self.version == 2 and path.exists() else None


def _cgroup_lines() -> list[tuple[str, str, str]]:
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return []
    lines = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            lines.append((parts[0], parts[1], parts[2]))
    return lines


def _in_mount(mount: Path, relative: str, marker: str) -> Path | None:
    """The cgroup's folder under `mount`; in a cgroup namespace the path may not match the
    mount, whose root is then the job's own cgroup."""
    for candidate in (mount / relative.lstrip("/"), mount):
        if (candidate / marker).exists():
            return candidate
    return None


def find_cgroup_cpu() -> CgroupCpu | None:
    """The cgroup whose CPU controller governs this process: v2 (unified, also under
    /sys/fs/cgroup/unified on hybrid hosts) or v1 (`cpu` or `cpu,cpuacct`)."""
    lines = _cgroup_lines()
    for _, controllers, relative in lines:
        if controllers == "" and (CGROUP_ROOT / "cgroup.controllers").exists():
            folder = _in_mount(CGROUP_ROOT, relative, "cpu.stat")
            if folder is not None:
                return CgroupCpu(version=2, path=folder, quota_cores=_v2_quota(folder))
    for _, controllers, relative in lines:
        if "cpu" in controllers.split(","):
            for mount in (CGROUP_ROOT / "cpu", CGROUP_ROOT / "cpu,cpuacct", CGROUP_ROOT / "cpuacct,cpu"):
                folder = _in_mount(mount, relative, "cpu.cfs_quota_us")
                if folder is not None:
                    return CgroupCpu(version=1, path=folder, quota_cores=_v1_quota(folder))
    for _, controllers, relative in lines:  # hybrid hosts: the unified tree beside v1 controllers
        if controllers == "":
            folder = _in_mount(CGROUP_ROOT / "unified", relative, "cpu.stat")
            if folder is not None:
                return CgroupCpu(version=2, path=folder, quota_cores=_v2_quota(folder))
    return None


def _v2_quota(folder: Path) -> float | None:
    try:
        text = (folder / "cpu.max").read_text().split()
        return int(text[0]) / int(text[1]) if text and text[0] != "max" else None
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


SYSTEM_PRESSURE = Path("/proc/pressure/cpu")


TOP_OTHERS = 3  # the busiest other processes named in a sample
OTHERS_NAMED_FROM = 20.0  # ... when the others together use at least this % of one core


@dataclass(frozen=True)
class JobRoot:
    pid: int
    kind: str  # "script", "supervisor" (perfdoctor run's parent process) or "launcher" (torchrun's agent)


def job_root(supervised: bool, local_world_size: int) -> JobRoot:
    """The process whose tree is the job on this machine: the script's process, its supervising
    `perfdoctor run` when there is one, and under torchrun with several local ranks the agent
    that started them all (their common parent), so that sibling ranks count as the job's own."""
    pid = os.getpid()
    parent = read_process(pid)
    if supervised and parent is not None:
        supervisor = read_process(parent.ppid)
        if local_world_size > 1 and supervisor is not None and supervisor.ppid > 1:
            return JobRoot(supervisor.ppid, "launcher")
        return JobRoot(parent.ppid, "supervisor")
    if local_world_size > 1 and parent is not None and parent.ppid > 1:
        return JobRoot(parent.ppid, "launcher")
    return JobRoot(pid, "script")


class CpuAccount:
    """Per sampling interval: the job's CPU and its threads' waiting for a CPU, other processes'
    CPU (and the busiest of them by name), cgroup throttling and CPU pressure.

    Counters are kept per process and per thread, and each interval adds up their growth: a
    process or thread first seen counts from its start (it began in this interval, or the tree
    is read for the first time, which `prime` covers), one gone loses only its last partial
    interval (a reaped worker's CPU reappears in its parent's children time)."""

    def __init__(self, root: JobRoot, main_tid: int) -> None:
        self.root = root
        self.main_tid = main_tid
        self.cgroup = find_cgroup_cpu()
        self.schedstat = schedstats_available()
        self.cgroup_pressure = self.cgroup.pressure_path() if self.cgroup else None
        self.system_pressure = SYSTEM_PRESSURE if pressure_some_us(SYSTEM_PRESSURE) is not None else None
        self._process_cpu: dict[int, float] = {}
        self._threads: dict[int, tuple[int, int]] = {}
        self._machine: tuple[float, float] | None = None
        self._throttling: Throttling | None = None
        self._pressure: tuple[int | None, int | None] = (None, None)
        self._others: dict[int, float] = {}
        self._at_ns = 0

    def sources(self) -> dict[str, object]:
        """What this machine lets the sampler read (the report says what was missing)."""
        cgroup = self.cgroup
        return {
            "job_root": self.root.kind,
            "schedstat": self.schedstat,
            "pressure": str(self.system_pressure) if self.system_pressure else None,
            "cgroup": None if cgroup is None else {
                "version": cgroup.version,
                "quota_cores": None if cgroup.quota_cores is None else round(cgroup.quota_cores, 3),
                "throttling": cgroup.throttling() is not None,
                "pressure": self.cgroup_pressure is not None,
            },
        }

    def prime(self, now_ns: int) -> None:
        self.read(now_ns)

    def read(self, now_ns: int) -> dict[str, object]:
        """The interval since the last call, as one sample's fields."""
        elapsed_s = (now_ns - self._at_ns) / 1e9 if self._at_ns else 0.0
        self._at_ns = now_ns
        processes = scan_processes()
        tree = descendants(processes, self.root.pid)
        if os.getpid() not in tree:  # the root is gone (reparented): at least this process
            tree |= descendants(processes, os.getpid())
        tree_cpu = 0.0
        cpu_now: dict[int, float] = {}
        for pid in tree:
            times = processes.get(pid)
            if times is None:
                continue
            total = times.cpu_s + times.children_cpu_s
            cpu_now[pid] = total
            tree_cpu += total - self._process_cpu.get(pid, 0.0 if self._process_cpu else total)
        self._process_cpu = cpu_now
        out: dict[str, object] = {"tree_processes": len(cpu_now)}
        if self.schedstat:
            out.update(self._waits(tree))
        machine = machine_busy_s()
        if machine is not None and self._machine is not None and elapsed_s > 0:
            busy = machine[0] - self._machine[0]
            out["tree_cpu"] = round(100 * max(0.0, tree_cpu) / elapsed_s, 1)
            out["others_cpu"] = round(100 * max(0.0, busy - max(0.0, tree_cpu)) / elapsed_s, 1)
            if out["others_cpu"] >= OTHERS_NAMED_FROM:  # type: ignore[operator]
                out["top_others"] = self._top_others(processes, tree, elapsed_s)
            else:
                self._remember_others(processes, tree)
        elif elapsed_s > 0:
            out["tree_cpu"] = round(100 * max(0.0, tree_cpu) / elapsed_s, 1)
        else:
            self._remember_others(processes, tree)
        self._machine = machine
        if self.cgroup is not None:
            throttling = self.cgroup.throttling()
            if throttling is not None and self._throttling is not None:
                out["throttled_periods"] = throttling.throttled - self._throttling.throttled
                out["throttled_ms"] = round((throttling.throttled_ns - self._throttling.throttled_ns) / 1e6, 3)
            self._throttling = throttling
        pressure = (
            pressure_some_us(self.system_pressure) if self.system_pressure else None,
            pressure_some_us(self.cgroup_pressure) if self.cgroup_pressure else None,
        )
        if elapsed_s > 0:
            for name, now, before in zip(("pressure_some", "cgroup_pressure_some"), pressure, self._pressure):
                if now is not None and before is not None:
                    out[name] = round(min(1.0, max(0.0, (now - before) / 1e6 / elapsed_s)), 4)
        self._pressure = pressure
        return out

    def _waits(self, tree: set[int]) -> dict[str, object]:
        threads: dict[int, tuple[int, int]] = {}
        for pid in tree:
            threads.update(thread_schedstats(pid))
        primed = bool(self._threads)
        run_ns = wait_ns = 0
        main = (0, 0)
        for tid, (run, wait) in threads.items():
            before = self._threads.get(tid, (0, 0) if primed else (run, wait))
            grown = (max(0, run - before[0]), max(0, wait - before[1]))
            run_ns += grown[0]
            wait_ns += grown[1]
            if tid == self.main_tid:
                main = grown
        self._threads = threads
        return {
            "tree_threads": len(threads),
            "tree_run_ms": round(run_ns / 1e6, 3),
            "tree_wait_ms": round(wait_ns / 1e6, 3),
            "main_run_ms": round(main[0] / 1e6, 3),
            "main_wait_ms": round(main[1] / 1e6, 3),
        }

    def _remember_others(self, processes: dict[int, ProcessTimes], tree: set[int]) -> None:
        self._others = {pid: times.cpu_s for pid, times in processes.items() if pid not in tree}

    def _top_others(self, processes: dict[int, ProcessTimes], tree: set[int], elapsed_s: float) -> list[list[object]]:
        """The busiest other processes in the interval, by name (summed over processes of one
        name): never their arguments."""
        by_name: dict[str, float] = {}
        before = self._others
        for pid, times in processes.items():
            if pid in tree:
                continue
            grown = times.cpu_s - before.get(pid, times.cpu_s if before else 0.0)
            if grown > 0:
                by_name[times.name] = by_name.get(times.name, 0.0) + grown
        self._remember_others(processes, tree)
        top = sorted(by_name.items(), key=lambda item: -item[1])[:TOP_OTHERS]
        return [[name, round(100 * cpu / elapsed_s, 1)] for name, cpu in top]
