"""Memory at step ends: the resident memory of this process and of its children (DataLoader
workers), and, once the script uses CUDA, what torch's caching allocator holds on the current
device (allocated, reserved, the peaks since the previous sample, allocation retries).

Cheap by construction. A sample is taken at a step end (a step listener: never inside the step),
and only when enough time has passed since the last one for its cost to stay under
BUDGET_SHARE of the run: each sample's cost is timed, and the next one waits cost / BUDGET_SHARE
(and never less than the run's age / MAX_SAMPLES, so a job running for days keeps a bounded
stream). A short run would get too few samples to fit a trend (a sample's cost triples on a busy
machine, and a 1.3 s run got 11), so the wait is also never more than the training's age (from the
first step's end) / SAMPLES_PER_AGE: about 14 samples per doubling of that age, whatever the
budget. That floor outspends the budget only in the training's first second or so, by a few ms.

On Linux a sample is one pread() of /proc/<pid>/statm per process, on descriptors kept open; the
list of children is refreshed by a background thread soon after each fork (DataLoader workers
starting) and every CHILDREN_EVERY_S (finding them means scanning /proc: not a step's work). The
allocator's counters are host-side and never synchronise with the device. What a sample costs is
charged to perfdoctor (`clock.add_overhead`).

Streamed as `memory`: `meta` (page size, the host limit), `cuda` (the device and its total, when
CUDA is first seen), `samples` (columns, in step order), `oom` (an out-of-memory error raised in
the script: where and with what held), `error`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from time import perf_counter_ns
from typing import Any

from ..memory import memory_limit
from ..oom import oom_kind, short_message, where_it_failed
from ..signals import keep_signals_off_this_thread
from .base import Collector, CollectorContext

BUDGET_SHARE = 0.002  # samples cost at most this share of the run's time
MAX_SAMPLES = 20_000  # the gap between samples is at least the run's age / this
SAMPLES_PER_AGE = 20.0  # ... and at most the run's age / this, so that short runs get enough samples for a trend
CHILDREN_EVERY_S = 5.0  # the list of children is refreshed this often, and soon after every fork
AFTER_FORK_S = 0.2  # after a fork, wait this long before looking (a worker may start its own children)
RESTART: tuple[int, ...] = ()  # in the sample queue: what came before was the folded batch-steps'
COLUMNS = (
    "step", "t_ns", "rss", "children_rss", "children",
    "cuda_allocated", "cuda_reserved", "cuda_peak_allocated", "cuda_peak_reserved", "cuda_alloc_retries",
    "cuda_inactive_split",
)


_forked = threading.Event()  # set in this process after each fork (a DataLoader worker starting)
_fork_hook_lock = threading.Lock()
_fork_hook = False


def _watch_forks() -> None:
    """Once per process: note every fork, so the list of children is refreshed when it changes
    instead of scanning every process on the machine often (psutil's way of finding children)."""
    global _fork_hook
    with _fork_hook_lock:
        if not _fork_hook and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_parent=_forked.set)
            _fork_hook = True


