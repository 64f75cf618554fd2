"""The DataLoader probe: each loader's arguments, the main process's wait for every batch, and
each epoch's first-batch latency (worker start-up included).

It wraps three methods of torch's DataLoader classes for the whole process: `__init__` (to read
the arguments), `__iter__` (an epoch starts) and the iterator's `__next__` (a batch is waited
for). No change to the user's code; inside the step it costs two clock reads per batch.

What it knows about each loader and iterator is kept in this probe's own weak dictionaries,
never on the user's objects: nothing perfdoctor adds is pickled or copied with a loader, and a
second run in the same process (the pytest plugin) sees the same loader afresh.
"""

from __future__ import annotations

import os
import threading
import weakref
from array import array
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

from ..patching import Patches
from ..writer import fresh_lock_in_forks
from .base import Collector, CollectorContext


LONG_WAIT_NS = 2_000_000  # after a wait this long, the next waits also read the job's CPU time


class JobThreadTimes:
    """The job's own threads' time on a CPU and runnable-but-waiting for one, read around long
    waits: the thread waiting in next() (with num_workers=0 it loads the batch itself) and each
    worker process's main thread, from /proc/<pid>/task/<tid>/schedstat (a few µs per file,
    kept open). While the step waits, these are the threads producing its batches: if together
    they ask for every usable core, more workers cannot help; other processes' CPU use does not
    count (a busy machine is not a CPU-bound pipeline), nor does the intra-op pool spinning
    while the training thread waits (spinning is not work).
    """

    def __init__(self) -> None:
        self._files: dict[tuple[int, int], int] = {}  # (pid, tid) -> open schedstat file
        self.available = True

    def _fd(self, pid: int, tid: int) -> int | None:
        key = (pid, tid)
        fd = self._files.get(key)
        if fd is None:
            try:
                fd = os.open(f"/proc/{pid}/task/{tid}/schedstat", os.O_RDONLY)
            except OSError:
                if pid == os.getpid():
                    self.available = False  # no schedstats on this kernel: stop trying
                return None
            self._files[key] = fd
        return fd

    def read(self, workers: list[int]) -> dict[tuple[int, int], tuple[int, int]] | None:
        """(run ns, wait ns) of the calling thread and of each worker's main thread."""
        if not self.available:
            return None
        times: dict[tuple[int, int], tuple[int, int]] = {}
        for pid, tid in ((os.getpid(), threading.get_native_id()), *((w, w) for w in workers)):
            fd = self._fd(pid, tid)
            if fd is None:
                continue
            try:
                fields = os.pread(fd, 128, 0).split()
                times[(pid, tid)] = (int(fields[0]), int(fields[1]))
            except (OSError, ValueError, IndexError):  # the worker exited
                self._files.pop((pid, tid), None)
                os.close(fd)
        return times

    def close(self) -> None:
        for fd in self._files.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._files.clear()


ThreadTimes = dict[tuple[int, int], tuple[int, int]]  # (pid, tid) -> (run ns, wait ns)


def thread_demand(before: ThreadTimes, after: ThreadTimes, wall_ns: int) -> tuple[int, int, int]:
    """(run, wait, demand) in ns over one wait of `wall_ns`, summed over the threads read both
    times. A thread's demand is its CPU time over the time it was not held off a CPU, times the
    wall time: a CPU-bound producer demands the whole wait however busy the machine is, and one
    sleeping on storage demands little even when, woken, it queues behind other processes."""
    run = wait = demand = 0
    for key, (run_after, wait_after) in after.items():
        if key not in before:
            continue
        ran, waited = max(0, run_after - before[key][0]), max(0, wait_after - before[key][1])
        run += ran
        wait += waited
        demand += wall_ns * ran // max(1, ran, wall_ns - waited)
    return run, wait, demand


def worker_pids(iterator: Any) -> list[int]:
    """The live worker processes of a multi-process DataLoader iterator ([] for num_workers=0)."""
    try:
        return [worker.pid for worker in getattr(iterator, "_workers", ()) if worker.pid]
    except (AttributeError, TypeError, ValueError):
        return []


def batch_ready(iterator: Any) -> bool | None:
    """Whether worker processes already delivered the next batch when next() is called (then the
    wait is the cost of receiving it, which more workers cannot cut), None when unknowable."""
    queue = getattr(iterator, "_data_queue", None)
    if queue is None:
        return False  # num_workers=0: every batch is loaded inside next()
    try:
        info = iterator._task_info.get(iterator._rcvd_idx, ())
        return len(info) == 2 or queue.qsize() > 0
    except (AttributeError, NotImplementedError, OSError, TypeError):  # qsize is missing on macOS
        return None


