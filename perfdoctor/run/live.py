"""The live view, in the supervising parent: it follows the raw streams as the script's process
appends them, shows progress, and writes TensorBoard scalars as they come.

On a terminal, progress is one line at the bottom of the screen that the script's own output
never touches: the terminal's scroll region is set to every row but the last (DECSTBM), so the
script's lines scroll above it; each redraw saves the cursor, writes the last row and restores
the cursor in a single write(), which the terminal receives whole, never split by the script's
writes. The region is restored at the end and set again when the window is resized. Not a
terminal (a CI log, a pipe): a plain line every PLAIN_EVERY_S seconds. `-q`: nothing.

The line is tqdm's (`tqdm.format_meter`): the format ML users read every day (steps, elapsed,
rate, a bar when --max-steps bounds the job), with tqdm's width-aware trimming. tqdm's own
refreshing bar cannot be used: it assumes it owns the line it redraws, and here another
process writes to the same terminal.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from ..report.tensorboard import LiveScalars, gpu_scalars, host_scalars, memory_limits, step_scalars
from ..stream import lines
from ..stream.rundir import RunDir

RECENT_STEPS = 50  # the median step and the DataLoader share are over the last this many steps
PLAIN_EVERY_S = 30.0
PLAIN_EVERY_ENV = "PERFDOCTOR_PROGRESS_EVERY_S"  # another interval for plain lines (read by perfdoctor only)
REDRAW_EVERY_S = 0.5


class Follower:
    """Reads what the streams gained since the last poll: keeps the recent numbers the progress
    line shows, and passes every record on to the live scalars."""

    def __init__(self, rundir: RunDir, rank: int | None, scalars: LiveScalars | None) -> None:
        self._tails = {name: lines.Tail(rundir.stream_path(name, rank)) for name in ("steps", "host", "gpu", "memory")}
        self._memory_meta: dict[str, Any] = {}
        self._memory_cuda: dict[str, Any] = {}
        self.scalars = scalars
        self.steps = 0
        self.recent: deque[tuple[int, int, int]] = deque(maxlen=RECENT_STEPS)  # (end, duration, dataloader) ns
        self.gpu_utilization: float | None = None
        self.origin_unix_s: float | None = None
        self._waiting_samples: list[tuple[str, dict[str, Any]]] = []

    def poll(self) -> None:
        for record in self._tails["steps"].poll():
            if "origin_unix_s" in record:
                self.origin_unix_s = record["origin_unix_s"]
                if self.scalars is not None:
                    self.scalars.origin_unix_s = self.origin_unix_s
            elif "restart" in record:
                self.steps = 0
                self.recent.clear()
            elif "steps" in record:
                self._steps(record["steps"])
        for name in ("host", "gpu"):
            for record in self._tails[name].poll():
                if "sample" in record:
                    self._sample(name, record["sample"])
        for record in self._tails["memory"].poll():
            if "meta" in record:
                self._memory_meta.update(record["meta"])
            elif "cuda" in record:
                self._memory_cuda = dict(record["cuda"])
            elif "samples" in record and self.scalars is not None:
                self.scalars.memory(record["samples"], memory_limits(self._memory_meta, self._memory_cuda))
        if self.scalars is not None:
            self.scalars.flush()

    def _steps(self, chunk: dict[str, Any]) -> None:
        for step, end_ns, values in step_scalars(chunk):
            self.steps = step + 1
            self.recent.append((end_ns, int(values["step/time_ms"] * 1e6), int(values["step/dataloader_ms"] * 1e6)))
        if self.scalars is not None:
            self.scalars.steps(chunk)

    def _sample(self, name: str, sample: dict[str, Any]) -> None:
        if name == "gpu":
            used = [r["utilization_gpu"] for r in sample.get("devices") or [] if r.get("utilization_gpu") is not None]
            self.gpu_utilization = sum(used) / len(used) if used else self.gpu_utilization
        if self.scalars is not None:
            values = host_scalars(sample) if name == "host" else gpu_scalars(sample)
            self.scalars.sample(values, sample.get("t_ns"), sample.get("step"))

    # -- what the line shows --------------------------------------------------------------------

    def median_step_ms(self) -> float | None:
        return statistics.median(d for _, d, _ in self.recent) / 1e6 if self.recent else None

    def steps_per_s(self) -> float | None:
        if len(self.recent) < 2:
            return None
        span = self.recent[-1][0] - self.recent[0][0]
        return (len(self.recent) - 1) / (span / 1e9) if span > 0 else None

    def dataloader_share(self) -> float | None:
        total = sum(d for _, d, _ in self.recent)
        return sum(w for _, _, w in self.recent) / total if total > 0 else None


def progress_text(follower: Follower, elapsed_s: float, max_steps: int | None, width: int | None) -> str:
    from tqdm import tqdm  # type: ignore[import-untyped]

    parts = []
    median = follower.median_step_ms()
    if median is not None:
        parts.append(f"median step {median:.1f} ms")
    share = follower.dataloader_share()
    if share is not None:
        parts.append(f"DataLoader {share:.0%}")
    if follower.gpu_utilization is not None:
        parts.append(f"GPU {follower.gpu_utilization:.0f}%")
    return tqdm.format_meter(
        follower.steps, max_steps, elapsed_s, ncols=width, prefix="perfdoctor", unit=" steps",
        rate=follower.steps_per_s(), postfix=", ".join(parts) or None,
    )


class TerminalLine:
    """One line at the bottom of the terminal, kept out of the script's way (see the module)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.fd = out.fileno()
        self.rows, self.columns = self._size()
        self.active = False

    def _size(self) -> tuple[int, int]:
        size = os.get_terminal_size(self.fd)
        return size.lines, size.columns

    def _write(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode("utf-8", "replace"))  # one write(): the terminal gets it whole
        except OSError:  # the terminal went away (a hangup): nothing more to show
            self.active = False

    def open(self) -> None:
        if self.rows < 3:
            return
        self.active = True
        # Make room for the line (scrolling if the cursor is on the last row), then keep the
        # last row out of the scroll region; setting the region homes the cursor, so save it.
        self._write(f"\n\x1b[1A\x1b7\x1b[1;{self.rows - 1}r\x1b8")

    def draw(self, text: str) -> None:
        if self.active:
            self._write(f"\x1b7\x1b[{self.rows};1H\x1b[2K{text[: self.columns - 1]}\x1b8")

    def resized(self) -> None:
        if not self.active:
            return
        old = self.rows
        self.rows, self.columns = self._size()
        self._write(f"\x1b7\x1b[{old};1H\x1b[2K\x1b[1;{max(2, self.rows - 1)}r\x1b8")

    def close(self) -> None:
        if self.active:
            self._write(f"\x1b7\x1b[r\x1b[{self.rows};1H\x1b[2K\x1b8")
            self.active = False


