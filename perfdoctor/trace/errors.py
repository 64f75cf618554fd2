"""The one error the trace reader raises for input it cannot use."""

from __future__ import annotations

import os
from pathlib import Path

from perfdoctor.terminal import printable


class TraceError(Exception):
    """A trace file that cannot be read; the message is one line meant for the user.

    The command line turns it into exit status 2 (``exit_code``).
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        # One line whatever the file is called: a newline or an escape sequence in a file name is
        # kept as a visible escape, not collapsed (that would misname the file) nor printed raw.
        super().__init__(printable(message))


def shown(path: str | Path) -> str:
    """A path as text that any report can hold and any terminal can show: the bytes of a name
    that are not UTF-8 (kept by os.fsdecode as lone surrogates, which no UTF-8 file can store)
    and control characters become visible escapes (\\xff, \\x1b, \\n)."""
    return printable(os.fspath(path))
