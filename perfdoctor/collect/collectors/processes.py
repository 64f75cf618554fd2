"""Training in processes the script starts itself (a hogwild `torch.multiprocessing` pool,
`mp.spawn`, `multiprocessing.Process` targets), outside torchrun.

Every `Process.start()` is seen (`multiprocessing.process.BaseProcess.start`, whatever the start
method): the parent streams which process started, with what target and start method, and how it
ended. For the start, the process's target is wrapped in `TrainingChild` (put back on the parent's
Process object once it has started): in the child, a step clock of its own counts and times the
steps the target trains, and the child appends one summary to `RUN/raw/children.jsonl` when the
target returns or raises (steps, median step, phases, intra-op threads, CPU time). Processes that
never train (DataLoader workers, pools, managers) are left alone, or write a summary with no step.

This is not a measurement of those processes in full (no DataLoader probe, profiler or host
sampler runs there): the report says so, with what was seen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from ..patching import Patches
from .base import Collector, CollectorContext

# Targets of processes that are not the script's training: DataLoader workers, pools, managers.
NOT_TRAINING = ("torch.utils.data.", "multiprocessing.", "concurrent.futures.")


def target_name(target: Any) -> str:
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__name__
    return f"{module}.{name}" if module else str(name)


class TrainingChild:
    """A process's target, run under a step clock of the child's own (picklable for spawn)."""

    def __init__(self, target: Callable[..., Any], children_stream: str) -> None:
        self.target = target
        self.children_stream = children_stream

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ..stepclock import StepClock

        inherited = StepClock.active  # a forked child carries the parent's clock: it stops here
        if inherited is not None:
            inherited.uninstall()
        clock = StepClock()
        started, cpu = time.perf_counter(), os.times()
        status = "completed"
        try:
            clock.install()
        except Exception:  # measuring must never stop the child from training
            return self.target(*args, **kwargs)
        try:
            return self.target(*args, **kwargs)
        except BaseException as error:
            status = type(error).__name__
            raise
        finally:
            try:
                clock.finish()
                clock.uninstall()
                self._write(clock, status, time.perf_counter() - started, cpu)
            except Exception:
                pass

    def _write(self, clock: Any, status: str, wall_s: float, cpu_before: Any) -> None:
        import torch

        from ...stream import lines

        steps = clock.steps
        durations = [(end - start) / 1e6 for start, end in zip(steps.start_ns, steps.end_ns)]
        steady = durations[1:] if len(durations) > 3 else durations
        cpu = os.times()
        record = {"child": {
            "pid": os.getpid(),
            "target": target_name(self.target),
            "status": status,
            "mode": clock.mode,
            "steps": len(durations),
            "median_step_ms": round(sorted(steady)[len(steady) // 2], 3) if steady else None,
            "total_step_ms": round(sum(durations), 3),
            "phase_ms": {
                phase: round(sum(getattr(steps, f"{phase}_ns")) / 1e6, 3)
                for phase in ("dataloader", "forward", "backward", "optimizer")
            },
            "intra_op_threads": torch.get_num_threads(),
            "wall_s": round(wall_s, 3),
            "cpu_s": round((cpu.user - cpu_before.user) + (cpu.system - cpu_before.system), 3),
        }}
        lines.append(Path(self.children_stream), "children", record)


class ChildProcesses(Collector):
    name = "processes"

    def __init__(self) -> None:
        self._patches = Patches()
        self._ctx: CollectorContext | None = None
        self._started: list[Any] = []

    def start(self, ctx: CollectorContext) -> None:
        from multiprocessing import process

        self._ctx = ctx
        self._patches.wrap(process.BaseProcess, "start", self._wrap_start)

    def stop(self) -> None:
        self._patches.restore()
        for proc in self._started:
            try:
                exitcode = proc.exitcode
            except Exception:  # a process object from another process, or closed
                continue
            self._emit({"ended": {"pid": proc.pid, "exitcode": exitcode}})
        self._started = []

    def _emit(self, record: dict[str, Any]) -> None:
        if self._ctx is not None:
            self._ctx.stream(self.name).emit(record)

    def _wrap_start(self, original: Callable[..., Any]) -> Callable[..., Any]:
        collector = self

        def start(proc: Any) -> None:
            target = getattr(proc, "_target", None)
            ctx = collector._ctx
            wrap = (
                ctx is not None and target is not None and not isinstance(target, TrainingChild)
                and not target_name(target).startswith(NOT_TRAINING)
            )
            if wrap:
                assert ctx is not None and target is not None
                proc._target = TrainingChild(target, str(ctx.rundir.stream_path("children", None)))
            try:
                original(proc)
            finally:
                if wrap:
                    proc._target = target  # the script's own Process object is as it made it
            if wrap:
                collector._started.append(proc)
                import multiprocessing

                collector._emit({"started": {
                    "pid": proc.pid,
                    "name": proc.name,
                    "target": target_name(target),
                    "start_method": getattr(proc, "_start_method", None) or multiprocessing.get_start_method(allow_none=True),
                    "t_ns": ctx.clock.now() if ctx is not None else None,
                }})

        return start
