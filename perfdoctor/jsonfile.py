"""Reading perfdoctor's own small JSON files (raw files, summaries, report.json) with one error
type, whatever the parser raises: the standard library's json raises ValueError for bad syntax,
UnicodeDecodeError for bad bytes and RecursionError for deep nesting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class UnreadableJSON(ValueError):
    """The text is not JSON this reader can use; the message is one line."""


def loads(data: bytes | str) -> Any:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text)
    except UnicodeDecodeError as error:
        raise UnreadableJSON(f"invalid UTF-8 at byte {error.start}") from None
    except RecursionError:
        raise UnreadableJSON("nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError, and int() refusing a huge number
        raise UnreadableJSON(" ".join(str(error).split())) from None


def load(path: Path) -> Any:
    """The JSON in a file; OSError when it cannot be read, UnreadableJSON when it is not JSON."""
    return loads(Path(path).read_bytes())
