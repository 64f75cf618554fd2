"""The report's `environment` section: the settings snapshot (versions, cores, threads, backend
flags, allow-listed environment variables), or what a foreign trace says about its devices.

Blocks the snapshot did not take are left out of report.json (not written as null), and every
field of a block may be missing from an older snapshot: all of them default to None.
"""

from __future__ import annotations

import msgspec


class Versions(msgspec.Struct, kw_only=True):
    python: str | None = None
    torch: str | None = None
    perfdoctor: str | None = None
    cuda: str | None = None
    cudnn: int | None = None
    platform: str | None = None


class CpuInfo(msgspec.Struct, kw_only=True):
    logical_cores: int | None = None
    physical_cores: int | None = None
    affinity: list[int] | None = None
    cgroup_cpu_quota: float | None = None  # the container's CPU limit in cores
    usable_cores: int | None = None  # affinity, capped by the cgroup quota
    machine: str | None = None


class Threads(msgspec.Struct, kw_only=True):
    intra_op: int | None = None
    inter_op: int | None = None
    parallel_backend: str | None = None


class Memory(msgspec.Struct, kw_only=True):
    total_bytes: int | None = None


class Autograd(msgspec.Struct, kw_only=True):
    anomaly_detection: bool | None = None
    deterministic_algorithms: bool | None = None


class Backends(msgspec.Struct, kw_only=True):
    """torch.backends flags as the script left them."""

    cudnn_enabled: bool | None = None
    cudnn_benchmark: bool | None = None
    cudnn_deterministic: bool | None = None
    cudnn_allow_tf32: bool | None = None
    matmul_allow_tf32: bool | None = None
    float32_matmul_precision: str | None = None
    mkldnn_enabled: bool | None = None

    def tf32_off(self) -> tuple[bool, bool] | None:
        """(matmul TF32 off, convolution TF32 off); None when the snapshot has no matmul flag."""
        if self.matmul_allow_tf32 is None:
            return None
        matmul = self.matmul_allow_tf32 is False or self.float32_matmul_precision == "highest"
        return matmul, self.cudnn_allow_tf32 is False


def compute_capability(major: object, minor: object) -> tuple[int, int] | None:
    """(major, minor) when both are whole numbers (a trace may leave them out)."""
    if type(major) is int and type(minor) is int:
        return major, minor
    return None


class CudaDevice(msgspec.Struct, kw_only=True):
    index: int | None = None
    name: str | None = None
    capability: tuple[int, int] | None = None  # compute capability (major, minor)
    total_memory_bytes: int | None = None


class CudaMemoryPeak(msgspec.Struct, kw_only=True):
    """The most memory torch's caching allocator held (reserved) and handed out (allocated)."""

    index: int | None = None
    allocated_bytes: int | None = None
    reserved_bytes: int | None = None


class Cuda(msgspec.Struct, kw_only=True):
    available: bool = False
    initialized: bool | None = None
    devices: list[CudaDevice] | None = None  # only once CUDA is in use (asking would initialise it)
    current_device: int | None = None
    memory_peaks: list[CudaMemoryPeak] | None = None


class ThreadProbe(msgspec.Struct, kw_only=True):
    """The same conv and matmul work timed at the script's thread count and at the core count,
    the pool warmed at both, timings interleaved and repeated until they agree (or given up)."""

    threads: int
    cores: int
    ms_at_threads: float  # the fastest wall time at each size
    ms_at_cores: float
    cpu_ms_at_threads: float | None = None  # the process's CPU time, fastest, at each size
    cpu_ms_at_cores: float | None = None
    rounds: int | None = None  # timings at each size (interleaved)
    stable: bool | None = None  # the two fastest timings at each size agreed (within 25%)


class DistributedInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a foreign trace's distributedInfo says about its job."""

    backend: str | None = None
    rank: int | None = None
    world_size: int | None = None


class Environment(msgspec.Struct, kw_only=True, omit_defaults=True):
    versions: Versions | None = None
    cpu: CpuInfo | None = None
    threads: Threads | None = None
    memory: Memory | None = None
    backends: Backends | None = None
    autograd: Autograd | None = None
    cuda: Cuda | None = None
    env: dict[str, str] | None = None  # allow-listed environment variables only: never secrets
    thread_probe: ThreadProbe | None = None
    distributed: DistributedInfo | None = None  # foreign traces only
    settings_taken_at: str | None = None

    def usable_cores(self) -> int | None:
        cpu = self.cpu
        return (cpu.usable_cores or cpu.logical_cores) if cpu else None

    def intra_op_threads(self) -> int | None:
        return self.threads.intra_op if self.threads else None

    def env_var(self, name: str) -> str | None:
        return (self.env or {}).get(name)
