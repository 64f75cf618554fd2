"""Device-side analysis per step: busy and idle time, copies, syncs, launch-bound evidence.

Attribution: device work belongs to the step that launched it (see :mod:`perfdoctor.trace.steps`);
host calls (syncs) to the step they ran in. Times are unions on the device's timeline, across
streams: work overlapping on two streams counts once.

Quantities, per step, for one device (the one with the most kernel time unless chosen):

- ``kernel_ns``: union of the step's kernels (compute and communication);
  ``utilization = kernel_ns / step duration``, capped at 1.
- ``comm_ns``: union of communication kernels. A kernel is communication when its name starts
  with ``nccl`` (``ncclKernel_*``, ``ncclDevKernel_*``), mentions ``rccl``, or names a
  collective (``all_reduce``/``allreduce``, ``all_gather``/``allgather``, ``reduce_scatter``,
  ``all_to_all``/``alltoall``).
- memcpy time by direction from the name (``Memcpy HtoD``, ``DtoH``, ``DtoD``; anything else,
  e.g. ``PtoP``, is ``other``), and by host memory kind: ``Pageable`` or ``Pinned`` in the name.
- ``busy_ns``: union of kernels, copies and memsets; ``idle_ns = duration - busy_ns`` (at least 0).
- idle split: on the device's timeline, a gap between activities is *waiting for the host* when
  the call that launched the activity ending the gap started after the gap began (nothing was
  queued: the host was late); otherwise the work was queued but waited on something else (a
  sync, an event, another stream) and the gap is *other idle*. Gaps go to the step of the
  activity that ends them; ``idle_host_wait_ns`` is their sum capped at ``idle_ns``.
- ``syncs``: host calls that block until the device catches up: ``cudaDeviceSynchronize``,
  ``cudaStreamSynchronize``, ``cudaEventSynchronize``, synchronous ``cudaMemcpy*`` (not
  ``*Async``), their driver (``cu*``) and HIP twins (and ``hipMemcpyWithStream``, ROCm
  PyTorch's blocking copy), plus ``cuda_sync`` events of kind Stream /
  Context / Event Sync that no such call accounts for (``Stream Wait Event`` is a device-side
  wait and is not counted). ``sync_ns`` is the host time spent in them.
- pageable copies: memcpys with ``Pageable`` in the name (CUPTI's; ROCm's copies are named
  ``Memcpy HtoD (Host -> Device)`` whatever the host memory, so an AMD trace shows none).
- causes: for syncs and pageable copies, the CPU op that issued the host call (via correlation
  and :func:`perfdoctor.trace.links.responsible_op`), counted by op name.
- launch-bound evidence: kernel count and the number shorter than ``short_kernel_ns`` (10 us).
- Tensor Core share: the share of summed kernel time in kernels whose name suggests Tensor
  Cores: MMA shape tags (``h884``, ``h1688``, ``h16816``, ``s1688``, ``s16816``, ``i8816``,
  ``i16832``), ``hmma``, ``imma``, ``xmma``, ``wmma``, ``wgmma``, ``tensorop`` (CUTLASS),
  ``_tc_``, architecture-tagged library kernels (``sm80_``, ``sm86_``, ``sm89_``, ``sm90_``,
  ``sm100_``), AMD Matrix Core (MFMA) kernels of Tensile and hipBLASLt (``_MI16x16x1``), a ``gemm`` with ``f16``/``bf16``/``fp16``/``tf32`` in its name, and FlashAttention
  (``flash_fwd``, ``flash_bwd``, ``fmha``). A heuristic: names are all a trace offers.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from perfdoctor.trace import intervals as iv
from perfdoctor.trace.categories import LAUNCH_CATEGORIES, Category
from perfdoctor.trace.links import launcher, responsible_op
from perfdoctor.trace.model import Trace
from perfdoctor.trace.steps import StepWindow, launch_time, step_of_events, step_windows, window_of

SHORT_KERNEL_NS = 10_000

COMM_KERNEL = re.compile(
    r"^nccl|rccl|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all", re.IGNORECASE
)
TENSOR_CORE_KERNEL = re.compile(
    r"h884|h1688|h16816|s884|s1688|s16816|i8816|i16832|hmma|imma|xmma|wmma|wgmma|tensorop|_tc_"
    r"|_MI\d+x\d+x\d+"  # Tensile/hipBLASLt kernels on AMD Matrix Cores (the MFMA instruction's shape)
    r"|sm8[0-9]_|sm9[0-9]_|sm1[0-9]{2}_"
    r"|gemm.*(?:bf16|f16|fp16|tf32)|(?:bf16|f16|fp16|tf32).*gemm"
    r"|flash_fwd|flash_bwd|fmha",
    re.IGNORECASE,
)
SYNC_CALLS = frozenset(
    {
        "cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize", "cudaThreadSynchronize",
        "cudaMemcpy", "cudaMemcpy2D", "cudaMemcpy3D", "cudaMemcpyToSymbol", "cudaMemcpyFromSymbol",
        "cudaMemcpyPeer",
        "cuCtxSynchronize", "cuStreamSynchronize", "cuEventSynchronize",
        "cuMemcpy", "cuMemcpyDtoH", "cuMemcpyDtoH_v2", "cuMemcpyHtoD", "cuMemcpyHtoD_v2", "cuMemcpyDtoD",
        "cuMemcpyDtoD_v2", "cuMemcpy2D", "cuMemcpy2D_v2", "cuMemcpyPeer",
        "hipDeviceSynchronize", "hipStreamSynchronize", "hipEventSynchronize", "hipCtxSynchronize",
        "hipMemcpy", "hipMemcpy2D", "hipMemcpy3D", "hipMemcpyDtoH", "hipMemcpyHtoD", "hipMemcpyDtoD",
        "hipMemcpyPeer", "hipMemcpyToSymbol", "hipMemcpyFromSymbol",
        # PyTorch on ROCm copies with hipMemcpyWithStream where CUDA builds call cudaMemcpyAsync
        # and then cudaStreamSynchronize: the call itself blocks until the copy is done.
        "hipMemcpyWithStream",
    }
)
HOST_BLOCKING_SYNC_KINDS = ("Stream Sync", "Context Sync", "Event Sync", "Device Sync")
_DIRECTIONS = ("HtoD", "DtoH", "DtoD")


@dataclass(frozen=True)
class Cause:
    """A CPU op that issued syncs or copies, how often, and the time involved."""

    op: str
    count: int
    total_ns: int


@dataclass(frozen=True)
class MemcpyTime:
    htod_ns: int = 0
    dtoh_ns: int = 0
    dtod_ns: int = 0
    other_ns: int = 0
    pageable_ns: int = 0
    pinned_ns: int = 0
    count: int = 0
    bytes: int = 0

    @property
    def total_ns(self) -> int:
        return self.htod_ns + self.dtoh_ns + self.dtod_ns + self.other_ns


@dataclass(frozen=True)
class GpuStepStats:
    step: StepWindow
    device: int
    kernel_ns: int
    comm_ns: int
    memcpy: MemcpyTime
    memset_ns: int
    busy_ns: int
    idle_ns: int
    idle_host_wait_ns: int
    idle_other_ns: int
    utilization: float  # kernel_ns / step duration, in [0, 1]
    kernels: int
    short_kernels: int  # kernels shorter than short_kernel_ns
    tensor_core_ns: int  # summed time of kernels that look like Tensor Core kernels
    kernel_sum_ns: int  # summed kernel time (the Tensor Core share's denominator)
    syncs: int
    sync_ns: int  # host time blocked in sync calls
    pageable_copies: int
    pageable_bytes: int
    sync_causes: list[Cause] = field(default_factory=list)
    pageable_causes: list[Cause] = field(default_factory=list)
    short_kernel_threshold_ns: int = SHORT_KERNEL_NS

    @property
    def short_kernel_share(self) -> float:
        return self.short_kernels / self.kernels if self.kernels else 0.0

    @property
    def tensor_core_share(self) -> float:
        return self.tensor_core_ns / self.kernel_sum_ns if self.kernel_sum_ns else 0.0


def devices(trace: Trace) -> list[int]:
    """GPU indices with kernels, copies or memsets, busiest (kernel time) first."""
    active = trace.category_mask(Category.KERNEL, Category.MEMCPY, Category.MEMSET) & (trace.device >= 0)
    if not active.any():
        return []
    found = np.unique(trace.device[active])
    kernels = trace.category_mask(Category.KERNEL)
    busy = {int(d): int(trace.dur_ns[kernels & (trace.device == d)].sum()) for d in found}
    return sorted(busy, key=lambda d: (-busy[d], d))


def _names_containing(trace: Trace, text: str) -> np.ndarray:
    return trace.name_mask(lambda name: text in name)


def comm_kernel_mask(trace: Trace) -> np.ndarray:
    return trace.category_mask(Category.KERNEL) & trace.name_mask(lambda n: COMM_KERNEL.search(n) is not None)


def _grouped(trace: Trace, mask: np.ndarray, step: np.ndarray, n: int) -> np.ndarray:
    return iv.grouped_total(trace.ts_ns[mask], trace.ts_ns[mask] + trace.dur_ns[mask], step[mask], n)


def _sum_by_step(values: np.ndarray, step: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    chosen = mask & (step >= 0)
    return np.bincount(step[chosen], weights=values[chosen].astype(np.float64), minlength=n)[:n].astype(np.int64)


def _causes(trace: Trace, calls: np.ndarray, times: np.ndarray) -> list[Cause]:
    if calls.size == 0:
        return []
    ops = np.full(calls.size, -1, dtype=np.int64)
    known = calls >= 0
    ops[known] = responsible_op(trace, calls[known])
    counts: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for op, t in zip(ops.tolist(), times.tolist()):
        name = trace.names[trace.name_id[op]] if op >= 0 else "(no CPU op)"
        counts[name] += 1
        totals[name] += int(t)
    ranked = sorted(counts, key=lambda name: (-counts[name], -totals[name], name))
    return [Cause(name, counts[name], totals[name]) for name in ranked]


def sync_call_mask(trace: Trace) -> np.ndarray:
    """Host calls that block on the device, plus blocking cuda_sync events no call accounts for."""
    calls = trace.category_mask(*LAUNCH_CATEGORIES) & trace.name_mask(lambda n: n in SYNC_CALLS)
    events = trace.category_mask(Category.CUDA_SYNC) & trace.name_mask(lambda n: n in HOST_BLOCKING_SYNC_KINDS)
    if events.any():
        source = launcher(trace)
        explained = (source >= 0) & calls[np.maximum(source, 0)]
        events &= ~explained
    return calls | events


def _idle_gaps(trace: Trace, activity: np.ndarray, step: np.ndarray, n: int) -> np.ndarray:
    """Per step: device idle gaps that were spent waiting for the host to launch work."""
    index = np.flatnonzero(activity)
    if index.size < 2:
        return np.zeros(n, dtype=np.int64)
    start, end = trace.ts_ns[index], trace.ts_ns[index] + trace.dur_ns[index]
    order = np.argsort(start, kind="stable")
    index, start, end = index[order], start[order], end[order]
    reach = np.maximum.accumulate(end)
    gap = start[1:] - reach[:-1]  # > 0: the device was idle before this activity
    nxt = index[1:]
    waiting_for_host = (gap > 0) & (launch_time(trace)[nxt] > reach[:-1])
    return _sum_by_step(np.where(waiting_for_host, gap, 0), step[nxt], np.ones(nxt.size, dtype=bool), n)


def gpu_steps(
    trace: Trace,
    windows: list[StepWindow] | None = None,
    device: int | None = None,
    short_kernel_ns: int = SHORT_KERNEL_NS,
) -> list[GpuStepStats]:
    """Per step, what one device did (module docstring); [] for a trace without device work."""
    windows = step_windows(trace) if windows is None else windows
    found = devices(trace)
    if not windows or not found:
        return []
    device = found[0] if device is None else device
    n = len(windows)
    step = step_of_events(trace, windows)
    on_device = trace.device == device
    kernels = trace.category_mask(Category.KERNEL) & on_device
    memcpy = trace.category_mask(Category.MEMCPY) & on_device
    memset = trace.category_mask(Category.MEMSET) & on_device
    activity = kernels | memcpy | memset
    comm = comm_kernel_mask(trace) & on_device
    pageable = memcpy & trace.name_mask(lambda name: "Pageable" in name)
    pinned = memcpy & trace.name_mask(lambda name: "Pinned" in name)
    direction = {d: memcpy & _names_containing(trace, d) for d in _DIRECTIONS}
    other_copy = memcpy & ~(direction["HtoD"] | direction["DtoH"] | direction["DtoD"])
    tensor_core = kernels & trace.name_mask(lambda name: TENSOR_CORE_KERNEL.search(name) is not None)

    kernel_ns = _grouped(trace, kernels, step, n)
    comm_ns = _grouped(trace, comm, step, n)
    busy_ns = _grouped(trace, activity, step, n)
    memset_ns = _grouped(trace, memset, step, n)
    copy_ns = {d: _grouped(trace, direction[d], step, n) for d in _DIRECTIONS}
    copy_ns["other"] = _grouped(trace, other_copy, step, n)
    pageable_ns, pinned_ns = _grouped(trace, pageable, step, n), _grouped(trace, pinned, step, n)
    ones = np.ones(len(trace), dtype=np.int64)
    copies = _sum_by_step(ones, step, memcpy, n)
    copy_bytes = _sum_by_step(np.maximum(trace.nbytes, 0), step, memcpy, n)
    n_kernels = _sum_by_step(ones, step, kernels, n)
    n_short = _sum_by_step(ones, step, kernels & (trace.dur_ns < short_kernel_ns), n)
    kernel_sum = _sum_by_step(trace.dur_ns, step, kernels, n)
    tc_sum = _sum_by_step(trace.dur_ns, step, tensor_core, n)
    host_wait = _idle_gaps(trace, activity, step, n)

    # Host syncs: attributed to the step they ran in; cuda_sync events to their launcher's step.
    syncs = sync_call_mask(trace)
    syncs &= (trace.device < 0) | on_device
    sync_step = np.where(trace.category_mask(Category.CUDA_SYNC), step, window_of(trace.ts_ns, windows))
    sync_index = np.flatnonzero(syncs & (sync_step >= 0))
    sync_source = np.where(trace.cat[sync_index] == int(Category.CUDA_SYNC), launcher(trace)[sync_index], sync_index)
    page_index = np.flatnonzero(pageable & (step >= 0))
    page_source = launcher(trace)[page_index]

    result = []
    for k, window in enumerate(windows):
        duration = max(window.duration_ns, 1)
        idle = max(window.duration_ns - int(busy_ns[k]), 0)
        wait = min(int(host_wait[k]), idle)
        mine_sync = sync_step[sync_index] == k
        mine_page = step[page_index] == k
        result.append(
            GpuStepStats(
                step=window,
                device=device,
                kernel_ns=int(kernel_ns[k]),
                comm_ns=int(comm_ns[k]),
                memcpy=MemcpyTime(
                    htod_ns=int(copy_ns["HtoD"][k]), dtoh_ns=int(copy_ns["DtoH"][k]), dtod_ns=int(copy_ns["DtoD"][k]),
                    other_ns=int(copy_ns["other"][k]), pageable_ns=int(pageable_ns[k]), pinned_ns=int(pinned_ns[k]),
                    count=int(copies[k]), bytes=int(copy_bytes[k]),
                ),
                memset_ns=int(memset_ns[k]),
                busy_ns=int(busy_ns[k]),
                idle_ns=idle,
                idle_host_wait_ns=wait,
                idle_other_ns=idle - wait,
                utilization=min(int(kernel_ns[k]) / duration, 1.0),
                kernels=int(n_kernels[k]),
                short_kernels=int(n_short[k]),
                tensor_core_ns=int(tc_sum[k]),
                kernel_sum_ns=int(kernel_sum[k]),
                syncs=int(mine_sync.sum()),
                sync_ns=int(trace.dur_ns[sync_index[mine_sync]].sum()),
                pageable_copies=int(mine_page.sum()),
                pageable_bytes=int(np.maximum(trace.nbytes[page_index[mine_page]], 0).sum()),
                sync_causes=_causes(trace, sync_source[mine_sync], trace.dur_ns[sync_index[mine_sync]]),
                pageable_causes=_causes(trace, page_source[mine_page], trace.dur_ns[page_index[mine_page]]),
                short_kernel_threshold_ns=short_kernel_ns,
            )
        )
    return result
