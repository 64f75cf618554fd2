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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import jsonfile
from . import assemble, lines
from .atomic import write_json

RAW_SCHEMA = "perfdoctor.raw/1"
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")
SCALARS_SUFFIX = ".perfdoctor"  # TensorBoard event files perfdoctor writes end with this
_RAW_FILE = re.compile(r"^(?P<name>[a-z_]+)(?:\.rank(?P<rank>\d+))?\.(?P<ext>jsonl|json)$")


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

    def read_stream(self, name: str, rank: int | None) -> lines.Records | None:
        path = self.stream_path(name, rank)
        return lines.read(path) if path.exists() else None

    def read_raw_file(self, name: str, rank: int | None) -> dict[str, Any] | None:
        """One rank's raw data `name` as one dict, or None if absent or unreadable."""
        found = self.read_stream(name, rank)
        if found is not None:
            data: dict[str, Any] = (
                assemble.ASSEMBLERS[name](found.records) if name in assemble.ASSEMBLERS else {"records": found.records}
            )
            if name == "profiler":
                self._add_unrecorded_traces(data)
            elif name == "run":
                data["notes"] = [*(data.get("notes") or []), *self._stream_notes(rank)]
            return data or None
        try:
            data = jsonfile.load(self.raw_path(name, rank))
        except (OSError, jsonfile.UnreadableJSON):
            return None  # a file that died mid-write loses itself, nothing else
        return data if isinstance(data, dict) else None

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

    def trace_files(self) -> list[Path]:
        """The run's own traces: those its profiler streams name, wherever they are under RUN/tb.
        A run directory from before streaming: every trace under RUN/tb."""
        if not self.tb.is_dir():
            return []
        if not self.is_streamed():
            return sorted(p for p in self.tb.rglob("*") if p.name.endswith(TRACE_SUFFIXES))
        found: set[Path] = set()
        for rank in self.ranks("profiler"):
            profiler = self.read_raw_file("profiler", rank) or {}
            found.update(self.root / str(path) for path in profiler.get("traces") or [])
        return sorted(path for path in found if path.is_file())

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
        listed = set(profiler.get("traces") or [])
        for path in sorted((self.root / folder).glob(f"{glob_escape(worker)}.*")):
            relative = str(path.relative_to(self.root))
            if path.name.endswith(TRACE_SUFFIXES) and relative not in listed:
                profiler["traces"].append(relative)

    def _stream_notes(self, rank: int | None) -> list[str]:
        notes = []
        for name, file_rank, path in sorted(self._raw_files(), key=lambda item: item[0]):
            if file_rank != rank or path.suffix != lines.SUFFIX:
                continue
            found = lines.read(path)
            if found is not None and found.skipped:
                notes.append(
                    f"{found.skipped} damaged record(s) in {path.name} were skipped (a write cut short, "
                    "e.g. by a kill or a full disk); everything before them was read."
                )
        profiler = self.read_stream("profiler", rank)
        if profiler is not None:
            export = assemble.profiler(profiler.records).get("export")
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
                traces.update(self.root / str(trace) for trace in profiler.get("traces") or [] if str(trace).endswith(TRACE_SUFFIXES))
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