@dataclass(eq=False)
class EpochRecord:
    index: int
    iter_start_ns: int
    iter_ns: int = 0  # time inside DataLoader.__iter__ (starting workers, when not persistent)
    first_batch_ns: int | None = None  # from the __iter__ call to the first batch in hand
    batches: int = 0
    wait_ns: int = 0
    end_ns: int = 0  # the final next() that raised StopIteration (worker shutdown included)
    closed: bool = False  # StopIteration seen, or a later epoch of the loader began
    written: dict[str, Any] | None = None  # what the stream last got

    def to_json(self, origin_ns: int) -> dict[str, Any]:
        return {
            "start_ns": self.iter_start_ns - origin_ns,
            "iter_ns": self.iter_ns,
            "first_batch_ns": self.first_batch_ns,
            "batches": self.batches,
            "wait_ns": self.wait_ns,
            "end_ns": self.end_ns,
        }


@dataclass(eq=False)
class LoaderRecord:
    loader_id: int
    args: dict[str, Any]
    dataset: dict[str, Any]
    epochs: list[EpochRecord] = field(default_factory=list)  # epochs not yet written in full
    epoch_count: int = 0
    batch_wait_ns: array = field(default_factory=lambda: array("q"))  # waits not yet drained
    last_wait_ns: int = 0
    job_run_ns_in_waits: int = 0  # the job's producing threads on a CPU while long waits ran
    job_wait_ns_in_waits: int = 0  # ... runnable but waiting for a CPU
    job_demand_ns_in_waits: int = 0  # ... CPU time each asked for, contention taken out (thread_demand)
    wall_ns_in_waits: int = 0  # how long those waits lasted
    ready_wait_ns: int = 0  # waits for batches the workers had already delivered
    unknown_wait_ns: int = 0  # waits where that could not be told
    written_totals: tuple[int, ...] = ()

    def totals(self) -> tuple[int, ...]:
        return (
            self.ready_wait_ns, self.unknown_wait_ns, self.job_run_ns_in_waits, self.job_wait_ns_in_waits, self.wall_ns_in_waits,
            self.job_demand_ns_in_waits,
        )


