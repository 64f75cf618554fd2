"""Files that are replaced rather than appended (report.json, report.html, summaries): written to
a temporary file beside the target and renamed over it, so a reader sees the old file or the new
one, never half of either. A failed write removes its temporary file and leaves the old file be.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ..terminal import data_without_surrogates


def write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, or a signal mid-write: no half file, no .tmp left behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, payload: Any) -> Path:
    """JSON, compact; NaN and infinity (which JSON lacks) become null, meaning "unknown". A lone
    surrogate (the undecodable byte of a file name) is written as a visible `\\xNN` escape: as
    an escape of its own it would make the file invalid UTF-8 for every strict reader."""
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(finite(payload), separators=(",", ":"), allow_nan=False, default=str)
    if _SURROGATE_ESCAPE.search(text):
        text = json.dumps(data_without_surrogates(finite(payload)), separators=(",", ":"), allow_nan=False, default=str)
    return write_text(path, text)


# What json.dumps writes for a UTF-16 surrogate (a pair, for characters beyond U+FFFF, matches too:
# cleaning then changes nothing, so a false alarm costs only a second encoding).
_SURROGATE_ESCAPE = re.compile(r"\\ud[89a-f][0-9a-f]{2}")


def finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value
