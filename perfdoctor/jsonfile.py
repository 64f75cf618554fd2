"""Reading perfdoctor's own small JSON files (raw files, summaries, report.json) with one error
type, whatever is wrong with them: bytes that are not UTF-8, text that is not JSON (`NaN` and
`Infinity` are not JSON), a number out of a float's range (`1e400`), nesting deeper than the
parser goes (RecursionError), an integer beyond 64 bits (every integer perfdoctor writes fits in
one; hundreds of digits would only make arithmetic fail later). Only regular files are read
(see readfile.py)."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

import msgspec

from .readfile import read_regular


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 1000  # levels of nesting; none of perfdoctor's own documents comes near
_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # UTF-32 LE first: it starts as UTF-16 LE's
_LONG_NUMBER = re.compile(rb"[0-9]{19}")  # an integer beyond 64 bits has 19 digits or more


class UnreadableJSON(ValueError):
    """The text is not JSON this reader can use; the message is one line."""


def loads(data: bytes | str) -> Any:
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        value = msgspec.json.decode(raw)
    except UnicodeEncodeError:  # a str holding lone surrogates
        raise UnreadableJSON("invalid UTF-8 (a lone surrogate)") from None
    except RecursionError:
        raise UnreadableJSON("nested too deeply") from None
    except msgspec.ValidationError as error:  # a number out of range
        raise UnreadableJSON(" ".join(str(error).split()).split(" - at ")[0]) from None
    except msgspec.DecodeError as error:
        message = " ".join(str(error).split())
        if isinstance(raw, bytes) and not raw.strip():
            message = "empty" if not raw else "only whitespace"
        elif raw.startswith(_BOMS):
            message = "invalid UTF-8: the text is UTF-16 or UTF-32 (it starts with a byte-order mark), and JSON is UTF-8"
        elif raw.startswith(codecs.BOM_UTF8):
            message = "a UTF-8 byte-order mark before the text (JSON has none)"
        elif message == "Invalid UTF-8 encoded string":
            message = _utf8_error(raw)
        raise UnreadableJSON(message) from None
    if too_deep(raw, value):
        raise UnreadableJSON("nested too deeply")
    place = huge_integer(value) if _LONG_NUMBER.search(raw) else None
    if place is not None:
        raise UnreadableJSON(f"an integer beyond 64 bits at {place}")
    return value


def too_deep(raw: bytes, value: Any) -> bool:
    """Whether a decoded document nests more than MAX_DEPTH levels. The decoder's own limit
    follows Python's recursion limit, which any library may raise: this one does not move."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:  # cheap: most documents cannot be that deep
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values() if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


def huge_integer(value: Any) -> str | None:
    """Where (`$.a[3].b`) the first integer beyond 64 bits in a decoded document is; None if
    there is none. A walk with a stack, not recursion: the document may be deep."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, place = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, f"{place}.{key}") for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((child, f"{place}[{index}]") for index, child in reversed(list(enumerate(item))))
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            return place
    return None


def has_long_number(line: bytes) -> bool:
    """Whether a line of JSON may hold an integer beyond 64 bits (then huge_integer tells)."""
    return _LONG_NUMBER.search(line) is not None


def load(path: Path) -> Any:
    """The JSON in a file; OSError when it cannot be read (or is not a regular file),
    UnreadableJSON when it is not JSON."""
    return loads(read_regular(path))


def _utf8_error(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"invalid UTF-8 at byte {error.start}"
    return "invalid UTF-8"
