"""Per-window peaks of torch's CUDA caching allocator, without changing what the script sees.

The allocator keeps one "peak" per statistic (`max_memory_allocated`, the `*.peak` entries of
`memory_stats`, the peak column of `memory_summary`), set back by `reset_peak_memory_stats`. To
know the peak of each stretch of steps, perfdoctor reads the statistics and resets the peaks at
a step end. A script that reads its own peaks (many log `max_memory_allocated()`) must still see
the peaks since *its* last reset, as if perfdoctor had never reset anything: so every reset of
ours first folds the peaks it clears into a shadow, and the two functions every peak read and
reset of torch.cuda goes through (`torch._C._cuda_memoryStats`, `torch._C._cuda_resetPeakMemoryStats`)
are wrapped, once per process, to report max(allocator's peak, shadow) and to clear the shadow
when the script resets. The wrapper stays for the life of the process (the script's own atexit
code, or the next test in a pytest process, may still read peaks); it never changes a value that
is not a peak.

Without those two functions (a CPU build, a torch that renamed them), there are no per-window
peaks: `window()` returns None and nothing is wrapped.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

STATS = "_cuda_memoryStats"
RESET = "_cuda_resetPeakMemoryStats"

Path = tuple[str, ...]


def _peaks(stats: dict[str, Any], prefix: Path = ()) -> list[tuple[Path, int]]:
    """Every (path, value) of a `peak` entry in the allocator's nested statistics."""
    found: list[tuple[Path, int]] = []
    for key, value in stats.items():
        if isinstance(value, dict):
            found += _peaks(value, (*prefix, str(key)))
        elif key == "peak" and isinstance(value, int):
            found.append((prefix, value))
    return found


def _raise_peaks(stats: dict[str, Any], shadow: dict[Path, int]) -> dict[str, Any]:
    for path, value in shadow.items():
        node: Any = stats
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get("peak"), int) and node["peak"] < value:
            node["peak"] = value
    return stats


class PeakShadow:
    """The peaks perfdoctor's resets cleared since the script's own last reset, per device."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.read: Callable[[int], dict[str, Any]] = getattr(module, STATS)
        self.reset: Callable[[int], None] = getattr(module, RESET)
        self._shadow: dict[int, dict[Path, int]] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        shadow = self

        def memory_stats(device: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
            stats = shadow.read(device, *args, **kwargs)
            with shadow._lock:
                kept = dict(shadow._shadow.get(_index(device), {}))
            return _raise_peaks(stats, kept) if kept and isinstance(stats, dict) else stats

        def reset_peak_memory_stats(device: int, *args: Any, **kwargs: Any) -> None:
            with shadow._lock:  # atomic with window(): a fold of ours never outlives the script's reset
                shadow._shadow.pop(_index(device), None)
                return shadow.reset(device, *args, **kwargs)

        wrappers: tuple[tuple[str, Any, Any], ...] = (
            (STATS, memory_stats, self.read), (RESET, reset_peak_memory_stats, self.reset),
        )
        for name, wrapper, original in wrappers:
            wrapper.__name__ = getattr(original, "__name__", name)
            wrapper.__doc__ = getattr(original, "__doc__", None)
            wrapper.__wrapped__ = original
            wrapper._perfdoctor_peak_shadow = self
            setattr(self.module, name, wrapper)

    def window(self, device: int) -> dict[str, Any]:
        """The allocator's statistics now, with the peaks of the window since the last call;
        then the peaks start again (the script's view of them is kept)."""
        with self._lock:
            stats = self.read(device)
            kept = self._shadow.setdefault(_index(device), {})
            for path, value in _peaks(stats):
                if value > kept.get(path, -1):
                    kept[path] = value
            self.reset(device)
        return stats


def _index(device: Any) -> int:
    return device if isinstance(device, int) else int(getattr(device, "index", None) or 0)


_installed: dict[int, PeakShadow] = {}
_install_lock = threading.Lock()


def peak_shadow(module: Any) -> PeakShadow | None:
    """The process's PeakShadow over `module` (torch._C), installed on first use; None when the
    module lacks the allocator's statistics."""
    with _install_lock:
        known = _installed.get(id(module))
        if known is not None:
            return known
        current = getattr(module, STATS, None)
        existing = getattr(current, "_perfdoctor_peak_shadow", None)
        if isinstance(existing, PeakShadow):  # installed by an earlier import of this module
            _installed[id(module)] = existing
            return existing
        if not callable(current) or not callable(getattr(module, RESET, None)):
            return None
        shadow = PeakShadow(module)
        shadow.install()
        _installed[id(module)] = shadow
        return shadow
