"""How much memory the job may use and how much is in use, as the kernel's OOM killer sees it:
the cgroup's limit (`memory.max`, v2; `memory.limit_in_bytes`, v1) when there is one, else all
of the machine's RAM. No torch, no psutil: the supervising parent reads this too."""

from __future__ import annotations

import os
from pathlib import Path

UNLIMITED = 2**60  # cgroup v1 writes a huge number for "no limit"


def _cgroup_dir() -> Path | None:
    """This process's cgroup v2 directory, if it is mounted where it usually is."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                path = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
                return path if (path / "memory.max").exists() else (Path("/sys/fs/cgroup") if Path("/sys/fs/cgroup/memory.max").exists() else None)
    except OSError:
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def memory_limit() -> tuple[int | None, str]:
    """(limit in bytes, where it comes from: "cgroup" or "ram")."""
    folder = _cgroup_dir()
    if folder is not None:
        limit = _read_int(folder / "memory.max")
        if limit is not None:
            return limit, "cgroup"
    limit = _read_int(Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
    if limit is not None and limit < UNLIMITED:
        return limit, "cgroup"
    return _total_ram(), "ram"


def memory_used(source: str) -> int | None:
    """Bytes in use against the limit: the cgroup's usage, else the machine's (total - available)."""
    if source == "cgroup":
        folder = _cgroup_dir()
        if folder is not None:
            return _read_int(folder / "memory.current")
        return _read_int(Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    try:
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines() if line.split()[1:2]}
        return fields["MemTotal"] - fields["MemAvailable"]
    except (OSError, KeyError, ValueError, IndexError):
        return None


def oom_kills() -> int | None:
    """How many processes the OOM killer has killed in this cgroup (v2 `memory.events`)."""
    folder = _cgroup_dir()
    if folder is None:
        return None
    try:
        for line in (folder / "memory.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _total_ram() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
