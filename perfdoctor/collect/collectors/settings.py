"""The settings snapshot: versions, cores, threads and the backend flags that decide speed.

Taken when the first step ends (the script has set itself up by then) or, if no step ever
ends, when the run stops; streamed as one `settings` record, and an `update` at the end (CUDA
memory peaks, the thread probe). Environment variables are read from an allow-list only: a report
must never carry secrets.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from .base import Collector, CollectorContext

ENV_ALLOW_LIST = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY", "KMP_BLOCKTIME",
    "CUDA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING", "CUDA_DEVICE_MAX_CONNECTIONS",
    "PYTORCH_CUDA_ALLOC_CONF", "TORCH_CUDNN_V8_API_ENABLED", "NCCL_ALGO", "NCCL_PROTO",
    "NCCL_IB_DISABLE", "NCCL_P2P_DISABLE", "NCCL_SOCKET_IFNAME", "NCCL_DEBUG",
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK",
    "TORCHELASTIC_RESTART_COUNT", "TORCH_DISTRIBUTED_DEBUG",
)


def snapshot_settings() -> dict[str, Any]:
    import psutil
    import torch

    from ... import __version__

    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    quota = cgroup_cpu_quota()
    usable = len(affinity) if affinity else os.cpu_count()
    if quota is not None and usable:
        usable = max(1, min(usable, math.ceil(quota)))
    settings: dict[str, Any] = {
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "perfdoctor": __version__,
            "cuda": torch.version.cuda,
            "cudnn": _cudnn_version(torch),
            "platform": platform.platform(terse=True),
        },
        "cpu": {
            "logical_cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "affinity": affinity,
            "cgroup_cpu_quota": quota,
            "usable_cores": usable,
            "machine": platform.machine(),
        },
        "threads": {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
            "parallel_backend": _parallel_backend(torch),
        },
        "memory": {"total_bytes": psutil.virtual_memory().total},
        "autograd": {
            "anomaly_detection": torch.is_anomaly_enabled(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        },
        "backends": {
            "cudnn_enabled": torch.backends.cudnn.enabled,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "mkldnn_enabled": torch.backends.mkldnn.enabled,
        },
        "cuda": _cuda(torch),
        "env": {name: os.environ[name] for name in ENV_ALLOW_LIST if name in os.environ},
    }
    return settings


def cgroup_cpu_quota() -> float | None:
    """The container's CPU limit in cores (cgroup v2 cpu.max or v1 cfs quota), None if unlimited."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


THREAD_PROBE_ROUNDS = 3  # timings at each size, interleaved; more when they disagree ...
THREAD_PROBE_MAX_ROUNDS = 9  # ... up to this many
THREAD_PROBE_BUDGET_S = 4.0  # ... and no longer than this in all
THREAD_PROBE_STABLE = 1.25  # the two fastest timings at a size within this ratio: stable


def thread_probe(threads: int, cores: int) -> dict[str, Any]:
    """Time the same small conv + matmul work at the script's thread count and at the core count.

    Measured only when the script runs more intra-op threads than there are cores: the ratio is
    this machine's own evidence of what the oversubscription costs. The pool is warmed at both
    sizes first; timings at the two sizes are interleaved (so that a burst of load from another
    process hits both alike), and repeated until the two fastest at each size agree, or given up
    as unstable. Each timing records the process's CPU time too: on a shared machine wall time
    is inflated by waiting for a CPU, CPU time much less.
    """
    import torch

    previous = torch.get_num_threads()
    images = torch.randn(16, 8, 28, 28)
    weight = torch.randn(16, 8, 5, 5)
    matrix = torch.randn(256, 256)

    def once(count: int) -> tuple[float, float]:
        torch.set_num_threads(count)
        with torch.no_grad():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(5):
                torch.nn.functional.conv2d(images, weight)
                matrix @ matrix
            return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3

    def agree(values: list[float]) -> bool:
        best = sorted(values)
        return len(best) >= 2 and best[1] <= THREAD_PROBE_STABLE * best[0]

    walls: dict[int, list[float]] = {threads: [], cores: []}
    cpus: dict[int, list[float]] = {threads: [], cores: []}
    started = time.perf_counter()
    rounds = 0
    try:
        once(threads)  # warm the thread pool at both sizes before timing
        once(cores)
        while rounds < THREAD_PROBE_MAX_ROUNDS:
            for count in (threads, cores):
                wall, cpu = once(count)
                walls[count].append(wall)
                cpus[count].append(cpu)
            rounds += 1
            stable = agree(walls[threads]) and agree(walls[cores])
            if rounds >= THREAD_PROBE_ROUNDS and (stable or time.perf_counter() - started > THREAD_PROBE_BUDGET_S):
                break
    finally:
        torch.set_num_threads(previous)
    return {
        "threads": threads, "cores": cores,
        "ms_at_threads": round(min(walls[threads]), 3), "ms_at_cores": round(min(walls[cores]), 3),
        "cpu_ms_at_threads": round(min(cpus[threads]), 3), "cpu_ms_at_cores": round(min(cpus[cores]), 3),
        "rounds": rounds, "stable": agree(walls[threads]) and agree(walls[cores]),
    }


