"""Forward hooks that the script cannot see: perfdoctor's hooks on the user's modules leave out of
everything the script does with those modules.

A module's hooks live in its `__dict__`, so by default they travel with it: `torch.save(model)`
and pickling for multiprocessing would pickle perfdoctor's hook (and fail, or make the file need
perfdoctor to load), `copy.deepcopy(model)` (an EMA or teacher model) would copy it and be timed as
the model, and `torch.jit.script(model)` would try to compile it. So, for the run:

- `nn.Module.__getstate__` (and the `__getstate__` of any class of a hooked module that defines its
  own, such as DistributedDataParallel) returns the state without perfdoctor's hook entries: pickle,
  `torch.save`, `copy.copy` and `copy.deepcopy` all go through it. The module itself keeps them.
- `torch.jit.script(module)` runs with perfdoctor's hooks taken off the module tree, then put back
  in their places.
- Each hook first asks `torch.compiler.is_compiling()`: when dynamo traces a hooked module (a model
  compiled after it was hooked), the hook folds to nothing: no graph break, no guard.

Hooks are told apart by their class (`InvisibleHook`), not by a registry, so a module hooked by any
perfdoctor collector is covered.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

from .patching import Patches

HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks")
# Dicts keyed by the same handle ids, with flags for the hooks in HOOK_DICTS.
FLAG_DICTS = ("_forward_hooks_always_called", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")


class InvisibleHook:
    """Base class of every hook perfdoctor attaches to a user's module."""

    __slots__ = ()


def _ours(hooks: Any) -> list[Any]:
    if not isinstance(hooks, dict) or not hooks:
        return []
    return [key for key, hook in hooks.items() if isinstance(hook, InvisibleHook)]


def strip(state: dict[str, Any]) -> dict[str, Any]:
    """A module's state (its `__dict__` or a copy) without perfdoctor's hook entries. The same
    object when there are none; else a new dict holding new hook dicts (the module keeps its own)."""
    ours: set[Any] = set()
    for key in HOOK_DICTS:
        ours.update(_ours(state.get(key)))
    if not ours:
        return state
    stripped = dict(state)
    for key in (*HOOK_DICTS, *FLAG_DICTS):
        hooks = stripped.get(key)
        if isinstance(hooks, dict) and any(k in ours for k in hooks):
            stripped[key] = type(hooks)((k, v) for k, v in hooks.items() if k not in ours)
    return stripped


class InvisibleHooks:
    """Attaches forward pre/post hooks to modules and keeps them out of the script's sight."""

    def __init__(self) -> None:
        self._patches = Patches()
        self._covered: set[type] = set()
        self._handles: dict[tuple[int, str], tuple[weakref.ref, list[Any]]] = {}

    def install(self) -> None:
        import torch.jit
        import torch.nn as nn

        self._patches.wrap(nn.Module, "__getstate__", _stripping)
        self._covered.add(nn.Module)
        self._patches.wrap(torch.jit, "script", self._scripting)

    def uninstall(self) -> None:
        for ref, handles in list(self._handles.values()):
            for handle in handles:
                handle.remove()
        self._handles = {}
        self._patches.restore()
        self._covered = set()

    def attach(self, module: Any, pre: InvisibleHook, post: InvisibleHook | None = None, owner: str = "clock") -> None:
        """A forward pre-hook (and post-hook, always called) on `module`, once per owner."""
        key = (id(module), owner)
        if key in self._handles and self._handles[key][0]() is module:
            return
        self._cover(type(module))
        handles = [module.register_forward_pre_hook(pre)]
        if post is not None:
            handles.append(module.register_forward_hook(post, always_call=True))
        self._handles[key] = (weakref.ref(module), handles)

    def detach(self, module: Any, owner: str = "clock") -> None:
        entry = self._handles.pop((id(module), owner), None)
        if entry is not None:
            for handle in entry[1]:
                handle.remove()

    def attached(self, owner: str = "clock") -> list[Any]:
        modules = [ref() for (_, who), (ref, _) in self._handles.items() if who == owner]
        return [module for module in modules if module is not None]

    def _cover(self, cls: type) -> None:
        """The nearest class in `cls`'s MRO that defines `__getstate__` strips our hooks too."""
        for owner in cls.__mro__:
            if "__getstate__" in vars(owner):
                if owner not in self._covered:
                    self._patches.wrap(owner, "__getstate__", _stripping)
                    self._covered.add(owner)
                return

    def _scripting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        def script(obj: Any, *args: Any, **kwargs: Any) -> Any:
            import torch.nn as nn

            if not hooks._handles or not isinstance(obj, nn.Module):
                return original(obj, *args, **kwargs)
            saved = []
            for module in obj.modules():
                ours = [k for key in HOOK_DICTS for k in _ours(module.__dict__.get(key))]
                for key in (*HOOK_DICTS, *FLAG_DICTS):
                    table = module.__dict__.get(key)
                    if ours and isinstance(table, dict) and any(k in table for k in ours):
                        saved.append((table, list(table.items())))
                        for k in ours:
                            table.pop(k, None)
            try:
                return original(obj, *args, **kwargs)
            finally:
                for table, items in saved:  # back in their places, in their order
                    table.clear()
                    table.update(items)

        return script


def _stripping(original: Callable[..., Any]) -> Callable[..., Any]:
    def __getstate__(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = original(self, *args, **kwargs)
        return strip(state) if isinstance(state, dict) else state

    return __getstate__
