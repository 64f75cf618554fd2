"""The one exception type for errors in perfdoctor's own input, and the exit codes it maps to."""

from __future__ import annotations

# Exit codes of perfdoctor's own commands (a `run` otherwise exits with the script's status).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class PerfdoctorError(Exception):
    """A problem with what the user gave perfdoctor: printed as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
