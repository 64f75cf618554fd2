"""The run directory's lock: one run writes into a directory at a time.

`RUN/.lock` is held with flock(2) for the whole run, by the supervising `perfdoctor run` (or by
the in-process run, or by the launcher of a torchrun job). The kernel releases it when its holder
dies, however it dies, so a killed run never leaves a stale lock. The ranks of a job share it:
the launcher holds it for them, or, under a torchrun the user started, each rank holds it shared
and its own `RUN/.lock.rankN` exclusively. The holder's pid is written in the file, to be named
when a second run is refused.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import PerfdoctorError

LOCK_NAME = ".lock"


class RunLock:
    def __init__(self, root: Path, rank: int | None = None) -> None:
        self.root = Path(root)
        self.rank = rank
        self._fds: list[int] = []

    def acquire(self, shared_with_ranks: bool = False, own_rank_only: bool = False) -> "RunLock":
        """Exclusive by default. `shared_with_ranks`: this rank's file exclusively and the
        directory's shared; `own_rank_only`: just this rank's (the launcher holds the directory)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if not own_rank_only:
                self._take(self.root / LOCK_NAME, fcntl.LOCK_SH if shared_with_ranks else fcntl.LOCK_EX)
            if shared_with_ranks or own_rank_only:
                self._take(self.root / f"{LOCK_NAME}.rank{self.rank}", fcntl.LOCK_EX)
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, path: Path, mode: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise PerfdoctorError(f"{self.root} is in use by another perfdoctor run ({who}); choose another --out")
        self._fds.append(fd)
        if mode == fcntl.LOCK_EX:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        elif os.fstat(fd).st_size == 0:  # shared: the first holder names itself
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        for fd in reversed(self._fds):
            try:
                os.close(fd)  # closing the descriptor releases the flock
            except OSError:
                pass
        self._fds = []

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
