"""The runs a viewer shows: perfdoctor run directories and folders of profiler traces found under
a directory (TensorBoard's logdir, or what `perfdoctor view` was given).

    --logdir RUN/tb                  one run: RUN (the logdir is its `tb/`)
    --logdir RUN                     one run
    --logdir perfdoctor-runs/        every run directory below it
    --logdir traces/                 every folder holding *.pt.trace.json[.gz] files, as a run of
                                     foreign traces (its report, if `perfdoctor report traces/` made
                                     one, is read from traces/perfdoctor-report/)

A run directory is one holding `raw/` (what perfdoctor measured) or `report.json` next to `tb/`.
Its state: `running` while the pid holding `RUN/.lock` is alive and no newer report was written,
`finished` with a report.json, `no report` otherwise (killed before it wrote one: `perfdoctor
report RUN` writes it from what was measured).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..stream.lock import LOCK_NAME
from ..stream.rundir import SCALARS_SUFFIX, TRACE_SUFFIXES, pid_alive

MAX_DEPTH = 6  # folders below the logdir searched for runs
MAX_FOLDERS = 5000  # and no more than this many (a logdir pointed at a home directory stays fast)
RESCAN_S = 5.0  # runs are found again at most this often
FOREIGN_REPORT = "perfdoctor-report"  # where `perfdoctor report DIR` writes a folder's reports

State = Literal["running", "finished", "no report", "traces"]


@dataclass(frozen=True)
class ViewedRun:
    id: str  # stable and URL-safe: a slug of the name and a hash of the path
    name: str  # for people: the path below the logdir
    root: Path  # the run directory, or the folder of foreign traces
    traces: tuple[Path, ...]
    report_dir: Path | None  # where report.json and report.html are (or would be)
    perfdoctor_run: bool  # a run directory (raw/ measured by perfdoctor), not foreign traces

    @property
    def report_json(self) -> Path | None:
        return self.report_dir / "report.json" if self.report_dir else None

    @property
    def report_html(self) -> Path | None:
        return self.report_dir / "report.html" if self.report_dir else None

    def has_report(self) -> bool:
        return bool(self.report_json and self.report_json.is_file())

    def state(self) -> State:
        if self.perfdoctor_run and _lock_holder_alive(self.root):
            return "running"
        if self.has_report():
            return "finished"
        return "no report" if self.perfdoctor_run else "traces"

    def trace_names(self) -> dict[str, Path]:
        """Each trace by its path below the run (as report.json names it)."""
        return {_relative(path, self.root): path for path in self.traces}

    def find_trace(self, name: str | None) -> Path | None:
        """The trace a link names: by its path below the run, else by file name (a foreign
        report names traces as they were given on its command line). Only this run's traces."""
        if not self.traces:
            return None
        if not name:
            return self.traces[0]
        named = self.trace_names()
        if name in named:
            return named[name]
        base = Path(name).name
        return next((path for path in self.traces if path.name == base), None)


def _lock_holder_alive(root: Path) -> bool:
    try:
        text = (root / LOCK_NAME).read_text().strip()
    except OSError:
        return False
    return text.isdigit() and int(text) != os.getpid() and pid_alive(int(text))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def is_trace(name: str) -> bool:
    return name.endswith(TRACE_SUFFIXES)


def is_run_dir(folder: Path) -> bool:
    return (folder / "raw").is_dir() or ((folder / "report.json").is_file() and (folder / "tb").is_dir())


def _run_id(name: str, root: Path) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:48] or "run"
    digest = hashlib.sha1(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{slug}-{digest}"


def _traces_below(folder: Path) -> tuple[Path, ...]:
    found: list[Path] = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "raw")
        found.extend(Path(base) / name for name in files if is_trace(name))
    return tuple(sorted(found))


def _enclosing_run(logdir: Path) -> Path | None:
    """The run directory the logdir is (or is inside of: RUN/tb, RUN/tb/<name>)."""
    for folder in (logdir, *list(logdir.parents)[:3]):
        if is_run_dir(folder) and (folder == logdir or logdir.is_relative_to(folder / "tb")):
            return folder
    return None


def discover(logdir: Path) -> list[ViewedRun]:
    """Every run below `logdir` (see the module docstring), by name."""
    logdir = logdir.resolve()
    if not logdir.is_dir():
        return []
    enclosing = _enclosing_run(logdir)
    if enclosing is not None:
        return [_run(enclosing, enclosing.name)]
    runs: list[ViewedRun] = []
    visited = 0
    for base, dirs, files in os.walk(logdir):
        folder = Path(base)
        visited += 1
        depth = len(folder.relative_to(logdir).parts)
        name = folder.relative_to(logdir).as_posix() if folder != logdir else logdir.name
        if is_run_dir(folder):
            runs.append(_run(folder, name))
            dirs[:] = []
            continue
        if any(is_trace(f) for f in files) or any(f.endswith(SCALARS_SUFFIX) for f in files):
            traces = tuple(sorted(folder / f for f in files if is_trace(f)))
            if traces:
                report = folder / FOREIGN_REPORT
                runs.append(ViewedRun(_run_id(name, folder), name, folder, traces, report, False))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != FOREIGN_REPORT)
        if depth >= MAX_DEPTH or visited >= MAX_FOLDERS:
            dirs[:] = []
    return sorted(runs, key=lambda run: run.name)


def _run(root: Path, name: str) -> ViewedRun:
    return ViewedRun(_run_id(name, root), name, root, _traces_below(root / "tb"), root, True)


@dataclass
class RunIndex:
    """The runs below a logdir, found again when asked for after RESCAN_S (runs come and go
    while TensorBoard is open)."""

    logdir: Path
    _runs: list[ViewedRun] = field(default_factory=list)
    _at: float = float("-inf")

    def runs(self, fresh: bool = False) -> list[ViewedRun]:
        now = time.monotonic()
        if fresh or now - self._at > RESCAN_S:
            self._runs, self._at = discover(self.logdir), now
        return list(self._runs)

    def get(self, run_id: str) -> ViewedRun | None:
        found = next((run for run in self.runs() if run.id == run_id), None)
        if found is None:  # a run that appeared since the last look
            found = next((run for run in self.runs(fresh=True) if run.id == run_id), None)
        return found
