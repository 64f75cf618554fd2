"""The host sampler: a background thread that reads, at a low rate, this process's and its
children's (DataLoader workers') CPU use, memory and threads, every core's system CPU use, the
memory in use against the limit the kernel's OOM killer enforces (`collect/memory.py`), and
the job's CPU against everyone else's: its process tree's CPU, how long its threads waited for a
CPU, other processes' CPU, cgroup throttling and CPU pressure (`collect/cpu.py`).

It runs outside the training step and holds the GIL only for a few psutil calls and small
/proc reads per sample.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..cpu import CpuAccount, job_root
from ..memory import memory_limit, memory_used
from .sampler import Sampler


class HostSampler(Sampler):
    name = "host"
    thread_name = "perfdoctor-host"
    sample_at_stop = True

    def open(self) -> bool:
        import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._children_cpu_s = self._reaped_children_cpu_s()
        self._children_at = time.monotonic()
        psutil.cpu_percent(None, percpu=True)
        limit, self._memory_source = memory_limit()
        ctx = self.ctx
        self._cpu = CpuAccount(job_root(ctx.supervised, ctx.local_world_size), threading.main_thread().native_id or 0)
        self._cpu.prime(ctx.clock.now())
        self.emit({"meta": {
            "interval_s": self.interval_s,
            "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "memory_limit_bytes": limit,
            "memory_limit_source": self._memory_source,
            "cpu_sources": self._cpu.sources(),
        }})
        return True

    def _reaped_children_cpu_s(self) -> float:
        """CPU seconds of children that have exited (DataLoader workers of past epochs).

        Children's CPU is measured as a total (exited + live) whose growth between samples is
        the rate: workers started and stopped between two samples, or first seen in this one,
        are counted in full (a per-process cpu_percent would read 0 for every new worker).
        """
        times = self._process.cpu_times()
        return times.children_user + times.children_system

    def sample(self) -> None:
        import psutil

        process = self._process
        with process.oneshot():
            cpu = process.cpu_percent(None)
            rss = process.memory_info().rss
            threads = process.num_threads()
            switches = process.num_ctx_switches().involuntary
        children_rss, live = 0, 0
        children_cpu_s = self._reaped_children_cpu_s()
        for child in process.children(recursive=True):
            try:
                with child.oneshot():
                    times = child.cpu_times()
                    children_cpu_s += times.user + times.system
                    children_rss += child.memory_info().rss
                live += 1
            except psutil.Error:
                continue
        now = time.monotonic()
        elapsed = max(now - self._children_at, 1e-6)
        children_cpu = max(0.0, 100 * (children_cpu_s - self._children_cpu_s) / elapsed)
        self._children_cpu_s, self._children_at = children_cpu_s, now
        cores = psutil.cpu_percent(None, percpu=True)
        clock = self.ctx.clock
        t_ns = clock.now()
        sample: dict[str, Any] = {
            "t_ns": t_ns,
            "step": clock.step_count,
            "process_cpu": round(cpu, 1),
            "children_cpu": round(children_cpu, 1),
            "children": live,
            "system_cpu": round(sum(cores) / max(1, len(cores)), 1),
            "core_cpu": [round(c, 1) for c in cores],
            "rss": rss,
            "children_rss": children_rss,
            "threads": threads,
            "ctx_switches_involuntary": switches,
            "memory_used_bytes": memory_used(self._memory_source),
            **self._cpu.read(t_ns),
        }
        self.emit({"sample": sample})
