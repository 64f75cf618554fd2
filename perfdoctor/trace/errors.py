"""The one error the trace reader raises for input it cannot use."""

from __future__ import annotations

import os
from pathlib import Path


class TraceError(Exception):
    """A trace file that cannot be read; the message is one line meant for the user.

    The command line turns it into exit status 2 (``exit_code``).
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def shown(path: str | Path) -> str:
    """A path as text that any report can hold: the bytes of a name that are not UTF-8 (kept by
    os.fsdecode as lone surrogates, which no UTF-8 file can store) become \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
