"""Text from data made safe to print, and paths made safe to paste into a shell.

Op names, device names, file names, script names and error messages come from traces and runs
that perfdoctor did not write. Printed as they are, an ANSI escape sequence in one of them could
recolour, move the cursor or retitle the user's terminal, and a newline could forge a line of
output. :func:`printable` escapes every C0 and C1 control character (ESC, CSI, BEL, NEL,
newlines, tabs...), DEL, the Unicode bidirectional overrides that reorder what a reader sees,
and the undecodable bytes of a file name, as visible backslash escapes. :func:`shell_quote`
quotes a path for a command line the user is told to run.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

# C0 controls, DEL and C1 controls; bidi marks, embeddings, overrides and isolates; lone
# surrogates (os.fsdecode turns each undecodable byte of a file name into one).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(value: object) -> str:
    """str(value) with every control character escaped: `\\x1b[31m` prints as those 8 characters."""
    text = value if isinstance(value, str) else os.fsdecode(value) if isinstance(value, bytes) else str(value)
    return _UNSAFE.sub(_escape, text)


def without_surrogates(text: str) -> str:
    """text as UTF-8 can store it: each undecodable byte of a file name (a lone surrogate) as
    the same visible escape `printable` shows, `\\xff`; everything else unchanged."""
    return _SURROGATE.sub(_escape, text)


def data_without_surrogates(value: Any) -> Any:
    """`value` (dicts, lists, strings) with `without_surrogates` applied to every string in it,
    keys too."""
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, dict):
        return {data_without_surrogates(key): data_without_surrogates(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [data_without_surrogates(item) for item in value]
    return value


def shell_quote(path: object) -> str:
    """A path as one shell word: shlex.quote, or, for a name holding control characters or bytes
    that are not UTF-8, ANSI-C quoting ($'...', bash and zsh), which names those bytes exactly."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    if not _UNSAFE.search(text):
        return shlex.quote(text)
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as os.fsdecode keeps it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif _UNSAFE.match(char):
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        elif char in "\\'":
            out.append("\\" + char)
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
