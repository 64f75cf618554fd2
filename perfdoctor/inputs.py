"""What `perfdoctor report` may read and where it may write, checked before anything is read.

Each PATH is a run directory, a trace file, or a directory of traces. Refused up front, in one
line naming the path (exit status 2):

- a path that does not exist, a dangling symlink (saying where it points), a symlink loop, a
  path that cannot be looked at (permission);
- anything that is neither a regular file nor a directory: a FIFO or a socket (reading one waits
  for a writer that may never come), a character or block device (``/dev/zero`` never ends).

In a directory of traces, every ``*.json`` and ``*.json.gz`` entry is a trace, except
perfdoctor's own ``report.json``; an entry that cannot be used (a FIFO, a dangling link, a
directory named ``x.json``) is skipped and named in the report's notes.

Reports go to ``report.json`` and ``report.html`` in the output directory. Refused: an output
directory that is a file (or anything but a directory), and an output file that is an input
(the same file, by any name or link) or a symlink: nothing given as input is ever overwritten.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PerfdoctorError
from .readfile import describe_mode, describe_os_error
from .stream.rundir import RunDir
from .trace.errors import shown

TRACE_SUFFIXES = (".json", ".json.gz")
REPORT_FILES = ("report.json", "report.html")
_OWN_REPORT = b'{"schema":"perfdoctor.report/'


def stat_input(path: Path) -> os.stat_result:
    """The stat of an input that is a regular file or a directory; PerfdoctorError otherwise."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise PerfdoctorError(f"{path}: {describe_os_error(path, error)}") from None
    except ValueError:  # an embedded NUL byte
        raise PerfdoctorError(f"{path!r}: not a valid path") from None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise PerfdoctorError(
            f"{path}: is a {describe_mode(info.st_mode)}, not a trace file or a directory (refused: it may never end)"
        )
    return info


@dataclass
class ReportInputs:
    """The checked inputs of one `perfdoctor report`: a run directory, or trace files."""

    paths: list[Path]
    run_dir: Path | None = None
    traces: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # directory entries that are not usable traces

    @classmethod
    def check(cls, paths: list[Path]) -> "ReportInputs":
        """Refuse what cannot be read at all; list the traces of directories."""
        if not paths:
            raise PerfdoctorError("no input given")
        seen: dict[tuple[int, int], Path] = {}
        unique: list[Path] = []
        for path in paths:
            info = stat_input(path)
            if (info.st_dev, info.st_ino) not in seen:  # the same input twice is read once
                seen[(info.st_dev, info.st_ino)] = path
                unique.append(path)
        inputs = cls(paths=unique)
        if len(unique) == 1 and Path(unique[0]).is_dir() and RunDir(unique[0]).is_run():
            inputs.run_dir = unique[0]
            return inputs
        for path in unique:
            if path.is_dir():
                found, skipped = list_traces(path)
                inputs.traces += found
                inputs.skipped += skipped
            else:
                inputs.traces.append(path)
        if not inputs.traces:
            why = f" ({'; '.join(inputs.skipped)})" if inputs.skipped else ""
            raise PerfdoctorError(f"no trace files (*.json, *.json.gz) in {', '.join(str(p) for p in unique)}{why}")
        return inputs

    def files(self) -> list[Path]:
        """Every file this report reads."""
        if self.run_dir is None:
            return list(self.traces)
        run = RunDir(self.run_dir)
        raw = sorted(p for p in run.raw.iterdir()) if run.raw.is_dir() else []
        return raw + run.trace_files()

    def check_output(self, out: Path) -> None:
        """Make sure reports can be written to out without replacing an input; create out."""
        try:
            info = os.stat(out)
        except FileNotFoundError:
            if os.path.islink(out):
                raise PerfdoctorError(f"cannot write reports to {out}: a symlink to {os.readlink(out)}, which does not exist") from None
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise PerfdoctorError(f"cannot create the output directory {out}: {describe_os_error(out, error)}") from None
            return  # new and empty: it holds no input
        except OSError as error:
            raise PerfdoctorError(f"cannot write reports to {out}: {describe_os_error(out, error)}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise PerfdoctorError(f"cannot write reports to {out}: it is a {describe_mode(info.st_mode)}, not a directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise PerfdoctorError(f"cannot write reports to {out}: permission denied")
        inputs = set()
        for path in self.files():
            try:
                found = os.stat(path)
            except OSError:
                continue
            inputs.add((found.st_dev, found.st_ino))
        for name in REPORT_FILES:
            target = out / name
            try:
                link = os.lstat(target)
            except FileNotFoundError:
                continue
            except OSError as error:
                raise PerfdoctorError(f"cannot write {target}: {describe_os_error(target, error)}") from None
            if stat.S_ISLNK(link.st_mode):
                raise PerfdoctorError(f"cannot write {target}: it is a symlink (perfdoctor replaces only files it wrote)")
            if (link.st_dev, link.st_ino) in inputs:
                raise PerfdoctorError(f"{target} is an input: writing the report there would overwrite it (choose another --out)")
            if not stat.S_ISREG(link.st_mode):
                raise PerfdoctorError(f"cannot write {target}: it is a {describe_mode(link.st_mode)}")


def list_traces(directory: Path) -> tuple[list[Path], list[str]]:
    """The trace files in a directory, and why other entries named like traces were skipped.
    With none at its top level, torch.profiler's traces anywhere below it (a run directory's
    RUN/tb/<name>/ holds them)."""
    try:
        entries = sorted((Path(entry.path) for entry in os.scandir(directory)), key=lambda path: path.name)
        if not any(path.name.endswith(TRACE_SUFFIXES) for path in entries):
            entries = sorted(path for path in directory.rglob("*.pt.trace.json*") if path.name.endswith(TRACE_SUFFIXES))
    except OSError as error:
        raise PerfdoctorError(f"{directory}: cannot list ({describe_os_error(directory, error)})") from None
    found: list[Path] = []
    skipped: list[str] = []
    for path in entries:
        if not path.name.endswith(TRACE_SUFFIXES):
            continue
        try:
            info = os.stat(path)
        except OSError as error:
            skipped.append(f"{shown(path)}: {describe_os_error(path, error)}")
            continue
        if not stat.S_ISREG(info.st_mode):
            skipped.append(f"{shown(path)}: a {describe_mode(info.st_mode)}, not a trace file")
            continue
        if path.name == "report.json" and _is_own_report(path):
            continue
        found.append(path)
    return found, skipped


def _is_own_report(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_OWN_REPORT)) == _OWN_REPORT
    except OSError:
        return False
