"""The one error the trace reader raises for input it cannot use."""

from __future__ import annotations


class TraceError(Exception):
    """A trace file that cannot be read; the message is one line meant for the user.

    The command line turns it into exit status 2 (``exit_code``).
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
