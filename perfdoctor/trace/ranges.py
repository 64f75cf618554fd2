"""What a host range is: a profiler step, an annotation, or an operator.

Kineto marks ``record_function`` ranges (``ProfilerStep#N``, ``enumerate(DataLoader)#...``,
``Optimizer.step#...``) as ``user_annotation``, but older PyTorch wrote them as ``cpu_op`` /
``Operator`` like real ops. *Operators* are therefore CPU ops minus those well-known
annotation names, so a ProfilerStep never counts as the op that encloses everything.
"""

from __future__ import annotations

import re

import numpy as np

from perfdoctor.trace.categories import Category
from perfdoctor.trace.model import STRING_ID_BASE, Trace
from perfdoctor.trace.nesting import parents

PROFILER_STEP = re.compile(r"ProfilerStep#(\d+)$")
BACKWARD_PREFIX = "autograd::engine::evaluate_function:"
#: An autograd graph node run by the engine, named as PyTorch 1.x traces name it with no
#: ``evaluate_function:`` range around it (``CudnnConvolutionBackward``, ``AddmmBackward0``,
#: ``torch::autograd::AccumulateGrad``); later versions nest the same names inside one.
AUTOGRAD_NODE = re.compile(
    r"^(?:torch::autograd::)?(?:[A-Za-z_][A-Za-z0-9_]*Backwards?\d*|AccumulateGrad|GraphRoot)$"
)
DATALOADER_PREFIX = "enumerate(DataLoader)#"
OPTIMIZER_PREFIXES = ("Optimizer.step#", "Optimizer.zero_grad#")
#: Categories of ranges recorded on CPU threads (not runtime calls, which are not model code).
HOST_RANGES = (Category.CPU_OP, Category.USER_ANNOTATION, Category.PYTHON_FUNCTION)
_ANNOTATION_PREFIXES = ("ProfilerStep#", DATALOADER_PREFIX, *OPTIMIZER_PREFIXES)


def _cached(trace: Trace, key: str, compute) -> np.ndarray:  # type: ignore[no-untyped-def]
    value = trace.derived.get(key)
    if value is None:
        value = trace.derived[key] = compute()
    return value


def host_ranges(trace: Trace) -> np.ndarray:
    """CPU ops, annotations and Python functions on real (numeric) threads."""
    return _cached(
        trace, "host_ranges",
        lambda: trace.category_mask(*HOST_RANGES) & (trace.pid > STRING_ID_BASE) & (trace.tid > STRING_ID_BASE),
    )


def is_backward_name(name: str) -> bool:
    """An autograd engine range: ``autograd::engine::evaluate_function: ...`` or a bare node."""
    return name.startswith(BACKWARD_PREFIX) or AUTOGRAD_NODE.match(name) is not None


def backward_mask(trace: Trace) -> np.ndarray:
    """Host ranges that are autograd engine work, on any thread."""
    return _cached(trace, "backward_ranges", lambda: host_ranges(trace) & trace.name_mask(is_backward_name))


def profiler_step_mask(trace: Trace) -> np.ndarray:
    return _cached(
        trace, "profiler_steps",
        lambda: host_ranges(trace) & trace.name_mask(lambda name: PROFILER_STEP.match(name) is not None),
    )


def operator_mask(trace: Trace) -> np.ndarray:
    """CPU ops that are operators (aten ops, autograd nodes, custom ops), not annotations."""
    return _cached(
        trace, "operators",
        lambda: trace.category_mask(Category.CPU_OP) & ~trace.name_mask(lambda n: n.startswith(_ANNOTATION_PREFIXES)),
    )


def op_parents(trace: Trace) -> np.ndarray:
    """parents() among operators, shared by the operator, host-overhead and cause analyses."""
    return _cached(trace, "op_parents", lambda: parents(trace, operator_mask(trace)))
