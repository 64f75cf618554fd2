"""Which of the script's modules the step clock times as the forward pass, found without global
module hooks (they send every module call down torch's slow path, stop torch.compile from
compiling, and trip its guards when removed).

The model is what owns the parameters being trained. At the first backward (the leaves of its
autograd graph) or optimizer step (the optimizer's parameters), perfdoctor looks once through the
live `nn.Module`s (one `gc.get_objects()` pass, outside the steady state) for the modules that own
those parameters, and climbs to the outermost module holding each: the model, or the wrapper the
script calls (`torch.compile`'s OptimizedModule, DistributedDataParallel). Only those get hooks. A
deep copy (an EMA or teacher model) owns other tensors: it is not timed as the model.

The outermost owner is not always what the loop calls: a LightningModule's `training_step` calls
`self.backbone(x)`, never the LightningModule itself. For a few steps (DISCOVERY_STEPS), a hooked
module that never ran while the step ran a backward hands its hooks down to its children that own
trained parameters (never into a compiled module: an OptimizedModule is timed from outside), and a
module seen only inside another timed module's forward loses its hooks. Then discovery ends for
good, whatever it found: its cost is bounded even when the script never trains.

A script with no backward and no optimizer (inference over a DataLoader) gets hooks on the
outermost modules that own any parameter, after its first batch-step.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .invisible import InvisibleHook, InvisibleHooks

DISCOVERY_STEPS = 4  # steps after the first discovery during which hooks may move to children
MAX_SCANS = 4  # gc passes at most (new modules after the first pass: a GAN's second model, say)


@dataclass(eq=False)
class Timed:
    """A hooked module, and how it ran in the current step."""

    ref: weakref.ref
    name: str
    top: bool = False  # called outside any other timed module's forward
    nested: bool = False  # called inside one
    settled: bool = False  # seen at top level: keeps its hooks


class PreHook(InvisibleHook):
    __slots__ = ("on_call", "timed")

    def __init__(self, on_call: Callable[[Timed], None], timed: Timed) -> None:
        self.on_call = on_call
        self.timed = timed

    def __call__(self, module: Any, args: Any) -> None:
        import torch.compiler

        if torch.compiler.is_compiling():  # traced by dynamo: nothing to trace
            return
        self.on_call(self.timed)


class PostHook(InvisibleHook):
    __slots__ = ("on_return",)

    def __init__(self, on_return: Callable[[], None]) -> None:
        self.on_return = on_return

    def __call__(self, module: Any, args: Any, output: Any) -> None:
        import torch.compiler

        if torch.compiler.is_compiling():
            return
        self.on_return()


def leaf_tensors(roots: Iterable[Any]) -> list[Any]:
    """The leaf tensors (parameters) an autograd graph accumulates gradients into."""
    nodes = [getattr(t, "grad_fn", None) for t in roots]
    stack = [node for node in nodes if node is not None]
    seen = {id(node): node for node in stack}
    leaves = []
    while stack:
        node = stack.pop()
        for next_node, _ in getattr(node, "next_functions", ()):
            if next_node is None or id(next_node) in seen:
                continue
            seen[id(next_node)] = next_node
            variable = getattr(next_node, "variable", None)
            if variable is not None:
                leaves.append(variable)
            else:
                stack.append(next_node)
    return leaves


def is_compiled_wrapper(module: Any) -> bool:
    return "_orig_mod" in getattr(module, "_modules", {}) and type(module).__name__ == "OptimizedModule"


def live_modules() -> list[Any]:
    """Every nn.Module alive (read by type, never by isinstance: no attribute of a lazy object is
    touched, so nothing warns or imports)."""
    import torch.nn as nn

    is_module: dict[type, bool] = {}
    found = []
    for obj in gc.get_objects():
        cls = type(obj)
        known = is_module.get(cls)
        if known is None:
            known = is_module[cls] = isinstance(cls, type) and issubclass(cls, nn.Module)
        if known:
            found.append(obj)
    return found


class TopModules:
    def __init__(self, hooks: InvisibleHooks, on_call: Callable[[Timed], None], on_return: Callable[[], None]) -> None:
        self._hooks = hooks
        self._on_call = on_call
        self._on_return = on_return
        self._trained: dict[int, weakref.ref] = {}  # id -> the parameter, for the params trained so far
        self._timed: dict[int, Timed] = {}
        self._parents: dict[int, list[Any]] = {}  # id(module) -> weakrefs of its parents, from the last scan
        self._owners: dict[int, list[weakref.ref]] = {}  # id(param) -> modules holding it directly
        self._scans = 0
        self.started = False
        self.done = False
        self._steps_left = DISCOVERY_STEPS
        self.names: list[str] = []  # of the modules timed when discovery ended

    # -- what is trained ---------------------------------------------------------------------

    def trained(self, params: Iterable[Any]) -> bool:
        """Note parameters seen trained; True when some are new (then call `place`)."""
        new = False
        for param in params:
            if id(param) not in self._trained or self._trained[id(param)]() is not param:
                try:
                    self._trained[id(param)] = weakref.ref(param)
                except TypeError:
                    continue
                new = True
        return new

    def place(self, all_parameters: bool = False) -> None:
        """Hook the outermost modules owning the trained parameters (or, for inference, any)."""
        self.started = True
        modules = self._scan(force=all_parameters)
        if all_parameters:
            owners = [m for m in modules if any(p is not None for p in m._parameters.values())]
        else:
            owners = self._owners_of_trained()
            if any(self._missing()) and self._scans < MAX_SCANS:
                self._scan(force=True)
                owners = self._owners_of_trained()
        for root in self._roots(owners):
            self._attach(root)
        if not all_parameters:  # hooks placed for inference on modules that are not trained go
            for timed in list(self._timed.values()):
                module = timed.ref()
                if module is not None and not self._owns_trained(module):
                    self._detach(module)

    # -- each step ---------------------------------------------------------------------------

    def step_ended(self, ran_backward: bool) -> None:
        if self.done or not self.started:
            return
        for key, timed in list(self._timed.items()):
            module = timed.ref()
            if module is None:
                self._timed.pop(key, None)
                continue
            if timed.top:
                timed.settled = True
            elif timed.nested and not timed.settled:
                self._detach(module)
            elif ran_backward and not timed.settled and not is_compiled_wrapper(module):
                for child in module._modules.values():
                    if child is not None and self._owns_trained(child):
                        self._attach(child)
            timed.top = timed.nested = False
        self._steps_left -= 1
        if self._steps_left <= 0:
            self.finish()

    def finish(self) -> None:
        """Discovery is over: hooks stay where they are, nothing is looked at again."""
        self.done = True
        self.names = sorted({timed.name for timed in self._timed.values() if timed.ref() is not None})
        self._parents = {}
        self._owners = {}

    def uninstall(self) -> None:
        self._timed = {}

    # -- internals ---------------------------------------------------------------------------

    def _attach(self, module: Any) -> None:
        if id(module) in self._timed and self._timed[id(module)].ref() is module:
            return
        timed = Timed(ref=weakref.ref(module), name=type(module).__qualname__)
        self._timed[id(module)] = timed
        self._hooks.attach(module, PreHook(self._on_call, timed), PostHook(self._on_return))

    def _detach(self, module: Any) -> None:
        self._timed.pop(id(module), None)
        self._hooks.detach(module)

    def _scan(self, force: bool = False) -> list[Any]:
        if self._scans and not force:
            return [m for refs in self._owners.values() for r in refs if (m := r()) is not None]
        self._scans += 1
        modules = live_modules()
        self._parents = {}
        self._owners = {}
        for module in modules:
            for child in module._modules.values():
                if child is not None:
                    self._parents.setdefault(id(child), []).append(weakref.ref(module))
            for param in module._parameters.values():
                if param is not None:
                    self._owners.setdefault(id(param), []).append(weakref.ref(module))
        return modules

    def _missing(self) -> list[int]:
        return [key for key in self._trained if key not in self._owners]

    def _owners_of_trained(self) -> list[Any]:
        owners: list[Any] = []
        for key, ref in self._trained.items():
            if ref() is None:
                continue
            owners.extend(m for r in self._owners.get(key, []) if (m := r()) is not None)
        return owners

    def _roots(self, owners: list[Any]) -> list[Any]:
        roots: dict[int, Any] = {}
        for owner in owners:
            stack, seen = [owner], {id(owner)}
            while stack:
                module = stack.pop()
                parents = [p for r in self._parents.get(id(module), []) if (p := r()) is not None]
                if not parents:
                    roots[id(module)] = module
                for parent in parents:
                    if id(parent) not in seen:
                        seen.add(id(parent))
                        stack.append(parent)
        return list(roots.values())

    def _owns_trained(self, module: Any) -> bool:
        trained = self._trained
        return any(id(p) in trained and trained[id(p)]() is p for p in module.parameters())