class LiveView:
    """Progress for one rank's streams, on a terminal or as plain lines; TensorBoard scalars."""

    def __init__(self, rundir: RunDir, rank: int | None, scalars_folder: Path | None, max_steps: int | None,
                 quiet: bool, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.max_steps = max_steps
        self.scalars = LiveScalars(scalars_folder) if scalars_folder is not None else None
        self.follower = Follower(rundir, rank, self.scalars)
        self.started = time.monotonic()
        self._last_poll = 0.0
        self._last_plain = self.started
        self.line: TerminalLine | None = None
        self.plain = False
        try:
            self.plain_every_s = float(os.environ.get(PLAIN_EVERY_ENV, PLAIN_EVERY_S))
        except ValueError:
            self.plain_every_s = PLAIN_EVERY_S
        if not quiet:
            if _is_terminal(self.out):
                try:
                    self.line = TerminalLine(self.out)
                except OSError:
                    self.plain = True
            else:
                self.plain = True

    def open(self) -> None:
        if self.line is not None:
            self.line.open()

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_poll < REDRAW_EVERY_S:
            return
        self._last_poll = now
        try:
            self.follower.poll()
        except Exception:  # the view must never take the run down
            return
        elapsed = now - self.started
        if self.line is not None and self.line.active:
            self.line.draw(progress_text(self.follower, elapsed, self.max_steps, self.line.columns - 1))
        elif self.plain and now - self._last_plain >= self.plain_every_s:
            self._last_plain = now
            self._print(progress_text(self.follower, elapsed, self.max_steps, None))

    def resized(self) -> None:
        if self.line is not None:
            try:
                self.line.resized()
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.follower.poll()
        except Exception:
            pass
        if self.line is not None:
            self.line.close()
        if self.scalars is not None:
            self.scalars.close()

    def _print(self, text: str) -> None:
        try:
            print(text, file=self.out, flush=True)
        except (OSError, ValueError):
            self.plain = False


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty() and os.environ.get("TERM", "") not in ("", "dumb")
    except (AttributeError, ValueError):
        return False
