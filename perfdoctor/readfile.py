"""Reading a file perfdoctor was pointed at (by the user, or by a path inside its data) only when
it is a regular file: a FIFO or a socket would wait for a writer that may never come, a device
such as /dev/zero never ends. The check is made on the open descriptor, so a file swapped for a
FIFO after it was listed is refused too."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotRegularFile(OSError):
    """A path that is something other than a regular file; `strerror` says what."""


def describe_mode(mode: int) -> str:
    """What kind of file a stat mode is, in words."""
    kinds = (
        (stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"),
        (stat.S_ISLNK, "symlink"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def describe_os_error(path: Path, error: OSError) -> str:
    """Why path cannot be used, in a few words: never "no such file" for a symlink loop."""
    if isinstance(error, NotRegularFile):
        return str(error.strerror)
    if error.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    if error.errno == errno.ENOENT and os.path.islink(path):
        try:
            return f"a symlink to {os.readlink(path)}, which does not exist"
        except OSError:
            return "a dangling symlink"
    if error.errno == errno.ENOENT:
        return "no such file or directory"
    if error.errno == errno.ENOTDIR:
        return "a part of the path is not a directory"
    return error.strerror.lower() if error.strerror else str(error)


def open_regular(path: Path | str) -> int:
    """A read-only descriptor of `path`, which must be a regular file; NotRegularFile otherwise.
    Opening never blocks: O_NONBLOCK makes a FIFO open at once (and is then refused)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, f"is a {describe_mode(mode)}, not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path | str) -> bytes:
    """The whole content of a regular file; OSError (NotRegularFile for a FIFO, a device, a
    socket, a directory) when it cannot be read."""
    with os.fdopen(open_regular(path), "rb") as file:
        return file.read()
