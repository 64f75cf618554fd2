"""The DDP collector: the process group, each DistributedDataParallel's arguments, what DDP itself
logs about the run (unused parameters, buckets, compute/communication overlap), forwards with and
without gradient synchronisation per step, and any nn.DataParallel in use.

It wraps DistributedDataParallel.__init__ and DataParallel.__init__ for the process and adds a
forward pre-hook to each DDP instance: one attribute read and an increment per DDP forward.
"""

from __future__ import annotations

import weakref
from array import array
from typing import Any

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
        self._data_parallel: list[dict[str, Any]] = []
        self._process_group: dict[str, Any] | None = None
        self._patched: list[tuple[Any, str, Any]] = []
        self._synced = 0
        self._unsynced = 0
        self.synced_forwards = array("q")
        self.unsynced_forwards = array("q")

    def start(self, ctx: CollectorContext) -> None:
        import torch.nn as nn
        from torch.nn.parallel import DistributedDataParallel

        self._ctx = ctx
        self._wrap_init(DistributedDataParallel, self._on_ddp)
        self._wrap_init(nn.DataParallel, self._on_data_parallel)
        ctx.clock.add_listener(self._on_step_end)

    def _wrap_init(self, owner: Any, record: Any) -> None:
        original = owner.__dict__["__init__"]

        def __init__(module: Any, *args: Any, **kwargs: Any) -> None:
            original(module, *args, **kwargs)
            try:
                record(module)
            except Exception:  # describing the wrapper must never break the user's model
                pass

        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        owner.__init__ = __init__
        self._patched.append((owner, "__init__", original))

    def _on_ddp(self, model: Any) -> None:
        parameters = list(model.module.parameters())
        device_types = sorted({p.device.type for p in parameters})
        self._instances.append(
            {
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
        )
        self._models.append(weakref.ref(model))
        model.register_forward_pre_hook(self._on_ddp_forward)
        self._process_group = self._process_group or process_group_info()

    def _on_data_parallel(self, model: Any) -> None:
        self._data_parallel.append(
            {"module": type(model.module).__qualname__, "device_ids": [int(d) for d in (model.device_ids or [])]}
        )

    def _on_ddp_forward(self, model: Any, args: Any) -> None:
        import torch

        if not torch.is_grad_enabled():
            return  # evaluation: no gradients, nothing to synchronise
        if model.require_backward_grad_sync:
            self._synced += 1
        else:
            self._unsynced += 1

    def _on_step_end(self, index: int) -> None:
        if index < len(self.synced_forwards):
            # The clock folded batch-steps into this one (its first optimizer step): so do we.
            self._synced += sum(self.synced_forwards[index:])
            self._unsynced += sum(self.unsynced_forwards[index:])
            del self.synced_forwards[index:], self.unsynced_forwards[index:]
        self.synced_forwards.append(self._synced)
        self.unsynced_forwards.append(self._unsynced)
        self._synced = self._unsynced = 0
        if index + 1 in LOG_AT_STEPS and self._models:
            self._read_logs()

    def _read_logs(self) -> None:
        for instance, model_ref in zip(self._instances, self._models):
            model = model_ref()
            if model is None:
                continue
            try:
                logged = model._get_ddp_logging_data()
            except Exception:  # a private API: absent or changed in this torch, then no log
                continue
            instance["logged"] = {key: logged[key] for key in LOGGED_FIELDS if key in logged}

    def stop(self) -> None:
        self._read_logs()
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched = []

    def payload(self) -> dict[str, Any] | None:
        if not self._instances and not self._data_parallel and self._process_group is None:
            self._process_group = process_group_info()
            if self._process_group is None:
                return None
        return {
            "process_group": self._process_group,
            "ddp": self._instances,
            "data_parallel": self._data_parallel,
            "synced_forwards": self.synced_forwards.tolist(),
            "unsynced_forwards": self.unsynced_forwards.tolist(),
        }
