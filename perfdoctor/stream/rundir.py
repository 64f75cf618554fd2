"""The run directory: where every file lives, and how raw data is read back.

    RUN/report.html   RUN/report.json
    RUN/tb/           scalars and torch.profiler traces (`tensorboard --logdir RUN/tb`)
    RUN/raw/          streams `NAME.jsonl` (`NAME.rankN.jsonl` under torch.distributed), appended
                      while the job runs; summaries `NAME[.rankN].json`, replaced atomically
    RUN/.lock         held while a run writes here (see `lock.py`)

Collection and analysis meet only through these files. `read_raw_file` and `read_raw` give the
analysis each stream assembled into one dict (`assemble.py`); a run directory written before
streaming (`NAME.json` files) reads the same way.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .. import jsonfile
from ..readfile import describe_os_error
from ..terminal import without_surrogates
from . import assemble, lines, shapes
from .atomic import write_json

RAW_SCHEMA = "perfdoctor.raw/1"
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")
SCALARS_SUFFIX = ".perfdoctor"  # TensorBoard event files perfdoctor writes end with this
_RAW_FILE = re.compile(r"^(?P<name>[a-z_]+)(?:\.rank(?P<rank>\d+))?\.(?P<ext>jsonl|json)$")


def tb_run_name(name: str) -> str:
    """The folder under RUN/tb for a run named `name` (a script's stem): UTF-8 text, a file name's
    undecodable bytes as `_xff`, never a backslash (Kineto's trace export takes one for a path
    separator and loses the trace). The same for the name as recorded (`\\xff` escapes)."""
    return without_surrogates(name).replace("\\", "_")


@dataclass
class RawRead:
    """One raw file as read: its data (None if absent or unreadable) and what was wrong with it,
    in sentences for the report's notes."""

    data: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    unreadable: str | None = None  # why the file could not be read at all

    @classmethod
    def refused(cls, where: str, why: str) -> "RawRead":
        return cls(None, [f"{where} could not be read ({why}); what it holds is left out of the report."], f"{where}: {why}")


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def create(self) -> "RunDir":
        self.raw.mkdir(parents=True, exist_ok=True)
        self.tb.mkdir(parents=True, exist_ok=True)
        return self

    # -- paths --------------------------------------------------------------------------------

    def raw_path(self, name: str, rank: int | None) -> Path:
        """A summary file (replaced whole): `NAME[.rankN].json`."""
        return self.raw / f"{name}{_rank_suffix(rank)}.json"

    def stream_path(self, name: str, rank: int | None) -> Path:
        """A stream (appended): `NAME[.rankN].jsonl`."""
        return self.raw / f"{name}{_rank_suffix(rank)}{lines.SUFFIX}"

    # -- writing summaries ---------------------------------------------------------------------

    def write_raw(self, name: str, rank: int | None, payload: dict[str, Any]) -> Path:
        return write_json(self.raw_path(name, rank), {"schema": RAW_SCHEMA, **payload})

    # -- reading --------------------------------------------------------------------------------
    # Nothing outside the run directory is read, whatever its data says: a path named in the
    # data is relative and never goes up (`..`), and no file is followed through a symlink out.

    def read_stream(self, name: str, rank: int | None) -> lines.Records | None:
        path = self.stream_path(name, rank)
        if not os.path.lexists(path):
            return None
        outside = self.outside(path)
        return lines.Records(unreadable=outside) if outside else lines.read(path)

    def read_raw_file(self, name: str, rank: int | None) -> dict[str, Any] | None:
        """One rank's raw data `name` as one dict, or None if absent or unreadable. The run's
        data carries, in its notes, what was wrong with any of the rank's raw files."""
        data = self.read_raw_checked(name, rank).data
        if data is not None and name == "run":
            data["notes"] = [*(data.get("notes") or []), *self._raw_notes(rank)]
        return data

    def raw_file_name(self, name: str, rank: int | None) -> str:
        """`raw/NAME[.rankN].jsonl`, or the `.json` of a run from before streaming."""
        stream = self.stream_path(name, rank)
        return f"raw/{(stream if os.path.lexists(stream) else self.raw_path(name, rank)).name}"

    def read_raw_checked(self, name: str, rank: int | None) -> RawRead:
        """One rank's raw data `name` as one dict (None if absent or unreadable), and what was
        wrong with its file."""
        found = self.read_stream(name, rank)
        if found is not None:
            where = f"raw/{self.stream_path(name, rank).name}"
            if found.unreadable:
                return RawRead.refused(where, found.unreadable)
            problems: list[str] = []
            if found.skipped:
                problems.append(
                    f"{found.skipped} damaged record(s) in {where} were skipped (a write cut short, e.g. by a kill or a "
                    "full disk); everything else was read."
                )
            records, rejected = shapes.check_records(name, found.records)
            if rejected:
                problems.append(
                    f"{len(rejected)} record(s) in {where} were not in the shape this perfdoctor reads and were "
                    f"skipped (the first: {rejected[0]})."
                )
            data: dict[str, Any] = (
                assemble.ASSEMBLERS[name](records, problems) if name in assemble.ASSEMBLERS else {"records": records}
            )
            if name == "profiler":
                self._add_unrecorded_traces(data)
            return RawRead(data or None, problems)
        path = self.raw_path(name, rank)
        if not os.path.lexists(path):
            return RawRead(None)
        why = self.outside(path)
        if why is None:
            try:
                data = jsonfile.load(path)
            except OSError as error:
                why = describe_os_error(path, error)
            except jsonfile.UnreadableJSON as error:
                why = f"not JSON: {error}"
            else:
                if isinstance(data, dict):
                    return RawRead(data)
                why = "not a JSON object"
        return RawRead.refused(f"raw/{path.name}", why)

    def read_raw(self, name: str) -> dict[int | None, dict[str, Any]]:
        """Every rank's raw data `name`, keyed by rank (None when not distributed)."""
        found: dict[int | None, dict[str, Any]] = {}
        for rank in self.ranks(name):
            data = self.read_raw_file(name, rank)
            if data is not None:
                found[rank] = data
        return found

    def ranks(self, name: str = "run") -> list[int | None]:
        """The ranks that left raw data `name` (None: a run without torch.distributed)."""
        found = {rank for kind, rank, _ in self._raw_files() if kind == name}
        return sorted(found, key=lambda rank: -1 if rank is None else rank)

    def is_run(self) -> bool:
        return bool(self.ranks("run"))

    def is_streamed(self) -> bool:
        return any(path.suffix == lines.SUFFIX for _, _, path in self._raw_files())

    def outside(self, path: Path) -> str | None:
        """Why `path`, under the run directory, is not to be read: through a symlink it leads out
        of the run directory (and where to); None when it stays inside."""
        root = os.path.realpath(self.root)
        target = os.path.realpath(path)
        if target == root or target.startswith(root.rstrip(os.sep) + os.sep):
            return None
        return f"it leads out of the run directory, to {target}: not read"

    def run_file(self, relative: object) -> tuple[Path | None, str | None]:
        """A file the run's data names (a trace), relative to the run directory: its path, or
        None and why it is not read (an absolute path, `..`, a symlink out of the directory)."""
        text = str(relative)
        if not text or "\x00" in text:
            return None, f"{text!r} is not a usable path"
        if os.path.isabs(text):
            return None, f"{text} is an absolute path, and only files inside the run directory are read"
        if ".." in Path(text).parts:
            return None, f"{text} goes up out of the run directory (..), and only files inside it are read"
        path = self.root / text
        outside = self.outside(path)
        return (None, f"{text}: {outside}") if outside else (path, None)

    def trace_files(self, refused: list[str] | None = None) -> list[Path]:
        """The run's own traces: those its profiler streams name, wherever they are under RUN/tb.
        A run directory from before streaming: every trace under RUN/tb. `refused` gets why a
        trace named or found was not taken (it leads out of the run directory)."""
        refused = refused if refused is not None else []
        if not self.tb.is_dir():
            return []
        if not self.is_streamed():
            found = sorted(p for p in self.tb.rglob("*") if p.name.endswith(TRACE_SUFFIXES))
            refused += [f"{p.relative_to(self.root)}: {self.outside(p)}" for p in found if self.outside(p)]
            return [p for p in found if not self.outside(p) and p.is_file()]
        named: set[Path] = set()
        for rank in self.ranks("profiler"):
            profiler = self.read_raw_file("profiler", rank) or {}
            for relative in profiler.get("traces") or []:
                path, why = self.run_file(relative)
                if path is None:
                    refused.append(str(why))
                else:
                    named.add(path)
        return sorted(path for path in named if path.is_file())

    def _raw_files(self) -> Iterator[tuple[str, int | None, Path]]:
        if not self.raw.is_dir():
            return
        for path in self.raw.iterdir():
            match = _RAW_FILE.match(path.name)
            if match:
                yield match["name"], int(match["rank"]) if match["rank"] else None, path

    def _add_unrecorded_traces(self, profiler: dict[str, Any]) -> None:
        """A trace whose export finished just before the process died has no record yet: its
        file (complete: exports are renamed into place) is found by the name the stream gave."""
        output = profiler.pop("output", None) or {}
        folder, worker = output.get("folder"), output.get("worker")
        if not folder or not worker or profiler.get("stood_aside") and not profiler.get("traces"):
            return
        directory, _ = self.run_file(folder)
        if directory is None or os.sep in worker or worker in (".", ".."):
            return  # a folder outside the run directory is not looked into
        listed = set(profiler.get("traces") or [])
        for path in sorted(directory.glob(f"{glob_escape(worker)}.*")):
            relative = str(path.relative_to(self.root))
            if path.name.endswith(TRACE_SUFFIXES) and relative not in listed and not self.outside(path):
                profiler["traces"].append(relative)

    def _raw_notes(self, rank: int | None) -> list[str]:
        """What was wrong with the rank's raw files (damaged records, files that could not be
        read), and what became of its trace export."""
        notes = []
        for name in sorted({name for name, file_rank, _ in self._raw_files() if file_rank == rank and name != "summary"}):
            notes += self.read_raw_checked(name, rank).problems
        profiler = self.read_stream("profiler", rank)
        if profiler is not None and not profiler.unreadable:
            export = assemble.profiler(shapes.check_records("profiler", profiler.records)[0]).get("export")
            if export:
                notes.append(f"The trace export was {export.get('status')}: {export.get('reason')}. No partial trace was kept.")
        return notes

    # -- an earlier run in the same directory --------------------------------------------------

    def clear_previous(self, rank: int | None = None) -> None:
        """Remove what an earlier run into this directory wrote: its raw streams and summaries,
        the traces and scalars they name, and (but for ranks other than 0) its reports. Only
        files perfdoctor recognises as its own are touched; anything else stays.

        `rank`: one rank of a torchrun job clears only its own files (its siblings clear theirs)."""
        ours: list[Path] = []
        traces: set[Path] = set()
        for name, file_rank, path in list(self._raw_files()):
            if rank is not None and file_rank != rank:
                continue
            if not self._is_ours(path):
                continue
            ours.append(path)
            if name == "profiler":
                profiler = self.read_raw_file("profiler", file_rank) or {}
                named = (self.run_file(trace)[0] for trace in profiler.get("traces") or [] if str(trace).endswith(TRACE_SUFFIXES))
                traces.update(path for path in named if path is not None)
            if name == "run" and path.suffix == ".json" and rank in (None, 0):
                legacy = self.read_raw_file("run", file_rank) or {}  # scalars where runs before streaming put them
                stem = Path(str(legacy.get("script") or "")).stem or legacy.get("module") or "run"
                ours += list((self.tb / str(stem)).glob("events.out.tfevents.*"))
        if not ours:
            return
        if rank in (None, 0):
            ours += [self.report_json, self.report_html]
            if self.tb.is_dir():
                ours += [p for p in self.tb.rglob(f"events.out.tfevents.*{SCALARS_SUFFIX}")]
        root = self.root.resolve()
        for path in [*ours, *traces]:
            if path.is_file() and root in path.resolve().parents:
                path.unlink()

    @staticmethod
    def _is_ours(path: Path) -> bool:
        if path.suffix == lines.SUFFIX:
            try:
                with open(path, "rb") as file:
                    first = file.readline()
            except OSError:
                return False
            return lines.STREAM_SCHEMA.encode() in first
        try:
            data = jsonfile.load(path)
        except (OSError, jsonfile.UnreadableJSON):
            return False
        return isinstance(data, dict) and data.get("schema") == RAW_SCHEMA


def _rank_suffix(rank: int | None) -> str:
    return "" if rank is None else f".rank{rank}"


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def default_run_dir(target_name: str, base: Path | None = None) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(target_name).stem or target_name) or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return (base or Path("perfdoctor-runs")) / f"{stem}-{stamp}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
