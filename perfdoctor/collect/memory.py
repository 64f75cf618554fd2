"""How much memory the job may use and how much is in use, as the kernel's OOM killer sees it:
the cgroup's limit when there is one, else all of the machine's RAM. No torch, no psutil: the
supervising parent reads this too.

- cgroup v2: the lowest `memory.max` of this process's cgroup and its ancestors (a container's
  limit is often set on a parent), and that cgroup's usage;
- cgroup v1: `memory.stat`'s `hierarchical_memory_limit` (the same, computed by the kernel), else
  `memory.limit_in_bytes`, found through /proc/self/mountinfo wherever the controller is mounted.
A limit at or above the machine's RAM is no limit: the RAM is.

Memory "in use" is the working set: usage less the inactive file cache, which the kernel
reclaims before it kills anything (what the kubelet and `docker stats` show). Without a cgroup
limit: the machine's MemTotal - MemAvailable.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

UNLIMITED = 2**60  # cgroup v1 writes a huge number for "no limit"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Cgroup:
    """The cgroup directory whose limit applies to this process."""

    version: int  # 1 or 2
    folder: Path
    limit_bytes: int | None  # None: no limit below the machine's RAM


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_stat(path: Path) -> dict[str, int]:
    """`key value` lines (memory.stat, memory.events, memory.oom_control) as a dict."""
    out: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def _proc_cgroups(text: str | None = None) -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the v2 entry under the key ""."""
    if text is None:
        try:
            text = Path("/proc/self/cgroup").read_text()
        except OSError:
            return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found[controller] = parts[2]
    return found


def _v1_memory_mount(mountinfo: str | None = None) -> tuple[Path, str] | None:
    """(mount point, root inside the hierarchy) of the cgroup v1 memory controller."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] == "cgroup" and "memory" in tail[2].split(","):
            return Path(fields[4]), fields[3]
    return None


def _inside(mount: Path, root: str, path: str) -> Path:
    """A cgroup path as /proc/self/cgroup gives it, under the mount of `root`."""
    relative = path[len(root):] if root != "/" and path.startswith(root) else path
    return mount / relative.lstrip("/")


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def find_cgroup(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None, mountinfo: str | None = None) -> Cgroup | None:
    """The cgroup (v2 first, then v1) that limits this process's memory, or None."""
    entries = _proc_cgroups(proc_cgroup)
    ram = _ram_bytes() or UNLIMITED
    v2 = entries.get("")
    leaf = root / v2.lstrip("/") if v2 is not None else None
    if leaf is not None and not (leaf / "memory.max").exists():
        leaf = root if (root / "memory.max").exists() or (root / "memory.current").exists() else None  # namespaced
    if leaf is not None:
        best: tuple[int, Path] | None = None
        folder = leaf
        while True:
            limit = _read_int(folder / "memory.max")  # "max" is no limit: not a number
            if limit is not None and (best is None or limit < best[0]):
                best = (limit, folder)
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
        if best is not None and best[0] < ram:
            return Cgroup(2, best[1], best[0])
        return Cgroup(2, leaf, None)
    path = entries.get("memory")
    if path is None:
        return None
    mount = _v1_memory_mount(mountinfo)
    if mount is None:
        mount = (root / "memory", "/")
    folder = _inside(mount[0], mount[1], path)
    if not (folder / "memory.limit_in_bytes").exists():
        folder = mount[0]  # a container sees its own cgroup at the mount's root
        if not (folder / "memory.limit_in_bytes").exists():
            return None
    limit = _read_stat(folder / "memory.stat").get("hierarchical_memory_limit") or _read_int(folder / "memory.limit_in_bytes")
    if limit is None or limit >= min(ram, UNLIMITED):
        return Cgroup(1, folder, None)
    # The usage to compare with that limit is the usage of the cgroup that sets it.
    walk = folder
    while walk != mount[0] and mount[0] in walk.parents and _read_int(walk / "memory.limit_in_bytes") != limit:
        walk = walk.parent
    return Cgroup(1, walk if _read_int(walk / "memory.limit_in_bytes") == limit else folder, limit)


@functools.cache
def _this_cgroup() -> Cgroup | None:
    return find_cgroup()


def memory_limit() -> tuple[int | None, str]:
    """(limit in bytes, where it comes from: "cgroup" or "ram")."""
    cgroup = _this_cgroup()
    if cgroup is not None and cgroup.limit_bytes is not None:
        return cgroup.limit_bytes, "cgroup"
    return _ram_bytes(), "ram"


def cgroup_working_set(cgroup: Cgroup) -> int | None:
    """The cgroup's usage less its inactive file cache."""
    if cgroup.version == 2:
        usage = _read_int(cgroup.folder / "memory.current")
        inactive = _read_stat(cgroup.folder / "memory.stat").get("inactive_file", 0)
    else:
        usage = _read_int(cgroup.folder / "memory.usage_in_bytes")
        inactive = _read_stat(cgroup.folder / "memory.stat").get("total_inactive_file", 0)
    return None if usage is None else max(0, usage - inactive)


def memory_used(source: str) -> int | None:
    """Bytes in use against the limit: the cgroup's working set, else the machine's
    (MemTotal - MemAvailable)."""
    if source == "cgroup":
        cgroup = _this_cgroup()
        return cgroup_working_set(cgroup) if cgroup is not None else None
    try:
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines() if line.split()[1:2]}
        return fields["MemTotal"] - fields["MemAvailable"]
    except (OSError, KeyError, ValueError, IndexError):
        return None


def oom_kills() -> int | None:
    """How many processes the OOM killer has killed in this cgroup (v2 `memory.events`, v1
    `memory.oom_control`, kernel 4.13+); None when the kernel does not say."""
    cgroup = _this_cgroup()
    if cgroup is None:
        return None
    name = "memory.events" if cgroup.version == 2 else "memory.oom_control"
    return _read_stat(cgroup.folder / name).get("oom_kill")
