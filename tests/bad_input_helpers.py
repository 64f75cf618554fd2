"""What every bad-input harness checks (issue 14), for `report`, `check` and `diff` alike: one
line and exit status 2, or a result; never a traceback, never a hang, never an input changed,
never a control character from the data on the terminal. Commands run in this process through
perfdoctor.cli.main under a deadline.

Plain functions rather than conftest.py fixtures (see trace_builders.py for why).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from perfdoctor.cli import main

CORPUS = Path(__file__).parent / "data" / "bad_inputs"
MANIFEST: dict[str, dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text())
DEADLINE_S = 60  # one command on a small input; generous for two shared, noisy cores
# Control characters on the terminal: C0 except the newline ending each line, DEL, C1, bidi controls.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# More examples for a longer search: PERFDOCTOR_HARNESS_EXAMPLES=500 pytest tests/test_bad_inputs.py -k any_
HARNESS = settings(
    max_examples=int(os.environ.get("PERFDOCTOR_HARNESS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Hang(BaseException):
    """Raised in the test when a command runs past its deadline (BaseException: no `except
    Exception` in perfdoctor can swallow it)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"perfdoctor still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def perfdoctor(capsys: Any, *args: str | Path) -> tuple[int, str, str]:
    """`perfdoctor ARGS` in this process, under the deadline: (exit status, stdout, stderr)."""
    capsys.readouterr()
    with deadline(DEADLINE_S):
        code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def report(capsys: Any, *args: str | Path) -> tuple[int, str]:
    """`perfdoctor report ARGS`: (exit status, everything printed)."""
    code, out, err = perfdoctor(capsys, "report", *args)
    return code, err + out


def fingerprint(paths: list[Path]) -> dict[Path, tuple]:
    """Contents and metadata of every regular file among paths (directories: their entries)."""
    found: dict[Path, tuple] = {}
    for path in paths:
        entries = [Path(e.path) for e in os.scandir(path)] if path.is_dir() and not path.is_symlink() else [path]
        for entry in entries:
            try:
                info = os.stat(entry)
            except OSError:
                continue
            if os.path.isfile(entry) and os.access(entry, os.R_OK):
                found[entry] = (hashlib.sha256(entry.read_bytes()).hexdigest(), info.st_size, info.st_mtime_ns, info.st_ino)
    return found


def fingerprint_tree(root: Path) -> dict[str, tuple]:
    """Every entry under root (not following symlinks): what it is, and a regular file's content."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = os.lstat(path)
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None
            link = os.readlink(path) if path.is_symlink() else None
            found[str(path.relative_to(root))] = (info.st_mode, content, link, info.st_mtime_ns)
    return found


def assert_one_line(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("perfdoctor: error: "), err
    assert "internal error" not in lines[0], err  # a bug of ours, not a refusal of the input
    return lines[0]


def assert_clean_terminal(err: str) -> None:
    assert "Traceback" not in err, err
    assert not CONTROL.search(err), repr(err)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in err), repr(err)  # printable as UTF-8


def assert_report(out: Path) -> dict:
    produced = json.loads((out / "report.json").read_text())
    assert (out / "report.html").stat().st_size > 1000
    return produced
