"""The step clock: cuts a training run into steps and times each step's phases.

A step ends when the primary optimizer's `step()` returns (the first optimizer seen to step:
in a GAN loop the second optimizer's step belongs to the same iteration). Until an optimizer
steps, each DataLoader batch is a step: it runs from one `next()` call to the next. When the
first optimizer step arrives, the batch-steps seen so far are folded into one warm-up step.

Phases, measured on the training thread only (DataParallel replicas run forward in threads):
- dataloader: time inside DataLoader `next()` (reported by the DataLoader probe);
- forward: time inside top-level `nn.Module` calls (forward pre/post hooks, depth-counted),
  except a forward that runs inside backward (activation checkpointing recomputes). Global module
  hooks send every module call down torch's slow path, so they only find the top-level modules
  during the first steps; then hooks on those modules alone replace them (a model first called at
  top level later on, say for evaluation, counts as "other");
- backward: time inside `torch.autograd.backward` / `torch.autograd.grad`;
- optimizer: `Optimizer.step()`, `Optimizer.zero_grad()` and `Module.zero_grad()`;
- other: the rest of the step. Two parts of it are timed on their own: the gap between a batch
  arriving and the forward starting (`before_forward`: per-sample work done in the loop) and the
  gap between forward and backward (`loss`: the loss computed outside the model).
`overhead` is perfdoctor's own time inside a step (trace export); analysis subtracts it.

Everything here runs inside the user's training step: keep it to a clock read and a few
integer additions per event. Ended steps wait in compact columns until the stream writer's
thread drains them (`drain`), so memory stays flat however many steps the job runs.
"""

from __future__ import annotations

import threading
import time
import weakref
from array import array
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from .patching import Patches
from .writer import fresh_lock_in_forks

DISCOVERY_STEPS = 3  # steps during which global module hooks find the top-level modules
MODE_OPTIMIZER = "optimizer"
MODE_BATCH = "batch"


class StopRun(BaseException):
    """Raised into the user's script to end it cleanly at --max-steps.

    A BaseException, like KeyboardInterrupt, so that `except Exception:` in the script does not
    swallow it.
    """


@dataclass
class StepColumns:
    """Per-step columns, in ns relative to the clock's origin (compact: 8 bytes per value)."""

    start_ns: array = field(default_factory=lambda: array("q"))
    end_ns: array = field(default_factory=lambda: array("q"))
    dataloader_ns: array = field(default_factory=lambda: array("q"))
    forward_ns: array = field(default_factory=lambda: array("q"))
    backward_ns: array = field(default_factory=lambda: array("q"))
    optimizer_ns: array = field(default_factory=lambda: array("q"))
    overhead_ns: array = field(default_factory=lambda: array("q"))
    before_forward_ns: array = field(default_factory=lambda: array("q"))
    loss_ns: array = field(default_factory=lambda: array("q"))
    batches: array = field(default_factory=lambda: array("q"))

    def names(self) -> list[str]:
        return list(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.end_ns)

    def to_json(self) -> dict[str, list[int]]:
        return {name: getattr(self, name).tolist() for name in self.names()}

    def take(self) -> dict[str, list[int]]:
        """Remove and return the complete steps held (the writer's thread calls this while the
        training thread appends: `end_ns` is appended last, so its length counts whole steps)."""
        count = len(self.end_ns)
        taken = {}
        for name in self.names():
            column = getattr(self, name)
            taken[name] = column[:count].tolist()
            del column[:count]
        return taken


def describe_optimizer(optimizer: Any) -> dict[str, Any]:
    """The optimizer's class and the settings that decide how its step runs (foreach, fused)."""
    defaults = getattr(optimizer, "defaults", {}) or {}
    parameters = [p for group in getattr(optimizer, "param_groups", []) for p in group.get("params", [])]
    return {
        "type": type(optimizer).__qualname__,
        "foreach": defaults.get("foreach"),
        "fused": defaults.get("fused"),
        "parameters": len(parameters),
        "devices": sorted({str(getattr(p, "device", "cpu")).split(":")[0] for p in parameters}),
    }


