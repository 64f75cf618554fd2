"""The step clock: cuts a training run into steps and times each step's phases.

What a step is, in this order (README "What a step is"):
1. An optimizer step: a step ends when the primary optimizer's outermost `step()` returns (the
   first optimizer seen to step: in a GAN loop the second optimizer's step belongs to the same
   iteration). A wrapper's step (accelerate's AcceleratedOptimizer) counts only when the optimizer
   it wraps stepped; `GradScaler.step` counts even when it skips the optimizer (inf gradients);
   an optimizer stepped from inside a backward (optimizer-in-backward hooks) is not a step end.
2. With no optimizer step (manual SGD, `p.data.add_(...)`): each top-level `backward()` (or
   `torch.autograd.grad`) is a step. It ends when the loop starts its next step: at the next
   batch, zero_grad, backward or forward with gradients on; a forward without gradients
   (evaluation) ends it and opens none.
3. With neither: each DataLoader batch is a step, from one `next()` call to the next.
When the first optimizer step arrives, the steps seen before it are folded into one warm-up step
(so are batch-steps at the first backward-step).

Phases, measured on the training thread only (DataParallel replicas run forward in threads), by
what runs, not by which call is on the stack: time goes to the innermost phase running. Lightning
runs forward and backward inside `optimizer.step(closure)`, LBFGS calls its closure many times:
that time is forward and backward, and only the rest of `step()` is optimizer.
- dataloader: time inside DataLoader `next()` (reported by the DataLoader probe);
- forward: time inside the calls of the modules `toplevel.TopModules` chose (the outermost modules
  owning the trained parameters, hooked without global module hooks), except a forward that runs
  inside backward (activation checkpointing recomputes);
- backward: time inside `torch.autograd.backward` / `torch.autograd.grad`;
- optimizer: `Optimizer.step()`, `GradScaler.step()`, `Optimizer.zero_grad()`, `Module.zero_grad()`;
- other: the rest of the step. Two parts of it are timed on their own: the gap between a batch
  arriving and the forward starting (`before_forward`: per-sample work done in the loop) and the
  gap between forward and backward (`loss`: the loss computed outside the model).
`overhead` is perfdoctor's own time inside a step (trace export, finding the model); analysis
subtracts it.

Everything here runs inside the user's training step: keep it to a clock read and a few
integer additions per event. Ended steps wait in compact columns until the stream writer's
thread drains them (`drain`), so memory stays flat however many steps the job runs.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from .invisible import InvisibleHooks
from .patching import Patches
from .toplevel import DISCOVERY_STEPS, Timed, TopModules, leaf_tensors
from .writer import fresh_lock_in_forks

MODE_OPTIMIZER = "optimizer"
MODE_BACKWARD = "backward"
MODE_BATCH = "batch"
STEPPED_MODES = (MODE_OPTIMIZER, MODE_BACKWARD)
# Phases the clock times, as indices into a step's accumulators; NONE: `other`. CLOSURE is `other`
# too: the closure an optimizer's step calls (its loss, its logging), apart from what it runs.
NONE, DATALOADER, FORWARD, BACKWARD, OPTIMIZER, CLOSURE = -1, 0, 1, 2, 3, 4
LOOP = (NONE, CLOSURE)  # where the gaps between phases are the loop's own work

__all__ = ["DISCOVERY_STEPS", "MODE_BACKWARD", "MODE_BATCH", "MODE_OPTIMIZER", "StepClock", "StopRun"]


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


class TimedClosure:
    """An optimizer step's closure, run as the loop's own work inside the optimizer phase."""

    __slots__ = ("clock", "closure")

    def __init__(self, clock: "StepClock", closure: Callable[..., Any]) -> None:
        self.clock = clock
        self.closure = closure

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        clock = self.clock
        if threading.get_ident() != clock._thread:
            return self.closure(*args, **kwargs)
        clock._enter(CLOSURE, perf_counter_ns())
        try:
            return self.closure(*args, **kwargs)
        finally:
            if clock._phase == CLOSURE:
                clock._exit(perf_counter_ns())


class StepClock:
    active: "StepClock | None" = None  # the clock installed in this process, if any

    def __init__(self, max_steps: int | None = None) -> None:
        self.origin_ns = perf_counter_ns()
        self.origin_unix_s = time.time()  # the wall time of origin_ns, for timelines
        self.max_steps = max_steps
        self.mode: str | None = None
        self.steps = StepColumns()  # ended steps not yet drained
        self.step_count = 0  # steps ended (since the warm-up steps were folded, if they were)
        self._drained = 0  # of those, how many drain() has handed on
        self._drain_lock = threading.Lock()
        fresh_lock_in_forks(self, "_drain_lock")
        self._events: deque[dict[str, Any]] = deque([{"origin_unix_s": self.origin_unix_s}])  # stream records
        self._warmup_totals = [0] * 8  # phase sums of the steps before the first optimizer step (folded then)
        self._first_start_ns: int | None = None
        self._listeners: list[Callable[[int], None]] = []
        self.listener_errors: dict[str, str] = {}
        self._thread = threading.get_ident()
        self._primary: int | None = None  # the optimizer whose outermost step ends a step
        self.optimizers: dict[int, dict[str, Any]] = {}  # what each optimizer is, recorded once
        self._hook_handles: list[Any] = []
        self._optimizer_class: type = object
        self._patches = Patches()
        self.hooks = InvisibleHooks()  # any collector's hooks on the script's modules go through it
        self.modules = TopModules(self.hooks, self._forward_pre, self._forward_post)
        # The phase running now (innermost), since when it accrues, and the phases it interrupted.
        self._phase = NONE
        self._phase_t0 = 0
        self._stack: list[int] = []
        self._last_top = NONE  # the last phase that ended at top level, and when
        self._last_top_end = 0
        self._forward_depth = 0
        self._forward_timed = False
        self._backward_depth = 0
        self._optimizer_ids: list[int] = []  # optimizer steps (and GradScaler steps) in progress
        self._real_step = False  # a real optimizer step ran inside the outermost one in progress
        self._ran_backward = False  # this step ran a backward (for module discovery)
        self._pending_epoch_start: dict[int, int] = {}
        self._reset_step(None)
        self.stop_requested = False

    # -- lifecycle ---------------------------------------------------------------------------

    def add_listener(self, on_step_end: Callable[[int], None]) -> None:
        """Called with the index of each step that just ended (hot path: keep it cheap)."""
        self._listeners.append(on_step_end)

    def install(self) -> None:
        import torch
        from torch.optim import optimizer as optim_module

        self._optimizer_class = torch.optim.Optimizer
        self._hook_handles = [
            optim_module.register_optimizer_step_pre_hook(self._optimizer_pre),
            optim_module.register_optimizer_step_post_hook(self._optimizer_post),
        ]
        self.hooks.install()
        self._patches.wrap(torch.autograd, "backward", self._timed_backward)
        self._patches.wrap(torch.autograd, "grad", self._timed_backward)
        self._patches.wrap(torch.optim.Optimizer, "zero_grad", self._timed_zero_grad)
        self._patches.wrap(torch.nn.Module, "zero_grad", self._timed_zero_grad)
        scaler = getattr(getattr(torch, "amp", None), "GradScaler", None)
        if scaler is not None and "step" in vars(scaler):
            self._patches.wrap(scaler, "step", self._timed_scaler_step)
        StepClock.active = self

    def uninstall(self) -> None:
        for handle in self._hook_handles:
            handle.remove()
        self._hook_handles = []
        self._patches.restore()
        self.modules.uninstall()
        self.hooks.uninstall()
        if StepClock.active is self:
            StepClock.active = None

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
        """Close the step in progress when the run ends (the last batch's or backward's work)."""
        if self._step_open and (
            (self.mode == MODE_BATCH and self._batches) or (self.mode == MODE_BACKWARD and self._step_backward)
        ):
            self._end_step(perf_counter_ns())
        if not self.modules.done:
            self._discovery_over()

    def now(self) -> int:
        return perf_counter_ns() - self.origin_ns

    def add_overhead(self, ns: int) -> None:
        self._overhead_ns += ns

    # -- reports from the DataLoader probe ---------------------------------------------------

    def epoch_started(self, loader_id: int, t_ns: int) -> None:
        self._pending_epoch_start[loader_id] = t_ns

    def before_batch(self, t_ns: int) -> None:
        if threading.get_ident() != self._thread:
            return
        if self._phase == NONE:
            mode = self.mode
            if mode == MODE_OPTIMIZER:
                self._open_step(t_ns)
            elif mode == MODE_BACKWARD:
                self._activity(t_ns, opens=True)
            else:
                if self._step_open and self._batches:
                    self._end_step(t_ns)
                if self.stop_requested:
                    raise StopRun()
                self._open_step(t_ns)
                if mode is None:
                    self._set_mode(MODE_BATCH)
        self._enter(DATALOADER, t_ns)

    def after_batch(self, loader_id: int, t_start_ns: int, wait_ns: int, delivered: bool) -> None:
        if threading.get_ident() != self._thread:
            return
        epoch_start = self._pending_epoch_start.pop(loader_id, None) if delivered else None
        if self.mode in STEPPED_MODES and epoch_start is not None and epoch_start > self._step_start and not self._stack:
            # An epoch began after this step opened: the step starts at the new iterator, and
            # what ran before it (validation, checkpoints, an eval loader's batches) is not the step's.
            self._reset_step(epoch_start)
        if self._phase == DATALOADER:
            self._exit(t_start_ns + wait_ns)
        if not delivered:  # StopIteration: the epoch ended; in batch mode no step is open now
            if self.mode == MODE_BATCH and self._phase == NONE:
                self._step_open = False
                self._batches = 0
            return
        self._batches += 1

    # -- phases ------------------------------------------------------------------------------

    def _enter(self, phase: int, t_ns: int) -> None:
        current = self._phase
        if current != NONE:
            self._acc[current] += t_ns - self._phase_t0
            self._stack.append(current)
        if current in LOOP:
            # The gap since the previous phase in the loop is part of `other`: name two of them.
            last = self._last_top
            if last == DATALOADER and phase == FORWARD:
                self._before_forward_ns += t_ns - self._last_top_end
            elif last == FORWARD and phase == BACKWARD:
                self._loss_ns += t_ns - self._last_top_end
            self._last_top = NONE
        self._phase = phase
        self._phase_t0 = t_ns

    def _exit(self, t_ns: int) -> None:
        current = self._phase
        if current == NONE:
            return
        self._acc[current] += t_ns - self._phase_t0
        self._phase_t0 = t_ns
        self._phase = self._stack.pop() if self._stack else NONE
        if self._phase in LOOP:
            self._last_top = current
            self._last_top_end = t_ns

    def _inside(self, phase: int) -> bool:
        return self._phase == phase or phase in self._stack

    # -- forward: hooks on the modules TopModules chose ----------------------------------------

    def _forward_pre(self, timed: Timed) -> None:
        if threading.get_ident() != self._thread:
            return
        if self._forward_depth:
            timed.nested = True
            self._forward_depth += 1
            return
        timed.top = True
        if self._backward_depth:  # activation checkpointing recomputes the forward: that is backward
            self._forward_timed = False
            self._forward_depth = 1
            return
        t0 = perf_counter_ns()
        if self.mode == MODE_BACKWARD:
            if not self._optimizer_ids:
                import torch

                self._activity(t0, opens=torch.is_grad_enabled())  # an evaluation forward opens no step
        else:
            self._open_step(t0)
        self._forward_timed = True
        self._forward_depth = 1
        self._enter(FORWARD, t0)

    def _forward_post(self) -> None:
        if threading.get_ident() != self._thread or not self._forward_depth:
            return
        self._forward_depth -= 1
        if not self._forward_depth and self._forward_timed:
            self._forward_timed = False
            if self._phase == FORWARD:
                self._exit(perf_counter_ns())

    # -- backward ----------------------------------------------------------------------------

    def _timed_backward(self, original: Callable[..., Any]) -> Callable[..., Any]:
        clock = self
        is_grad = original.__name__ == "grad"

        def backward(*args: Any, **kwargs: Any) -> Any:
            if clock._backward_depth or threading.get_ident() != clock._thread:
                return original(*args, **kwargs)
            t0 = perf_counter_ns()
            top = not clock._optimizer_ids and not clock._forward_depth
            if not clock.modules.done:
                clock._discover_from_backward(args, kwargs, is_grad)
                t0 = perf_counter_ns()
            if top and clock._primary is None:
                if clock.mode != MODE_BACKWARD:
                    clock._fold_warmup_steps()
                    clock._set_mode(MODE_BACKWARD)
                clock._activity(t0, opens=True)
            else:
                clock._open_step(t0)
            clock._backward_depth = 1
            clock._enter(BACKWARD, t0)
            try:
                return original(*args, **kwargs)
            finally:
                clock._backward_depth = 0
                if clock._phase == BACKWARD:
                    clock._exit(perf_counter_ns())
                clock._ran_backward = True
                if top:
                    clock._step_backward = True

        return backward

    def _discover_from_backward(self, args: tuple[Any, ...], kwargs: dict[str, Any], is_grad: bool) -> None:
        t0 = perf_counter_ns()
        try:
            if is_grad:
                inputs = kwargs.get("inputs", args[1] if len(args) > 1 else ())
                params = [inputs] if hasattr(inputs, "grad_fn") else list(inputs)
            else:
                tensors = kwargs.get("tensors", args[0] if args else ())
                params = leaf_tensors([tensors] if hasattr(tensors, "grad_fn") else list(tensors))
            if self.modules.trained(params):
                self.modules.place()
        except Exception:  # never break the user's backward over discovery
            pass
        self._discovery_cost(perf_counter_ns() - t0)

    def _discovery_cost(self, ns: int) -> None:
        self._overhead_ns += ns
        self._last_top_end += ns  # the gap it fell in was perfdoctor's, not the loop's
        if self._phase != NONE:
            self._phase_t0 += ns

    # -- optimizer ---------------------------------------------------------------------------

    def _optimizer_pre(self, optimizer: Any, args: Any, kwargs: Any) -> Any:
        inner = getattr(optimizer, "optimizer", None)
        wrapper = inner is not None and isinstance(inner, self._optimizer_class)
        described = self.optimizers.get(id(optimizer))
        if described is None:
            self.optimizers[id(optimizer)] = described = describe_optimizer(inner if wrapper else optimizer)
            described["wrapper"] = type(optimizer).__qualname__ if wrapper else None
            self._events.append({"optimizer": described})
        if threading.get_ident() != self._thread:
            return None
        t0 = perf_counter_ns()
        if not self.modules.done and not wrapper:
            self._discover_from_optimizer(optimizer)
            t0 = perf_counter_ns()
        self._optimizer_enters(id(optimizer), t0)
        return self._timed_closure(args, kwargs)

    def _timed_closure(self, args: Any, kwargs: Any) -> Any:
        """The step's closure, timed as the loop's own work (its forward and backward are timed
        inside it as usual); what is left of the optimizer's step is optimizer time."""
        if kwargs.get("closure") is not None:
            closure = kwargs["closure"]
            if not isinstance(closure, TimedClosure):
                return args, {**kwargs, "closure": TimedClosure(self, closure)}
        elif len(args) > 1 and callable(args[1]) and not isinstance(args[1], TimedClosure):
            return (args[0], TimedClosure(self, args[1]), *args[2:]), kwargs  # args[0]: the optimizer
        return None

    def _optimizer_post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if threading.get_ident() != self._thread:
            return
        if self.optimizers.get(id(optimizer), {}).get("wrapper") is None:
            self._real_step = True
        self._optimizer_leaves(id(optimizer), perf_counter_ns())

    def _optimizer_enters(self, key: int, t_ns: int) -> None:
        if key in self._optimizer_ids:
            # This optimizer's previous step raised (its post hook never ran): close what was open.
            self._optimizer_ids = []
            while self._phase != NONE:
                self._exit(t_ns)
        if not self._optimizer_ids:
            self._open_step(t_ns)
        self._optimizer_ids.append(key)
        self._enter(OPTIMIZER, t_ns)

    def _optimizer_leaves(self, key: int, t_ns: int) -> None:
        if self._phase == OPTIMIZER:
            self._exit(t_ns)
        if key in self._optimizer_ids:
            del self._optimizer_ids[self._optimizer_ids.index(key):]
        if self._optimizer_ids or not self._real_step:
            return  # inside an outer optimizer step, or a wrapper's step that did not step
        self._real_step = False
        if self._backward_depth:
            return  # an optimizer stepped from a backward hook: the backward is the step
        key = abs(key)  # the optimizer, whether stepped by itself or by a GradScaler
        if self._primary is None:
            self._primary = key
            self._fold_warmup_steps()
            self._set_mode(MODE_OPTIMIZER)
        if key == self._primary:
            self._end_step(t_ns)
            if self.stop_requested:
                raise StopRun()

    def _discover_from_optimizer(self, optimizer: Any) -> None:
        t0 = perf_counter_ns()
        try:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if self.modules.trained(params):
                self.modules.place()
        except Exception:
            pass
        self._discovery_cost(perf_counter_ns() - t0)

    def _timed_scaler_step(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """GradScaler.step: an optimizer step even when it skips the optimizer (inf gradients)."""
        clock = self

        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != clock._thread:
                return original(scaler, optimizer, *args, **kwargs)
            key = -id(optimizer)  # the scaler's step around the optimizer's own
            clock._optimizer_enters(key, perf_counter_ns())
            try:
                result = original(scaler, optimizer, *args, **kwargs)
            except BaseException:
                clock._real_step = False
                clock._optimizer_leaves(key, perf_counter_ns())
                raise
            clock._real_step = True
            clock._optimizer_leaves(key, perf_counter_ns())
            return result

        return step

    def _timed_zero_grad(self, original: Callable[..., Any]) -> Callable[..., Any]:
        clock = self

        def zero_grad(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != clock._thread:
                return original(*args, **kwargs)
            t0 = perf_counter_ns()
            top = clock._phase in LOOP
            if clock._phase == NONE and clock.mode == MODE_BACKWARD:
                clock._activity(t0, opens=True)
            last, last_end = clock._last_top, clock._last_top_end
            clock._enter(OPTIMIZER, t0)
            try:
                return original(*args, **kwargs)
            finally:
                t1 = perf_counter_ns()
                if clock._phase == OPTIMIZER:
                    clock._exit(t1)
                if top:  # transparent to the gap it sits in
                    clock._last_top, clock._last_top_end = last, last_end + (t1 - t0)

        return zero_grad

    # -- steps -------------------------------------------------------------------------------

    def _activity(self, t_ns: int, opens: bool) -> None:
        """Backward mode: the loop does something a step does. The step in progress, if it ran its
        backward, ends here; the next one opens here unless this is an evaluation forward."""
        if self._step_open and self._step_backward:
            self._end_step(t_ns)
            if self.stop_requested:
                raise StopRun()
        if opens:
            self._open_step(t_ns)

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        self._events.append({"mode": mode})

    _step_start: int
    _overhead_ns: int

    def _reset_step(self, start: int | None) -> None:
        self._step_open = start is not None
        self._step_start = start or 0
        self._acc = [0, 0, 0, 0, 0]
        self._overhead_ns = 0
        self._before_forward_ns = 0
        self._loss_ns = 0
        self._batches = 0
        self._step_backward = False

    def _open_step(self, t_ns: int) -> None:
        if not self._step_open:
            self._step_open = True
            self._step_start = t_ns

    def _end_step(self, t_ns: int) -> None:
        if self._phase != NONE:  # a phase running across the boundary: its time so far is this step's
            self._acc[self._phase] += t_ns - self._phase_t0
            self._phase_t0 = t_ns
        steps = self.steps
        acc = self._acc
        steps.start_ns.append(self._step_start - self.origin_ns)
        steps.dataloader_ns.append(acc[DATALOADER])
        steps.forward_ns.append(acc[FORWARD])
        steps.backward_ns.append(acc[BACKWARD])
        steps.optimizer_ns.append(acc[OPTIMIZER])
        steps.overhead_ns.append(self._overhead_ns)
        steps.before_forward_ns.append(self._before_forward_ns)
        steps.loss_ns.append(self._loss_ns)
        steps.batches.append(self._batches)
        steps.end_ns.append(t_ns - self.origin_ns)  # last: a step is drained once its end is in
        if self._primary is None:  # warm-up steps, folded into one at the first optimizer step
            totals = self._warmup_totals
            for i, value in enumerate((*acc[:4], self._overhead_ns, self._before_forward_ns, self._loss_ns, self._batches)):
                totals[i] += value
            if self._first_start_ns is None:
                self._first_start_ns = self._step_start
        index = self.step_count
        self.step_count = index + 1
        # The next step starts where this one ended (optimizer mode: steps are contiguous).
        self._reset_step(t_ns if self.mode == MODE_OPTIMIZER else None)
        if not self.modules.done:
            self._discovery_step(index)
        for listener in self._listeners:
            try:
                listener(index)
            except Exception as error:  # a collector's failure must never reach the user's step
                self._listener_failed(listener, error)
        if self.max_steps is not None and index + 1 >= self.max_steps:
            self.stop_requested = True

    def _discovery_step(self, index: int) -> None:
        t0 = perf_counter_ns()
        modules = self.modules
        try:
            if not modules.started and self.mode == MODE_BATCH and not self._ran_backward:
                modules.place(all_parameters=True)  # inference: the modules holding parameters
            else:
                modules.step_ended(self._ran_backward)
        except Exception:
            modules.finish()
        self._ran_backward = False
        if modules.done:
            self._discovery_over()
        self._overhead_ns += perf_counter_ns() - t0  # charged to the step that follows

    def _discovery_over(self) -> None:
        if not self.modules.done:
            self.modules.finish()
        self._events.append({"forward_modules": self.modules.names})

    def _listener_failed(self, listener: Callable[[int], None], error: Exception) -> None:
        self.listener_errors[getattr(listener, "__qualname__", repr(listener))] = f"{type(error).__name__}: {error}"
        self._listeners = [other for other in self._listeners if other is not listener]

    def _fold_warmup_steps(self) -> None:
        """Steps before this one (DataLoader batch-steps, or backward-steps before the first
        optimizer step) were micro-steps of one warm-up step: fold them into the step in progress."""
        if not self.step_count:
            return
        assert self._first_start_ns is not None
        self._step_open = True
        self._step_start = self._first_start_ns
        totals = self._warmup_totals
        for i in range(4):
            self._acc[i] += totals[i]
        self._overhead_ns += totals[4]
        self._before_forward_ns += totals[5]
        self._loss_ns += totals[6]
        self._batches += totals[7]
        self._warmup_totals = [0] * 8
        self._first_start_ns = None
        with self._drain_lock:  # what was streamed of those steps is withdrawn by a restart record
            self.steps = StepColumns()
            self._events.append({"restart": {}})
            self._drained = 0
        self.step_count = 0
        self.stop_requested = False