class _Statm:
    """A process's resident memory, read from an open /proc/<pid>/statm (Linux), else psutil."""

    def __init__(self, pid: int, page_size: int) -> None:
        self.pid = pid
        self.page_size = page_size
        self.closed = False
        self.fd: int | None = None
        try:
            self.fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            import psutil

            self._process = psutil.Process(pid)

    def rss(self) -> int | None:
        if self.closed:
            return None
        if self.fd is not None:
            try:
                return int(os.pread(self.fd, 128, 0).split()[1]) * self.page_size
            except (OSError, IndexError, ValueError):  # the process is gone
                return None
        try:
            return int(self._process.memory_info().rss)
        except Exception:
            return None

    def close(self) -> None:
        self.closed = True
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class _Cuda:
    """The caching allocator's counters on the current device."""

    def __init__(self, torch: Any) -> None:
        from ..cuda_peaks import peak_shadow

        self.torch = torch
        self.device = int(torch.cuda.current_device())
        self.shadow = peak_shadow(torch._C)
        properties = torch.cuda.get_device_properties(self.device)
        self.total = int(properties.total_memory)
        try:
            fraction = float(torch.cuda.get_per_process_memory_fraction(self.device))
        except Exception:
            fraction = 1.0
        self.info = {
            "device": self.device,
            "name": str(properties.name),
            "total_bytes": self.total,
            "memory_fraction": fraction,
            "limit_bytes": int(self.total * fraction) if fraction < 1.0 else self.total,
            "peaks_per_window": self.shadow is not None,
            "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        }

    def read(self) -> tuple[int, int, int, int, int, int]:
        if self.shadow is not None:
            stats = self.shadow.window(self.device)
        else:
            stats = self.torch.cuda.memory_stats_as_nested_dict(self.device)

        def stat(name: str, field: str) -> int:
            try:
                return int(stats[name]["all"][field])
            except (KeyError, TypeError, ValueError):
                return -1

        return (
            stat("allocated_bytes", "current"),
            stat("reserved_bytes", "current"),
            stat("allocated_bytes", "peak"),
            stat("reserved_bytes", "peak"),
            int(stats.get("num_alloc_retries", -1)),
            stat("inactive_split_bytes", "current"),
        )

    def snapshot(self) -> dict[str, Any]:
        """What the allocator holds now, and the summary the script would print itself."""
        torch = self.torch
        out: dict[str, Any] = {"device": self.device, "total_bytes": self.total}
        try:
            out["allocated_bytes"] = int(torch.cuda.memory_allocated(self.device))
            out["reserved_bytes"] = int(torch.cuda.memory_reserved(self.device))
            out["peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated(self.device))  # since the script's last reset
            out["peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved(self.device))
            stats = torch.cuda.memory_stats(self.device)
            out["alloc_retries"] = int(stats.get("num_alloc_retries", 0))
            out["ooms"] = int(stats.get("num_ooms", 0))
            out["summary"] = torch.cuda.memory_summary(self.device)
        except Exception as error:  # a broken context after the error: keep what was read
            out["summary_error"] = f"{type(error).__name__}: {error}"
        return out


class MemoryCollector(Collector):
    name = "memory"

    def __init__(self, budget_share: float = BUDGET_SHARE, samples_per_age: float = SAMPLES_PER_AGE) -> None:
        self.budget_share = budget_share
        self.samples_per_age = samples_per_age
        self._ctx: CollectorContext | None = None
        self._samples: deque[tuple[int, ...]] = deque()
        self._taken = 0
        self._next_ns = 0
        self._costs: deque[int] = deque(maxlen=15)
        self._origin_ns = 0
        self._first_step_ns = 0
        self._page_size = 4096
        self._main: _Statm | None = None
        self._children: tuple[_Statm, ...] = ()
        self._retired: list[_Statm] = []
        self._torch: Any = None
        self._cuda: _Cuda | None = None
        self._cuda_failed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = os.getpid()
        self._last_index = -1
        self._cost_total_ns = 0
        self.samples = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, ctx: CollectorContext) -> None:
        self._ctx = ctx
        try:
            self._page_size = os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
        self._main = _Statm(os.getpid(), self._page_size)
        limit, source = memory_limit()
        stream = ctx.stream(self.name)
        stream.emit({"meta": {
            "limit_bytes": limit, "limit_source": source, "budget_share": self.budget_share,
            "samples_per_age": self.samples_per_age, "pid": os.getpid(),
        }})
        stream.add_source(self._drain)
        self._origin_ns = perf_counter_ns()
        self._torch = sys.modules.get("torch")
        _watch_forks()
        self._refresh_children()
        self._thread = threading.Thread(target=self._watch_children, name="perfdoctor-memory", daemon=True)
        self._thread.start()
        ctx.clock.add_listener(self._on_step_end)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        # No last sample here: the script has returned, and what it held is already freed.
        if self._ctx is not None and os.getpid() == self._owner:
            self._ctx.stream(self.name).emit({"cost": {"ns": self._cost_total_ns, "samples": self.samples}})
        for statm in (*self._children, *self._retired, *([self._main] if self._main else [])):
            statm.close()
        self._children, self._retired = (), []

    # -- at step ends ----------------------------------------------------------------------------

    def _on_step_end(self, index: int) -> None:
        if self._stop.is_set():
            return
        if index < self._last_index:  # the batch-steps before the first optimizer step were folded into one
            self._samples.append(RESTART)
        self._last_index = index
        now = perf_counter_ns()
        if not self._first_step_ns:
            self._first_step_ns = now
        if now < self._next_ns:
            return
        self._sample(index + 1, now)  # memory after `index + 1` steps have ended
        cost = perf_counter_ns() - now
        self._cost_total_ns += cost
        # The typical cost of the recent samples: one that a busy machine preempted must not stall sampling.
        self._costs.append(cost)
        typical = sorted(self._costs)[len(self._costs) // 2]
        gap = typical / self.budget_share
        if self.samples_per_age > 0:  # the training's age: imports and set-up before the first step are not steps
            gap = min(gap, (now - self._first_step_ns) / self.samples_per_age)
        gap = max(gap, (now - self._origin_ns) / MAX_SAMPLES)
        self._next_ns = now + int(gap)
        assert self._ctx is not None
        self._ctx.clock.add_overhead(cost)

    def _sample(self, steps_done: int, now: int | None = None) -> None:
        assert self._ctx is not None and self._main is not None
        clock = self._ctx.clock
        rss = self._main.rss() or -1
        children = self._children
        children_rss = 0
        live = 0
        for child in children:
            value = child.rss()
            if value is not None:
                children_rss += value
                live += 1
        cuda = self._read_cuda()
        self._samples.append((steps_done, clock.now() if now is None else now - clock.origin_ns, rss, children_rss, live, *cuda))
        self.samples += 1

    def _read_cuda(self) -> tuple[int, ...]:
        if self._cuda is None:
            torch = self._torch or sys.modules.get("torch")
            self._torch = torch
            if self._cuda_failed or torch is None or not torch.cuda.is_initialized():
                return (-1,) * 6
            try:
                self._cuda = _Cuda(torch)
            except Exception as error:
                self._cuda_failed = True
                self._error(f"CUDA allocator statistics: {type(error).__name__}: {error}")
                return (-1,) * 6
            assert self._ctx is not None
            self._ctx.stream(self.name).emit({"cuda": self._cuda.info})
        try:
            return self._cuda.read()
        except Exception as error:
            self._cuda, self._cuda_failed = None, True
            self._error(f"CUDA allocator statistics: {type(error).__name__}: {error}")
            return (-1,) * 6

    def _drain(self) -> list[dict[str, Any]]:
        """The writer thread's pull: the samples since the last one, as columns."""
        records: list[dict[str, Any]] = []
        rows: list[tuple[int, ...]] = []
        while True:
            try:
                row = self._samples.popleft()
            except IndexError:
                break
            if row is RESTART:
                records += self._chunk(rows)
                records.append({"restart": {}})
                rows, self._taken = [], 0
            else:
                rows.append(row)
        return records + self._chunk(rows)

    def _chunk(self, rows: list[tuple[int, ...]]) -> list[dict[str, Any]]:
        if not rows:
            return []
        first, self._taken = self._taken, self._taken + len(rows)
        columns = {name: [None if row[i] == -1 else row[i] for row in rows] for i, name in enumerate(COLUMNS)}
        if all(value is None for value in columns["cuda_allocated"]):
            columns = {name: values for name, values in columns.items() if not name.startswith("cuda_")}
        return [{"samples": {"first": first, **columns}}]

    def _error(self, message: str) -> None:
        if self._ctx is not None:
            self._ctx.stream(self.name).emit({"error": message})

    # -- children --------------------------------------------------------------------------------

    def _watch_children(self) -> None:
        keep_signals_off_this_thread()
        last = time.monotonic()
        while not self._stop.is_set():
            forked = _forked.wait(0.25)
            if not forked and time.monotonic() - last < CHILDREN_EVERY_S:
                continue
            if forked and self._stop.wait(AFTER_FORK_S):
                break
            _forked.clear()
            last = time.monotonic()
            try:
                self._refresh_children()
            except Exception as error:  # psutil on a vanishing process: try again next time
                self._error(f"children: {type(error).__name__}: {error}")

    def _refresh_children(self) -> None:
        # Descriptors retired a refresh ago are closed now: a step-end read that held one has long finished.
        for statm in self._retired:
            statm.close()
        pids = child_pids(self._owner)
        current = {statm.pid: statm for statm in self._children}
        kept = tuple(current[pid] for pid in sorted(pids) if pid in current)
        added = []
        for pid in sorted(pids - current.keys()):
            try:
                added.append(_Statm(pid, self._page_size))
            except Exception:  # it exited meanwhile
                continue
        self._retired = [statm for pid, statm in current.items() if pid not in pids]
        self._children = kept + tuple(added)  # one assignment: a reader sees the old or the new tuple

    # -- an out-of-memory error ------------------------------------------------------------------

    def script_raised(self, error: BaseException) -> None:
        """The script's call raised `error` (its frames still alive): an out-of-memory error is
        recorded with where it happened and what the allocator held."""
        kind = oom_kind(error)
        if kind is None or self._ctx is None:
            return
        record: dict[str, Any] = {
            "kind": kind,
            "step": self._ctx.clock.step_count,  # the step in progress (0-based)
            "t_ns": self._ctx.clock.now(),
            "error_type": type(error).__name__,
            "message": short_message(error),
            **where_it_failed(error.__traceback__),
        }
        if self._main is not None:
            record["rss_bytes"] = self._main.rss()
        torch = self._torch or sys.modules.get("torch")
        if kind == "cuda" and torch is not None:
            try:
                cuda = self._cuda or _Cuda(torch)
                record["cuda"] = cuda.snapshot()
            except Exception as failure:
                record["cuda"] = {"summary_error": f"{type(failure).__name__}: {failure}"}
        self._ctx.stream(self.name).emit({"oom": record})


def child_pids(pid: int) -> set[int]:
    """Every descendant of `pid`: from /proc/<pid>/task/*/children where the kernel has them
    (a few small reads), else psutil (which scans every process)."""
    from pathlib import Path

    tasks = list(Path(f"/proc/{pid}/task").glob("*/children"))
    if not tasks:
        import psutil

        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    found: set[int] = set()
    pending = [pid]
    while pending and len(found) < 4096:
        parent = pending.pop()
        for path in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                for word in path.read_text().split():
                    if int(word) not in found:
                        found.add(int(word))
                        pending.append(int(word))
            except (OSError, ValueError):
                continue
    return found
