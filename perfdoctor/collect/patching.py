"""Wrapping methods of torch's classes (and functions of its modules) for the whole process, and
putting every original back: the one place collectors patch anything.

    patches = Patches()
    patches.wrap(torch.optim.Optimizer, "zero_grad", make_timed)   # make_timed(original) -> wrapper
    ...
    patches.restore()

The attribute is taken from the owner's own `__dict__`, so a class's wrapper replaces exactly what
that class defines (not an inherited method), and restoring puts that exact object back. The
wrapper looks like the original (`functools.update_wrapper`: name, docstring, `__wrapped__`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable


class Patches:
    def __init__(self) -> None:
        self._applied: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, make_wrapper: Callable[[Any], Callable[..., Any]]) -> None:
        original = vars(owner)[name]
        wrapper = make_wrapper(original)
        functools.update_wrapper(wrapper, original)
        setattr(owner, name, wrapper)
        self._applied.append((owner, name, original))

    def restore(self) -> None:
        """Put every original back, last patched first (safe to call more than once)."""
        applied, self._applied = self._applied, []
        for owner, name, original in reversed(applied):
            setattr(owner, name, original)

    def __len__(self) -> int:
        return len(self._applied)
