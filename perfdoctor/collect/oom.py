"""An out-of-memory error raised in the script: what kind it is, and where in the step it happened
(the phase, the innermost nn.Module running, the script's line), read from its traceback while the
frames are still alive."""

from __future__ import annotations

import linecache
from types import TracebackType
from typing import Any

MAX_MESSAGE = 4000
CUDA_TEXTS = ("CUDA out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")
HOST_TEXTS = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory")
NOT_USER = ("torch", "perfdoctor", "runpy", "importlib", "typing", "contextlib", "functools")


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def oom_kind(error: BaseException) -> str | None:
    """"cuda" for torch.cuda.OutOfMemoryError (or an allocation failure inside cuBLAS/cuDNN),
    "host" for MemoryError and torch's CPU allocator failing, else None."""
    for link in _chain(error):
        names = {cls.__name__ for cls in type(link).__mro__}
        text = str(link)
        if "OutOfMemoryError" in names and type(link).__module__.split(".")[0] == "torch" and "MPS" not in text:
            return "cuda"  # torch.OutOfMemoryError (torch.cuda.OutOfMemoryError is the same class)
        if any(marker in text for marker in CUDA_TEXTS):
            return "cuda"
        if isinstance(link, MemoryError) or any(marker in text for marker in HOST_TEXTS):
            return "host"
    return None


def _module_of(frame: Any) -> str:
    return str(frame.f_globals.get("__name__", ""))


def _phase_of(module: str, function: str) -> str | None:
    if module.startswith("torch.optim"):
        return "optimizer"
    if module in ("torch.autograd", "torch._tensor", "torch.autograd.graph") and function in ("backward", "grad", "_engine_run_backward"):
        return "backward"
    if module == "torch.nn.modules.module" and function in ("_call_impl", "_wrapped_call_impl"):
        return "forward"
    if module.startswith("torch.utils.data"):
        return "dataloader"
    return None


def where_it_failed(tb: TracebackType | None) -> dict[str, Any]:
    """{"phase", "module_type", "module_path", "source"} from a traceback: the phase of the
    outermost torch frame that names one (a forward recomputed inside backward is backward), the
    innermost module whose forward was running, and the innermost line outside torch."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    phase = None
    modules: list[Any] = []
    source = None
    for frame in frames:
        name, function = _module_of(frame), frame.f_code.co_name
        found = _phase_of(name, function)
        if phase is None and found is not None:
            phase = found
        if found == "forward":
            owner = frame.f_locals.get("self")
            if owner is not None:
                modules.append(owner)
        if not name.split(".")[0] in NOT_USER and "<frozen" not in frame.f_code.co_filename:
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
            source = f"{frame.f_code.co_filename}:{frame.f_lineno} in {function}" + (f": {line}" if line else "")
    out: dict[str, Any] = {"phase": phase or "other", "module_type": None, "module_path": None, "source": source}
    if modules:
        inner, top = modules[-1], modules[0]
        out["module_type"] = type(inner).__name__
        out["module_path"] = _path_in(top, inner)
    return out


def _path_in(top: Any, inner: Any) -> str | None:
    """`inner`'s dotted name inside `top` (e.g. "encoder.layers.3.attn"), as named_modules gives it."""
    if inner is top:
        return type(top).__name__
    try:
        for name, module in top.named_modules():
            if module is inner:
                return f"{type(top).__name__}.{name}"
    except Exception:  # a module whose children cannot be walked: the type alone will do
        return None
    return None


def short_message(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ..."