def _cudnn_version(torch: Any) -> int | None:
    try:
        return torch.backends.cudnn.version()
    except Exception:
        return None


def _parallel_backend(torch: Any) -> str | None:
    for line in torch.__config__.parallel_info().splitlines():
        if line.startswith("ATen parallel backend:"):
            return line.split(":", 1)[1].strip()
    return None


def _cuda(torch: Any) -> dict[str, Any]:
    available = torch.cuda.is_available()
    info: dict[str, Any] = {"available": available, "initialized": torch.cuda.is_initialized()}
    # Asking for device properties would initialise CUDA in a CPU-only job: only once it is in use.
    if available and info["initialized"]:
        info["devices"] = [
            {
                "index": index,
                "name": torch.cuda.get_device_name(index),
                "capability": list(torch.cuda.get_device_capability(index)),
                "total_memory_bytes": torch.cuda.get_device_properties(index).total_memory,
            }
            for index in range(torch.cuda.device_count())
        ]
        info["current_device"] = torch.cuda.current_device()
    return info


def cuda_memory_peaks() -> list[dict[str, Any]] | None:
    """Per device: the most memory torch's caching allocator held (reserved) and handed out
    (allocated) during the run; None when CUDA was never initialised (asking would initialise it)."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return [
        {
            "index": index,
            "allocated_bytes": torch.cuda.max_memory_allocated(index),
            "reserved_bytes": torch.cuda.max_memory_reserved(index),
        }
        for index in range(torch.cuda.device_count())
    ]


class SettingsSnapshot(Collector):
    name = "settings"

    def __init__(self) -> None:
        self._settings: dict[str, Any] | None = None
        self._ctx: CollectorContext | None = None

    def start(self, ctx: CollectorContext) -> None:
        self._ctx = ctx
        ctx.clock.add_listener(self._on_step_end)

    def _on_step_end(self, index: int) -> None:
        if self._settings is None:
            t0 = self._ctx.clock.now()  # type: ignore[union-attr]
            self._take(f"end of step {index}")
            self._ctx.clock.add_overhead(self._ctx.clock.now() - t0)  # type: ignore[union-attr]

    def _take(self, when: str) -> None:
        self._settings = snapshot_settings()
        assert self._ctx is not None
        self._ctx.stream(self.name).emit({"settings": {"taken_at": when, **self._settings}})

    def stop(self) -> None:
        if self._settings is None:
            self._take("end of run")
        settings = self._settings or {}
        update: dict[str, Any] = {}
        cuda = self._cuda_peaks(settings)
        if cuda is not None:
            update["cuda"] = cuda
        threads = (settings.get("threads") or {}).get("intra_op") or 0
        cores = (settings.get("cpu") or {}).get("usable_cores") or 0
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        if cores and threads * local_ranks > cores:
            update["thread_probe"] = thread_probe(threads, max(1, cores // local_ranks))
        if update:
            assert self._ctx is not None
            self._ctx.stream(self.name).emit({"update": update})

    def _cuda_peaks(self, settings: dict[str, Any]) -> dict[str, Any] | None:
        peaks = cuda_memory_peaks()
        if peaks is None:
            return None
        import torch

        cuda = dict(settings.get("cuda") or {})
        if not cuda.get("devices"):  # CUDA was first used after the snapshot
            cuda.update(_cuda(torch))
        cuda["memory_peaks"] = peaks
        return cuda
