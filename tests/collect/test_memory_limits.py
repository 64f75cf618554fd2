"""The memory limit the kernel's OOM killer enforces, and the memory in use against it: cgroup v2
(the lowest memory.max up the tree), cgroup v1 (wherever the controller is mounted, the
hierarchical limit), else the machine's RAM. Built on fake /sys/fs/cgroup trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfdoctor.collect import memory
from perfdoctor.collect.memory import Cgroup, cgroup_working_set, find_cgroup

GIB = 2**30


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


@pytest.fixture(autouse=True)
def machine_with_64_gib(monkeypatch):
    monkeypatch.setattr(memory, "_ram_bytes", lambda: 64 * GIB)


def test_v2_takes_the_lowest_limit_up_the_tree(tmp_path):
    root = write(tmp_path, memory__max="max", memory__current="0")
    write(root / "pod", memory__max=str(8 * GIB), memory__current=str(5 * GIB), memory__stat=f"anon 1\ninactive_file {GIB}\n")
    leaf = write(root / "pod" / "job", memory__max="max", memory__current=str(3 * GIB), memory__stat="inactive_file 0\n")
    found = find_cgroup(root, proc_cgroup="0::/pod/job\n")
    assert found == Cgroup(2, root / "pod", 8 * GIB)
    assert cgroup_working_set(found) == 4 * GIB  # the limiting cgroup's usage, less its inactive file cache
    assert find_cgroup(root, proc_cgroup="0::/pod/job\n") is not None and leaf.exists()


def test_v2_without_a_limit_below_the_ram(tmp_path):
    root = write(tmp_path, memory__max="max")
    write(root / "job", memory__max=str(128 * GIB), memory__current="1")
    assert find_cgroup(root, proc_cgroup="0::/job\n").limit_bytes is None


def test_v2_in_a_cgroup_namespace_sees_its_own_cgroup_at_the_root(tmp_path):
    root = write(tmp_path, memory__max=str(2 * GIB), memory__current=str(GIB))
    assert find_cgroup(root, proc_cgroup="0::/\n") == Cgroup(2, root, 2 * GIB)


MOUNTINFO = "35 31 0:32 / {mount} rw,relatime - cgroup cgroup rw,memory\n"


def test_v1_reads_the_hierarchical_limit_where_the_controller_is_mounted(tmp_path):
    mount = tmp_path / "memory"
    write(mount, memory__limit_in_bytes=str(2**63 - 4096))
    write(mount / "docker", memory__limit_in_bytes=str(16 * GIB), memory__usage_in_bytes=str(10 * GIB),
          memory__stat=f"total_inactive_file {2 * GIB}\n")
    leaf = write(mount / "docker" / "abc", memory__limit_in_bytes=str(2**63 - 4096), memory__usage_in_bytes=str(GIB),
                 memory__stat=f"hierarchical_memory_limit {16 * GIB}\ntotal_inactive_file 0\n",
                 memory__oom_control="oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    found = find_cgroup(tmp_path, proc_cgroup="4:memory:/docker/abc\n0::/\n", mountinfo=MOUNTINFO.format(mount=mount))
    assert found == Cgroup(1, mount / "docker", 16 * GIB)  # usage is the limiting cgroup's
    assert cgroup_working_set(found) == 8 * GIB
    assert leaf.exists()


def test_v1_unlimited_is_the_ram(tmp_path):
    mount = tmp_path / "memory"
    write(mount / "x", memory__limit_in_bytes="9223372036854771712", memory__stat="hierarchical_memory_limit 9223372036854771712\n")
    found = find_cgroup(tmp_path, proc_cgroup="4:memory:/x\n", mountinfo=MOUNTINFO.format(mount=mount))
    assert found is not None and found.version == 1 and found.limit_bytes is None


def test_v1_namespaced_container_sees_its_cgroup_at_the_mount(tmp_path):
    mount = write(tmp_path / "memory", memory__limit_in_bytes=str(4 * GIB), memory__usage_in_bytes="1",
                  memory__stat=f"hierarchical_memory_limit {4 * GIB}\n")
    found = find_cgroup(tmp_path, proc_cgroup="4:memory:/kubepods/pod1/abc\n", mountinfo=MOUNTINFO.format(mount=mount))
    assert found == Cgroup(1, mount, 4 * GIB)


def test_no_cgroup_at_all(tmp_path):
    assert find_cgroup(tmp_path, proc_cgroup="", mountinfo="") is None


def test_this_machine_gives_a_limit_and_a_source():
    limit, source = memory.memory_limit()
    assert source in ("cgroup", "ram") and (limit is None or limit > 0)
    used = memory.memory_used(source)
    assert used is None or used > 0


def test_oom_kills_are_read_from_the_limiting_cgroup(tmp_path, monkeypatch):
    folder = write(tmp_path / "v1", memory__oom_control="oom_kill_disable 0\noom_kill 2\n")
    monkeypatch.setattr(memory, "_this_cgroup", lambda: Cgroup(1, folder, GIB))
    assert memory.oom_kills() == 2
    folder2 = write(tmp_path / "v2", memory__events="low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    monkeypatch.setattr(memory, "_this_cgroup", lambda: Cgroup(2, folder2, GIB))
    assert memory.oom_kills() == 1
    assert memory.memory_limit() == (GIB, "cgroup")
