"""The DDP collector: the process group, each DistributedDataParallel's arguments, what DDP itself
logs about the run (unused parameters, buckets, compute/communication overlap), forwards with and
without gradient synchronisation per step, and any nn.DataParallel in use.

It wraps DistributedDataParallel.__init__ and DataParallel.__init__ for the process and adds a
forward pre-hook to each DDP instance: one attribute read and an increment per DDP forward. The
per-step counts wait in two arrays until the stream writer drains them.
"""

from __future__ import annotations

import threading
import weakref
from array import array
from typing import Any

from ..invisible import InvisibleHook
from ..patching import Patches
from ..writer import fresh_lock_in_forks
from .base import Collector, CollectorContext

# What DDP's own logger records (DistributedDataParallel._get_ddp_logging_data) that we keep.
LOGGED_FIELDS = (
    "backend_name", "world_size", "rank", "module_name", "device_ids", "bucket_sizes",
    "has_rebuilt_buckets", "rebuilt_bucket_sizes", "unused_parameter_size", "num_buckets_reduced",
    "total_parameter_size_bytes", "num_parameter_tensors", "bucket_cap_bytes", "find_unused_parameters",
    "gradient_as_bucket_view", "static_graph", "comm_hook", "iteration",
    "avg_forward_compute_time", "avg_backward_compute_time", "avg_backward_comm_time",
    "avg_backward_compute_comm_overlap_time",
)
# Steps after which DDP's log is read again (it is cheap, but not free): later reads win.
LOG_AT_STEPS = frozenset({5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000})


class ForwardCounter(InvisibleHook):
    """The pre-hook on each DDP instance (invisible to pickling, copies and torch.jit)."""

    __slots__ = ("count",)

    def __init__(self, count: Any) -> None:
        self.count = count

    def __call__(self, model: Any, args: Any) -> None:
        self.count(model, args)


def process_group_info() -> dict[str, Any] | None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    return {"backend": str(dist.get_backend()), "world_size": dist.get_world_size(), "rank": dist.get_rank()}


class DdpCollector(Collector):
    name = "ddp"

    def __init__(self) -> None:
        self._ctx: CollectorContext | None = None
        self._instances: list[dict[str, Any]] = []
        self._models: list[weakref.ref] = []
        self._seen_anything = False
        self._patches = Patches()
        self._synced = 0
        self._unsynced = 0
        self.synced_forwards = array("q")  # per step, not yet drained
        self.unsynced_forwards = array("q")
        self._steps = 0  # steps counted since the clock's last fold
        self._drained = 0
        self._totals = [0, 0]  # synced, unsynced over all steps so far (for a fold)
        self._lock = threading.Lock()
        fresh_lock_in_forks(self, "_lock")
        self._restarted = False

    def start(self, ctx: CollectorContext) -> None:
        import torch.nn as nn
        from torch.nn.parallel import DistributedDataParallel

        self._ctx = ctx
        self._wrap_init(DistributedDataParallel, self._on_ddp)
        self._wrap_init(nn.DataParallel, self._on_data_parallel)
        ctx.clock.add_listener(self._on_step_end)
        ctx.stream(self.name).add_source(self._drain)

    def _emit(self, record: dict[str, Any]) -> None:
        assert self._ctx is not None
        self._seen_anything = True
        self._ctx.stream(self.name).emit(record)

    def _wrap_init(self, owner: Any, record: Any) -> None:
        def make(original: Any) -> Any:
            def __init__(module: Any, *args: Any, **kwargs: Any) -> None:
                original(module, *args, **kwargs)
                try:
                    record(module)
                except Exception:  # describing the wrapper must never break the user's model
                    pass

            return __init__

        self._patches.wrap(owner, "__init__", make)

    def _on_ddp(self, model: Any) -> None:
        parameters = list(model.module.parameters())
        device_types = sorted({p.device.type for p in parameters})
        instance = {
            "module": type(model.module).__qualname__,
            "find_unused_parameters": bool(model.find_unused_parameters),
            "static_graph": bool(getattr(model, "static_graph", False)),
            "gradient_as_bucket_view": bool(model.gradient_as_bucket_view),
            "broadcast_buffers": bool(model.broadcast_buffers),
            "bucket_cap_mb": round(model.bucket_bytes_cap / 2**20, 3),
            "device_ids": list(model.device_ids or []),
            "parameter_devices": device_types,
            "parameters": len(parameters),
            "parameter_bytes": sum(p.numel() * p.element_size() for p in parameters),
            "logged": None,
        }
        if not self._instances:
            group = process_group_info()
            if group is not None:
                self._emit({"process_group": group})
        self._emit({"ddp": {"index": len(self._instances), **instance}})
        self._instances.append(instance)
        self._models.append(weakref.ref(model))
        assert self._ctx is not None
        self._ctx.clock.hooks.attach(model, ForwardCounter(self._on_ddp_forward), owner=self.name)

    def _on_data_parallel(self, model: Any) -> None:
        self._emit({"data_parallel": {"module": type(model.module).__qualname__, "device_ids": [int(d) for d in (model.device_ids or [])]}})

    def _on_ddp_forward(self, model: Any, args: Any) -> None:
        import torch

        if not torch.is_grad_enabled():
            return  # evaluation: no gradients, nothing to synchronise
        if model.require_backward_grad_sync:
            self._synced += 1
        else:
            self._unsynced += 1

    def _on_step_end(self, index: int) -> None:
        if index < self._steps:
            # The clock folded its batch-steps into this one (its first optimizer step): so do we.
            self._synced += self._totals[0]
            self._unsynced += self._totals[1]
            with self._lock:
                self.synced_forwards, self.unsynced_forwards = array("q"), array("q")
                self._steps = self._drained = 0
                self._totals = [0, 0]
                self._restarted = True
        self._totals[0] += self._synced
        self._totals[1] += self._unsynced
        self.unsynced_forwards.append(self._unsynced)
        self.synced_forwards.append(self._synced)
        self._steps += 1
        self._synced = self._unsynced = 0
        if index + 1 in LOG_AT_STEPS and self._models:
            self._read_logs()

    def _drain(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        with self._lock:
            if self._restarted:
                records.append({"restart": {}})
                self._restarted = False
            count = len(self.synced_forwards)  # appended last: whole steps
            synced, unsynced = self.synced_forwards[:count].tolist(), self.unsynced_forwards[:count].tolist()
            del self.synced_forwards[:count], self.unsynced_forwards[:count]
            first, self._drained = self._drained, self._drained + count
        if not self._instances:
            return []  # no DDP model (yet): counts of nothing are dropped, their steps still counted
        if count:
            records.append({"forwards": {"first": first, "synced": synced, "unsynced": unsynced}})
        return records

    def _read_logs(self) -> None:
        for index, (instance, model_ref) in enumerate(zip(self._instances, self._models)):
            model = model_ref()
            if model is None:
                continue
            try:
                logged = model._get_ddp_logging_data()
            except Exception:  # a private API: absent or changed in this torch, then no log
                continue
            instance["logged"] = {key: logged[key] for key in LOGGED_FIELDS if key in logged}
            self._emit({"logged": {"index": index, "logged": instance["logged"]}})

    def stop(self) -> None:
        self._read_logs()
        self._patches.restore()
        if not self._seen_anything:
            group = process_group_info()
            if group is not None:
                self._emit({"process_group": group})
