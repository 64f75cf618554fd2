"""The run directory: where every file lives, and how raw files are written and read.

    RUN/report.html   RUN/report.json
    RUN/tb/           scalars and torch.profiler traces (`tensorboard --logdir RUN/tb`)
    RUN/raw/          collector outputs; `NAME.json`, or `NAME.rankN.json` under torch.distributed

Collection and analysis meet only through these files.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import jsonfile

RAW_SCHEMA = "perfdoctor.raw/1"
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")
_RANK_FILE = re.compile(r"^(?P<name>[a-z_]+)(?:\.rank(?P<rank>\d+))?\.json$")


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

    def raw_path(self, name: str, rank: int | None) -> Path:
        suffix = "" if rank is None else f".rank{rank}"
        return self.raw / f"{name}{suffix}.json"

    def write_raw(self, name: str, rank: int | None, payload: dict[str, Any]) -> Path:
        return write_json(self.raw_path(name, rank), {"schema": RAW_SCHEMA, **payload})

    def read_raw_file(self, name: str, rank: int | None) -> dict[str, Any] | None:
        """One rank's copy of one raw file, or None if absent or unreadable."""
        try:
            data = jsonfile.load(self.raw_path(name, rank))
        except (OSError, jsonfile.UnreadableJSON):
            return None  # a collector that died mid-write loses its own file, nothing else
        return data if isinstance(data, dict) else None

    def ranks(self, name: str = "run") -> list[int | None]:
        """The ranks that wrote a raw file `name` (None: a run without torch.distributed)."""
        if not self.raw.is_dir():
            return []
        found = []
        for path in self.raw.glob(f"{name}*.json"):
            match = _RANK_FILE.match(path.name)
            if match and match["name"] == name:
                found.append(int(match["rank"]) if match["rank"] else None)
        return sorted(found, key=lambda rank: -1 if rank is None else rank)

    def read_raw(self, name: str) -> dict[int | None, dict[str, Any]]:
        """Every rank's copy of one raw file, keyed by rank (None when not distributed)."""
        found: dict[int | None, dict[str, Any]] = {}
        if not self.raw.is_dir():
            return found
        for path in sorted(self.raw.iterdir()):
            match = _RANK_FILE.match(path.name)
            if not match or match["name"] != name:
                continue
            try:
                data = jsonfile.load(path)
            except (OSError, jsonfile.UnreadableJSON):
                continue  # a collector that died mid-write loses its own file, nothing else
            if isinstance(data, dict):
                found[int(match["rank"]) if match["rank"] else None] = data
        return found

    def is_run(self) -> bool:
        return self.raw.is_dir() and any(self.raw.glob("run*.json"))

    def trace_files(self) -> list[Path]:
        if not self.tb.is_dir():
            return []
        return sorted(p for p in self.tb.rglob("*") if p.name.endswith(TRACE_SUFFIXES))


def write_json(path: Path, payload: Any) -> Path:
    """Write atomically, so a reader never sees half a file, even if the run is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:  # NaN or infinity somewhere: JSON has no such numbers, null says "unknown"
        text = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False, default=str)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def default_run_dir(target_name: str, base: Path | None = None) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(target_name).stem or target_name) or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return (base or Path("perfdoctor-runs")) / f"{stem}-{stamp}"