def describe_loader(loader: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments that matter for speed, as the loader holds them after __init__."""
    context = getattr(loader, "multiprocessing_context", None)
    args = {
        "num_workers": loader.num_workers,
        "batch_size": loader.batch_size,
        "pin_memory": bool(loader.pin_memory),
        "persistent_workers": bool(getattr(loader, "persistent_workers", False)),
        "prefetch_factor": getattr(loader, "prefetch_factor", None),
        "drop_last": bool(loader.drop_last),
        "timeout": loader.timeout,
        "multiprocessing_context": None if context is None else getattr(context, "_name", type(context).__name__),
        "sampler": type(loader.sampler).__name__ if getattr(loader, "sampler", None) is not None else None,
        "batch_sampler": type(loader.batch_sampler).__name__ if loader.batch_sampler is not None else None,
        "collate_fn": getattr(loader.collate_fn, "__qualname__", type(loader.collate_fn).__name__),
        "worker_init_fn": loader.worker_init_fn is not None,
        "in_order": getattr(loader, "in_order", None),
    }
    dataset = loader.dataset
    try:
        length = len(dataset)
    except Exception:  # an IterableDataset, or a __len__ that fails: length unknown
        length = None
    return args, {"type": type(dataset).__qualname__, "length": length}


class DataLoaderProbe(Collector):
    name = "dataloader"

    def __init__(self) -> None:
        self._loaders: list[LoaderRecord] = []
        self._unwritten: list[LoaderRecord] = []  # loaders whose description is not streamed yet
        self._records: weakref.WeakKeyDictionary[Any, LoaderRecord] = weakref.WeakKeyDictionary()
        self._epochs: weakref.WeakKeyDictionary[Any, tuple[LoaderRecord, EpochRecord]] = weakref.WeakKeyDictionary()
        self._patches = Patches()
        self._ctx: CollectorContext | None = None
        self._lock = threading.Lock()
        fresh_lock_in_forks(self, "_lock")
        self._threads = JobThreadTimes()

    def start(self, ctx: CollectorContext) -> None:
        from torch.utils.data import dataloader as dl

        self._ctx = ctx
        self._patches.wrap(dl.DataLoader, "__init__", self._wrap_init)
        self._patches.wrap(dl.DataLoader, "__iter__", self._wrap_iter)
        self._patches.wrap(dl._BaseDataLoaderIter, "__next__", self._wrap_next)
        ctx.stream(self.name).add_source(self._drain)

    def stop(self) -> None:
        self._patches.restore()
        self._threads.close()

    def _record_for(self, loader: Any) -> LoaderRecord:
        record = self._records.get(loader)
        if record is None:  # created before perfdoctor started, or __init__ overridden
            record = self._register(loader)
        return record

    def _register(self, loader: Any) -> LoaderRecord:
        args, dataset = describe_loader(loader)
        with self._lock:
            record = LoaderRecord(loader_id=len(self._loaders), args=args, dataset=dataset)
            self._loaders.append(record)
            self._unwritten.append(record)
        self._records[loader] = record
        return record

    def _wrap_init(self, original: Any) -> Any:
        probe = self

        def __init__(loader: Any, *args: Any, **kwargs: Any) -> None:
            original(loader, *args, **kwargs)
            try:
                probe._register(loader)
            except Exception:  # never break the user's DataLoader over a description
                pass

        return __init__

    def _wrap_iter(self, original: Any) -> Any:
        probe = self

        def __iter__(loader: Any) -> Any:
            t0 = perf_counter_ns()
            iterator = original(loader)
            try:
                record = probe._record_for(loader)
            except Exception:  # a loader we cannot describe or key (unhashable): its batches go unseen
                return iterator
            with probe._lock:
                for earlier in record.epochs:
                    earlier.closed = True
                epoch = EpochRecord(index=record.epoch_count, iter_start_ns=t0, iter_ns=perf_counter_ns() - t0)
                record.epoch_count += 1
                record.epochs.append(epoch)
            try:
                probe._epochs[iterator] = (record, epoch)
            except TypeError:  # a custom iterator that cannot be weakly referenced: unseen
                return iterator
            assert probe._ctx is not None
            probe._ctx.clock.epoch_started(record.loader_id, t0)
            return iterator

        return __iter__

    def _wrap_next(self, original: Any) -> Any:
        probe = self

        def __next__(iterator: Any) -> Any:
            tagged = probe._epochs.get(iterator)
            if tagged is None:
                return original(iterator)
            record, epoch = tagged
            clock = probe._ctx.clock  # type: ignore[union-attr]
            threads = probe._threads
            workers = worker_pids(iterator) if record.last_wait_ns >= LONG_WAIT_NS else []
            before = threads.read(workers) if record.last_wait_ns >= LONG_WAIT_NS else None
            ready = batch_ready(iterator)
            t0 = perf_counter_ns()
            clock.before_batch(t0)
            delivered = False
            try:
                batch = original(iterator)
                delivered = True
                return batch
            finally:
                t1 = perf_counter_ns()
                wait = t1 - t0
                record.last_wait_ns = wait
                after = threads.read(workers) if before is not None else None
                if before is not None and after is not None:
                    ran, waited, demand = thread_demand(before, after, wait)
                    record.job_run_ns_in_waits += ran
                    record.job_wait_ns_in_waits += waited
                    record.job_demand_ns_in_waits += demand
                    record.wall_ns_in_waits += wait
                if delivered:
                    epoch.batches += 1
                    epoch.wait_ns += wait
                    if ready:
                        record.ready_wait_ns += wait
                    elif ready is None:
                        record.unknown_wait_ns += wait
                    record.batch_wait_ns.append(wait)
                    if epoch.first_batch_ns is None:
                        epoch.first_batch_ns = t1 - epoch.iter_start_ns
                else:
                    epoch.end_ns += wait
                    epoch.closed = True
                clock.after_batch(record.loader_id, t0, wait, delivered)

        return __next__

    def _drain(self) -> list[dict[str, Any]]:
        """Stream records since the last call, forgotten here once handed on (writer's thread)."""
        origin = self._ctx.clock.origin_ns if self._ctx else 0
        records: list[dict[str, Any]] = []
        with self._lock:
            new, self._unwritten = self._unwritten, []
            loaders = list(self._loaders)
        for record in new:
            records.append({"loader": {"id": record.loader_id, "args": record.args, "dataset": record.dataset}})
        for record in loaders:
            count = len(record.batch_wait_ns)
            if count:
                waits = record.batch_wait_ns[:count].tolist()
                del record.batch_wait_ns[:count]
                records.append({"waits": {"loader": record.loader_id, "ns": waits}})
            with self._lock:
                epochs = list(record.epochs)
            done = []
            for epoch in epochs:
                closed = epoch.closed  # read first: a state written after it was closed is final
                state = epoch.to_json(origin)
                if state != epoch.written:
                    records.append({"epoch": {"loader": record.loader_id, "index": epoch.index, **state}})
                    epoch.written = state
                if closed:
                    done.append(epoch)
            if done:
                with self._lock:
                    record.epochs = [epoch for epoch in record.epochs if not any(epoch is d for d in done)]
            totals = record.totals()
            if totals != record.written_totals:
                ready, unknown, run, waiting, wall, demand = totals
                records.append({"totals": {
                    "loader": record.loader_id, "ready_wait_ns": ready, "unknown_wait_ns": unknown,
                    "job_run_ns": run, "job_wait_ns": waiting, "wall_ns": wall, "job_demand_ns": demand,
                }})
                record.written_totals = totals
        return records
