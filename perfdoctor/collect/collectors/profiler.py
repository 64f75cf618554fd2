"""torch.profiler over a window of steps, with its traces where TensorBoard finds them.

The window is aligned to the step clock: one warm-up step (recorded, then discarded, as
torch.profiler does), then `steps` active steps. Traces go to `RUN/tb/<run-name>/`, named
`<worker>.<time>.pt.trace.json.gz` as the PyTorch TensorBoard plugin expects.

If the user's script starts a profiler of its own (torch.profiler or the legacy
torch.autograd.profiler), ours steps aside for good (two profilers cannot run at once) and the
report says at which step.

A trace is complete or absent: it is exported under a temporary name and renamed into place.
An export that fails (a full disk) or is given up (a second Ctrl-C) leaves no file, and the
stream says why. Inside a step, SIGINT and SIGTERM wait for the export to finish
(`collect/signals.py`).
"""

from __future__ import annotations

import gzip
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..patching import Patches
from ..signals import held_back
from .base import Collector, CollectorContext

GZIP_CHUNK = 1 << 20


class ExportGivenUp(Exception):
    """A second signal asked perfdoctor to hurry: the trace is dropped rather than finished."""


def export_trace(prof: Any, path: Path, hurry: threading.Event) -> None:
    """`prof`'s trace to `path` (.json.gz), complete or not at all."""
    json_tmp = path.with_name(f".{path.name}.{os.getpid()}.json.tmp")
    if "\\" in str(json_tmp):
        # Kineto takes a backslash for a path separator (it writes, then renames, to a path that
        # does not exist); the plain JSON is only read back to be compressed, so any folder will do.
        fd, name = tempfile.mkstemp(prefix="perfdoctor-trace-", suffix=".json.tmp")
        os.close(fd)
        json_tmp = Path(name)
    gz_tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        prof.export_chrome_trace(str(json_tmp))  # Kineto writes it in C++, in one go
        with open(json_tmp, "rb") as source, gzip.open(gz_tmp, "wb", compresslevel=6) as target:
            while chunk := source.read(GZIP_CHUNK):
                if hurry.is_set():
                    raise ExportGivenUp("given up at a second interrupt")
                target.write(chunk)
        os.replace(gz_tmp, path)
    finally:
        for tmp in (json_tmp, gz_tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass

DEFAULT_START = 6
DEFAULT_STEPS = 5
LONG_JOB_STEPS = 16  # --max-steps at or above this keeps the default window


@dataclass(frozen=True)
class ProfileWindow:
    start: int  # first active step
    steps: int  # active steps

    @property
    def warmup_step(self) -> int | None:
        return self.start - 1 if self.start > 0 else None

    @property
    def end(self) -> int:  # one past the last active step
        return self.start + self.steps


def choose_window(max_steps: int | None, start: int | None = None, steps: int | None = None) -> ProfileWindow:
    """Skip warm-up steps; on a short job (--max-steps), fit the window inside it."""
    if max_steps is None or max_steps >= LONG_JOB_STEPS:
        default_steps, default_start = DEFAULT_STEPS, DEFAULT_START
    else:
        default_steps = max(1, min(DEFAULT_STEPS, max_steps // 3))
        default_start = max(1, (max_steps - default_steps) // 2) if max_steps > 1 else 0
    return ProfileWindow(start=default_start if start is None else start, steps=default_steps if steps is None else steps)


class ProfilerCollector(Collector):
    name = "profiler"

    def __init__(self) -> None:
        self._profiler: Any = None
        self._window: ProfileWindow | None = None
        self._done = False
        self._traces: list[str] = []
        self._export_s = 0.0
        self._profiled_steps: list[int] = []
        self._stood_aside: dict[str, Any] | None = None
        self._patches = Patches()
        self._ctx: CollectorContext | None = None
        self._last_step = -1
        self._discard = False
        self._stopping = False

    def start(self, ctx: CollectorContext) -> None:
        self._ctx = ctx
        options = ctx.options
        self._window = window = choose_window(options.max_steps, options.profile_start, options.profile_steps)
        self._folder = ctx.rundir.tb / options.run_name
        self._worker = f"rank{ctx.rank}" if ctx.rank is not None else f"{socket.gethostname()}_{os.getpid()}"
        self._emit({
            "window": {"start": window.start, "steps": window.steps},
            "output": {"folder": str(self._folder.relative_to(ctx.rundir.root)), "worker": self._worker},
        })
        self._start_profiler()
        ctx.clock.add_listener(self._on_step_end)

    def _emit(self, record: dict[str, Any]) -> None:
        assert self._ctx is not None
        self._ctx.stream(self.name).emit(record)

    def _start_profiler(self) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile

        assert self._ctx is not None
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        self._profiler = profile(
            activities=activities,
            schedule=self._schedule,
            on_trace_ready=self._export,
            record_shapes=True,
            with_flops=True,
            with_stack=self._ctx.options.profile_stack,
            profile_memory=self._ctx.options.profile_memory,
        )
        self._done = False
        self._watch_for_user_profilers()
        self._profiler.start()

    def _schedule(self, step: int) -> Any:
        from torch.profiler import ProfilerAction

        window = self._window
        assert window is not None
        if step < window.start - 1 or step >= window.end:
            return ProfilerAction.NONE
        if step < window.start:
            return ProfilerAction.WARMUP
        if step == window.end - 1:
            return ProfilerAction.RECORD_AND_SAVE
        return ProfilerAction.RECORD

    def _on_step_end(self, index: int) -> None:
        restarted = index <= self._last_step
        self._last_step = index
        if restarted and (self._profiled_steps or self._traces) and self._stood_aside is None:
            self._restart()
        if self._done or self._profiler is None:
            return
        window = self._window
        assert window is not None
        if window.start <= index < window.end or index == window.warmup_step:
            self._profiled_steps.append(index)
            self._emit({"profiled": index})
        # Keep torch's step counter on ours (they differ when batch-steps were folded).
        t0 = time.perf_counter_ns()
        self._profiler.step_num = index
        self._profiler.step()
        if index + 1 >= window.end:
            self._finish()
        # Starting, stopping, processing and exporting the trace is ours, not the step's.
        assert self._ctx is not None
        self._ctx.clock.add_overhead(time.perf_counter_ns() - t0)

    def _restart(self) -> None:
        """The first optimizer step folded the DataLoader batch-steps before it (a validation or
        statistics pass, say) into one warm-up step, and step numbers began again: what was profiled
        of those steps is dropped, and the window is profiled again on the training steps."""
        assert self._ctx is not None
        t0 = time.perf_counter_ns()
        self._discard = True
        try:
            if not self._done:
                self._finish()
        finally:
            self._discard = False
        for trace in self._traces:
            (self._ctx.rundir.root / trace).unlink(missing_ok=True)
        self._traces = []
        self._profiled_steps = []
        self._export_s = 0.0
        self._emit({"restart": {}})
        self._start_profiler()
        self._ctx.clock.add_overhead(time.perf_counter_ns() - t0)

    def _export(self, prof: Any) -> None:
        if self._discard:
            return
        assert self._ctx is not None
        ctx = self._ctx
        t0 = time.perf_counter_ns()
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{self._worker}.{time.time_ns() // 1_000_000}.pt.trace.json.gz"
        status = None
        try:
            if self._stopping:  # the script has ended: a signal now only hurries us
                export_trace(prof, path, ctx.hurry)
            else:
                with held_back(ctx.hurry):
                    export_trace(prof, path, ctx.hurry)
        except ExportGivenUp as error:
            status = {"status": "given up", "reason": str(error)}
        except Exception as error:  # a full disk, say: no trace, and the step goes on
            status = {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
        except BaseException:
            self._emit({"export": {"status": "interrupted", "reason": "interrupted while exporting"}})
            raise
        finally:
            elapsed = (time.perf_counter_ns() - t0) / 1e9
            self._export_s += elapsed
        if status is not None:
            self._emit({"export": status})
            return
        relative = str(path.relative_to(ctx.rundir.root))
        self._traces.append(relative)
        self._emit({"trace": {"path": relative, "export_s": round(elapsed, 6)}})

    def _finish(self) -> None:
        self._done = True
        if self._profiler is not None:
            profiler, self._profiler = self._profiler, None
            profiler.stop()  # records what a partial window holds, via _export
        self._unwatch()

    def stop(self) -> None:
        self._stopping = True
        if not self._done:
            self._finish()

    # -- the user's own profiler --------------------------------------------------------------

    def _watch_for_user_profilers(self) -> None:
        import torch.autograd.profiler as legacy
        import torch.profiler

        collector = self

        def guard(original: Any) -> Any:
            def start_or_enter(prof: Any, *args: Any, **kwargs: Any) -> Any:
                if prof is not collector._profiler and not collector._done:
                    collector._step_aside()
                return original(prof, *args, **kwargs)

            return start_or_enter

        for owner, name in ((torch.profiler.profile, "start"), (legacy.profile, "__enter__")):
            self._patches.wrap(owner, name, guard)

    def _unwatch(self) -> None:
        self._patches.restore()

    def _step_aside(self) -> None:
        assert self._ctx is not None
        self._stood_aside = {
            "at_step": self._ctx.clock.step_count,
            "reason": "the script started a profiler of its own; perfdoctor's stepped aside",
        }
        self._emit({"stood_aside": self._stood_aside})
        self._finish()
