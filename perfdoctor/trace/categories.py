"""Event categories: the many spellings of Kineto's ``cat`` field mapped to one small enum.

PyTorch 1.8-1.9 wrote capitalised names (``Operator``, ``Kernel``, ``Runtime``, ``Memcpy``,
``Memset``); later versions write ``cpu_op``, ``kernel``, ``cuda_runtime``, ``gpu_memcpy``... Both
spellings (compared case-insensitively) map to the same :class:`Category`.
"""

from __future__ import annotations

from enum import IntEnum


class Category(IntEnum):
    """What a complete event is; stored as int8 in :attr:`Trace.cat`."""

    OTHER = 0
    CPU_OP = 1
    USER_ANNOTATION = 2
    PYTHON_FUNCTION = 3
    KERNEL = 4
    MEMCPY = 5
    MEMSET = 6
    CUDA_RUNTIME = 7
    CUDA_DRIVER = 8
    CUDA_SYNC = 9
    GPU_USER_ANNOTATION = 10
    TRACE = 11  # the profiler's own span ("PyTorch Profiler (0)")
    OVERHEAD = 12  # profiler overhead ("CUPTI Overhead", "Activity Buffer Request")


_BY_NAME: dict[str, Category] = {
    "cpu_op": Category.CPU_OP,
    "operator": Category.CPU_OP,
    "user_annotation": Category.USER_ANNOTATION,
    "python_function": Category.PYTHON_FUNCTION,
    "python function": Category.PYTHON_FUNCTION,
    "kernel": Category.KERNEL,
    "gpu_memcpy": Category.MEMCPY,
    "memcpy": Category.MEMCPY,
    "gpu_memset": Category.MEMSET,
    "memset": Category.MEMSET,
    "cuda_runtime": Category.CUDA_RUNTIME,
    "runtime": Category.CUDA_RUNTIME,
    "cuda_driver": Category.CUDA_DRIVER,
    "driver": Category.CUDA_DRIVER,
    "cuda_sync": Category.CUDA_SYNC,
    "gpu_user_annotation": Category.GPU_USER_ANNOTATION,
    "trace": Category.TRACE,
    "overhead": Category.OVERHEAD,
}

#: Work that runs on the host (a CPU thread).
HOST_CATEGORIES = frozenset(
    {Category.CPU_OP, Category.USER_ANNOTATION, Category.PYTHON_FUNCTION, Category.CUDA_RUNTIME, Category.CUDA_DRIVER}
)
#: Work that occupies the device (what GPU busy time is made of).
DEVICE_ACTIVITY_CATEGORIES = frozenset({Category.KERNEL, Category.MEMCPY, Category.MEMSET})
#: Host calls that launch device work and carry its correlation id.
LAUNCH_CATEGORIES = frozenset({Category.CUDA_RUNTIME, Category.CUDA_DRIVER})


def category_of(cat: str) -> Category:
    """The Category of a raw ``cat`` string; unknown or empty strings are OTHER."""
    return _BY_NAME.get(cat.strip().lower(), Category.OTHER)