class StepClock:
    def __init__(self, max_steps: int | None = None) -> None:
        self.origin_ns = perf_counter_ns()
        self.origin_unix_s = time.time()  # the wall time of origin_ns, for timelines
        self.max_steps = max_steps
        self.mode: str | None = None
        self.steps = StepColumns()  # ended steps not yet drained
        self.step_count = 0  # steps ended (since the batch-steps were folded, if they were)
        self._drained = 0  # of those, how many drain() has handed on
        self._drain_lock = threading.Lock()
        fresh_lock_in_forks(self, "_drain_lock")
        self._events: deque[dict[str, Any]] = deque([{"origin_unix_s": self.origin_unix_s}])  # stream records
        self._batch_totals = [0] * 8  # phase sums of the batch-steps so far (folded at the first optimizer step)
        self._first_start_ns: int | None = None
        self._listeners: list[Callable[[int], None]] = []
        self.listener_errors: dict[str, str] = {}
        self._thread = threading.get_ident()
        self._primary_optimizer: int | None = None
        self.optimizers: dict[int, dict[str, Any]] = {}  # what each optimizer is, recorded once
        self._hook_handles: list[Any] = []
        self._global_forward_handles: list[Any] = []
        self._top_modules: dict[int, Any] = {}  # id -> weakref of modules called at top level
        self._patches = Patches()
        self._reset_step(None)
        self._forward_depth = 0
        self._forward_t0 = 0
        self._backward_depth = 0
        self._backward_t0 = 0
        self._optimizer_t0 = 0
        self._pending_epoch_start: dict[int, int] = {}
        self._last_phase = ""
        self._last_phase_end = 0
        self.stop_requested = False

    # -- lifecycle ---------------------------------------------------------------------------

    def add_listener(self, on_step_end: Callable[[int], None]) -> None:
        """Called with the index of each step that just ended (hot path: keep it cheap)."""
        self._listeners.append(on_step_end)

    def install(self) -> None:
        import torch
        from torch.nn.modules import module as nn_module
        from torch.optim import optimizer as optim_module

        self._hook_handles = [
            optim_module.register_optimizer_step_pre_hook(self._optimizer_pre),
            optim_module.register_optimizer_step_post_hook(self._optimizer_post),
        ]
        self._global_forward_handles = [
            nn_module.register_module_forward_pre_hook(self._forward_pre),
            nn_module.register_module_forward_hook(self._forward_post, always_call=True),
        ]
        self._patches.wrap(torch.autograd, "backward", self._timed_backward)
        self._patches.wrap(torch.autograd, "grad", self._timed_backward)
        self._patches.wrap(torch.optim.Optimizer, "zero_grad", self._timed_zero_grad)
        self._patches.wrap(torch.nn.Module, "zero_grad", self._timed_zero_grad)

    def uninstall(self) -> None:
        for handle in [*self._hook_handles, *self._global_forward_handles]:
            handle.remove()
        self._hook_handles = []
        self._global_forward_handles = []
        self._patches.restore()

    def drain(self) -> list[dict[str, Any]]:
        """The stream records since the last call (mode changes, optimizers, a fold, ended
        steps), forgotten here once handed on. Called by the stream writer's thread."""
        events: list[dict[str, Any]] = []
        with self._drain_lock:
            while self._events:  # popleft is atomic against the training thread's appends
                events.append(self._events.popleft())
            first = self._drained
            taken = self.steps.take()
            self._drained += len(taken["end_ns"])
        if taken["end_ns"]:
            events.append({"steps": {"first": first, **taken}})
        return events

    def finish(self) -> None:
        """Close the step in progress when the run ends (batch mode: the last batch's work)."""
        if self.mode == MODE_BATCH and self._step_open and self._batches:
            self._end_step(perf_counter_ns())

    def now(self) -> int:
        return perf_counter_ns() - self.origin_ns

    # -- reports from the DataLoader probe ---------------------------------------------------

    def epoch_started(self, loader_id: int, t_ns: int) -> None:
        self._pending_epoch_start[loader_id] = t_ns

    def before_batch(self, t_ns: int) -> None:
        if threading.get_ident() != self._thread:
            return
        self._last_phase = ""
        if self.mode == MODE_OPTIMIZER:
            self._open_step(t_ns)
            return
        if self._step_open and self._batches:
            self._end_step(t_ns)
        if self.stop_requested:
            raise StopRun()
        self._open_step(t_ns)
        if self.mode is None:
            self._set_mode(MODE_BATCH)

    def after_batch(self, loader_id: int, t_start_ns: int, wait_ns: int, delivered: bool) -> None:
        if threading.get_ident() != self._thread:
            return
        epoch_start = self._pending_epoch_start.pop(loader_id, None) if delivered else None
        if self.mode == MODE_OPTIMIZER and epoch_start is not None and epoch_start > self._step_start:
            # An epoch began after this step opened: the step starts at the new iterator, and
            # what ran before it (validation, checkpoints, an eval loader's batches) is not the step's.
            self._reset_step(epoch_start)
        self._dataloader_ns += wait_ns
        if not delivered:  # StopIteration: the epoch ended; in batch mode no step is open now
            if self.mode == MODE_BATCH:
                self._step_open = False
                self._batches = 0
            return
        self._batches += 1
        self._phase_ends("batch", t_start_ns + wait_ns)

    def add_overhead(self, ns: int) -> None:
        self._overhead_ns += ns

    # -- hooks -------------------------------------------------------------------------------

    def _optimizer_pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if id(optimizer) not in self.optimizers:
            self.optimizers[id(optimizer)] = described = describe_optimizer(optimizer)
            self._events.append({"optimizer": described})
        if threading.get_ident() == self._thread:
            self._optimizer_t0 = perf_counter_ns()
            self._open_step(self._optimizer_t0)
            self._phase_starts("optimizer", self._optimizer_t0)

    def _optimizer_post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if threading.get_ident() != self._thread:
            return
        now = perf_counter_ns()
        if self._optimizer_t0:
            self._optimizer_ns += now - self._optimizer_t0
            self._optimizer_t0 = 0
        self._phase_ends("optimizer", now)
        if self._primary_optimizer is None:
            self._primary_optimizer = id(optimizer)
            self._fold_batch_steps()
            self._set_mode(MODE_OPTIMIZER)
        if id(optimizer) == self._primary_optimizer:
            self._end_step(now)
            if self.stop_requested:
                raise StopRun()

    def _forward_pre(self, module: Any, args: Any) -> None:
        if self._forward_depth == 0:
            if self._backward_depth or threading.get_ident() != self._thread:
                return
            self._forward_t0 = perf_counter_ns()
            self._open_step(self._forward_t0)
            self._phase_starts("forward", self._forward_t0)
            if self._global_forward_handles and id(module) not in self._top_modules:
                self._top_modules[id(module)] = weakref.ref(module)
        self._forward_depth += 1

    def _forward_post(self, module: Any, args: Any, output: Any) -> None:
        if self._forward_depth == 0:
            return
        self._forward_depth -= 1
        if self._forward_depth == 0:
            now = perf_counter_ns()
            self._forward_ns += now - self._forward_t0
            self._phase_ends("forward", now)

    def _timed_backward(self, original: Callable[..., Any]) -> Callable[..., Any]:
        clock = self

        def backward(*args: Any, **kwargs: Any) -> Any:
            if clock._backward_depth or threading.get_ident() != clock._thread:
                return original(*args, **kwargs)
            clock._backward_depth = 1
            t0 = perf_counter_ns()
            clock._phase_starts("backward", t0)
            try:
                return original(*args, **kwargs)
            finally:
                t1 = perf_counter_ns()
                clock._backward_ns += t1 - t0
                clock._backward_depth = 0
                clock._phase_ends("backward", t1)

        return backward

    def _timed_zero_grad(self, original: Callable[..., Any]) -> Callable[..., Any]:
        clock = self

        def zero_grad(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != clock._thread:
                return original(*args, **kwargs)
            t0 = perf_counter_ns()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = perf_counter_ns() - t0
                clock._optimizer_ns += elapsed
                clock._last_phase_end += elapsed  # transparent to the gap it sits in

        return zero_grad

    # -- internals ---------------------------------------------------------------------------

    def _phase_starts(self, phase: str, t_ns: int) -> None:
        """Charge the gap since the previous phase to the part of `other` it belongs to."""
        previous = self._last_phase
        if previous == "batch" and phase == "forward":
            self._before_forward_ns += t_ns - self._last_phase_end
        elif previous == "forward" and phase == "backward":
            self._loss_ns += t_ns - self._last_phase_end
        self._last_phase = ""

    def _phase_ends(self, phase: str, t_ns: int) -> None:
        self._last_phase = phase
        self._last_phase_end = t_ns

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        self._events.append({"mode": mode})

    _step_start: int
    _dataloader_ns: int

    def _reset_step(self, start: int | None) -> None:
        self._step_open = start is not None
        self._step_start = start or 0
        self._dataloader_ns = 0
        self._forward_ns = 0
        self._backward_ns = 0
        self._optimizer_ns = 0
        self._overhead_ns = 0
        self._before_forward_ns = 0
        self._loss_ns = 0
        self._batches = 0

    def _open_step(self, t_ns: int) -> None:
        if not self._step_open:
            self._step_open = True
            self._step_start = t_ns

    def _end_step(self, t_ns: int) -> None:
        steps = self.steps
        steps.start_ns.append(self._step_start - self.origin_ns)
        steps.dataloader_ns.append(self._dataloader_ns)
        steps.forward_ns.append(self._forward_ns)
        steps.backward_ns.append(self._backward_ns)
        steps.optimizer_ns.append(self._optimizer_ns)
        steps.overhead_ns.append(self._overhead_ns)
        steps.before_forward_ns.append(self._before_forward_ns)
        steps.loss_ns.append(self._loss_ns)
        steps.batches.append(self._batches)
        steps.end_ns.append(t_ns - self.origin_ns)  # last: a step is drained once its end is in
        if self._primary_optimizer is None:  # batch-steps may yet be folded into one
            totals = self._batch_totals
            totals[0] += self._dataloader_ns
            totals[1] += self._forward_ns
            totals[2] += self._backward_ns
            totals[3] += self._optimizer_ns
            totals[4] += self._overhead_ns
            totals[5] += self._before_forward_ns
            totals[6] += self._loss_ns
            totals[7] += self._batches
            if self._first_start_ns is None:
                self._first_start_ns = self._step_start
        index = self.step_count
        self.step_count = index + 1
        # The next step starts where this one ended (optimizer mode: steps are contiguous).
        self._reset_step(t_ns if self.mode == MODE_OPTIMIZER or self._primary_optimizer else None)
        self._forward_depth = 0
        if index + 1 == DISCOVERY_STEPS and self._global_forward_handles and self._top_modules:
            self._hook_top_modules_only()
        for listener in self._listeners:
            try:
                listener(index)
            except Exception as error:  # a collector's failure must never reach the user's step
                self._listener_failed(listener, error)
        if self.max_steps is not None and index + 1 >= self.max_steps:
            self.stop_requested = True

    def _listener_failed(self, listener: Callable[[int], None], error: Exception) -> None:
        self.listener_errors[getattr(listener, "__qualname__", repr(listener))] = f"{type(error).__name__}: {error}"
        self._listeners = [other for other in self._listeners if other is not listener]

    def _hook_top_modules_only(self) -> None:
        modules = [ref() for ref in self._top_modules.values()]
        for handle in self._global_forward_handles:
            handle.remove()
        self._global_forward_handles = []
        for module in modules:
            if module is not None:
                self._hook_handles.append(module.register_forward_pre_hook(self._forward_pre))
                self._hook_handles.append(module.register_forward_hook(self._forward_post, always_call=True))

    def _fold_batch_steps(self) -> None:
        """The first optimizer step: batch-steps so far were micro-steps of one warm-up step."""
        if self.mode != MODE_BATCH or not self.step_count:
            return
        assert self._first_start_ns is not None
        self._step_start = self._first_start_ns
        totals = self._batch_totals
        self._dataloader_ns += totals[0]
        self._forward_ns += totals[1]
        self._backward_ns += totals[2]
        self._optimizer_ns += totals[3]
        self._overhead_ns += totals[4]
        self._before_forward_ns += totals[5]
        self._loss_ns += totals[6]
        self._batches += totals[7]
        with self._drain_lock:  # what was streamed of those steps is withdrawn by a restart record
            self.steps = StepColumns()
            self._events.append({"restart": {}})
            self._drained = 0
        self.step_count = 0
        self.stop_requested = False
