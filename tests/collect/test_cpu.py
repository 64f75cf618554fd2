"""collect/cpu.py: the kernel's CPU accounting, read for the job's tree and everyone else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfdoctor.collect import cpu
from perfdoctor.collect.cpu import CgroupCpu, CpuAccount, JobRoot, descendants, parse_stat, pressure_some_us

STAT = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 3 0 100 0 0"


def test_a_stat_line_with_spaces_and_parentheses_in_its_name():
    times = parse_stat(1234, STAT)
    assert times is not None and times.name == "my (odd) name" and times.ppid == 1
    assert times.cpu_s == pytest.approx(300 / cpu.CLOCK_TICKS) and times.children_cpu_s == pytest.approx(50 / cpu.CLOCK_TICKS)
    assert parse_stat(1, "garbage") is None


def test_descendants_follow_parents_down_the_tree():
    processes = {pid: parse_stat(pid, STAT.replace("1234 (", f"{pid} (").replace(" S 1 ", f" S {ppid} ")) for pid, ppid in ((10, 1), (11, 10), (12, 11), (13, 1))}
    assert descendants(processes, 10) == {10, 11, 12}  # type: ignore[arg-type]


def test_pressure_and_throttling_files_of_both_cgroup_versions(tmp_path: Path):
    (tmp_path / "pressure").write_text("some avg10=1.00 avg60=2.00 avg300=3.00 total=123456\nfull avg10=0 avg60=0 avg300=0 total=0\n")
    assert pressure_some_us(tmp_path / "pressure") == 123456
    assert pressure_some_us(tmp_path / "missing") is None
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    v2.mkdir(), v1.mkdir()
    (v2 / "cpu.stat").write_text("usage_usec 10\nnr_periods 40\nnr_throttled 7\nthrottled_usec 2500\n")
    (v1 / "cpu.stat").write_text("nr_periods 40\nnr_throttled 7\nthrottled_time 2500000\n")
    for folder, version in ((v2, 2), (v1, 1)):
        throttling = CgroupCpu(version=version, path=folder, quota_cores=1.5).throttling()
        assert throttling is not None and (throttling.periods, throttling.throttled, throttling.throttled_ns) == (40, 7, 2_500_000)
    assert CgroupCpu(version=2, path=tmp_path / "none", quota_cores=None).throttling() is None


def test_quota_files_of_both_versions(tmp_path: Path, monkeypatch):
    root = tmp_path / "cgroup"
    (root / "job").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "job" / "cpu.stat").write_text("nr_throttled 0\n")
    (root / "job" / "cpu.max").write_text("150000 100000\n")
    monkeypatch.setattr(cpu, "CGROUP_ROOT", root)
    monkeypatch.setattr(cpu, "_cgroup_lines", lambda: [("0", "", "/job")])
    found = cpu.find_cgroup_cpu()
    assert found is not None and found.version == 2 and found.quota_cores == pytest.approx(1.5)
    v1 = tmp_path / "v1root"
    (v1 / "cpu" / "job").mkdir(parents=True)
    (v1 / "cpu" / "job" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "job" / "cpu.cfs_period_us").write_text("100000\n")
    monkeypatch.setattr(cpu, "CGROUP_ROOT", v1)
    monkeypatch.setattr(cpu, "_cgroup_lines", lambda: [("3", "cpu,cpuacct", "/job")])
    found = cpu.find_cgroup_cpu()
    assert found is not None and found.version == 1 and found.quota_cores is None  # unlimited
    monkeypatch.setattr(cpu, "_cgroup_lines", lambda: [])
    assert cpu.find_cgroup_cpu() is None  # no cgroup: a fact, not an error


@pytest.mark.skipif(not cpu.schedstats_available(), reason="kernel without schedstats")
def test_the_account_sees_the_tree_its_threads_and_the_others():
    account = CpuAccount(JobRoot(os.getpid(), "script"), main_tid=os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time\nend=time.monotonic()+1.0\nwhile time.monotonic()<end: pass"])
    try:
        account.prime(time.monotonic_ns())
        started = time.monotonic()
        end = started + 0.6
        while time.monotonic() < end:
            sum(i * i for i in range(10000))
        reading = account.read(time.monotonic_ns())
        wall_ms = (time.monotonic() - started) * 1000
    finally:
        child.kill()
        child.wait()
    assert reading["tree_processes"] >= 2  # this process and the spinning child
    assert reading["tree_cpu"] > 0  # percent of one core (how much depends on how busy the machine is)
    # The busy loop was runnable throughout: on a CPU or waiting for one, however busy the machine.
    assert reading["main_run_ms"] + reading["main_wait_ms"] > 0.7 * wall_ms
    assert reading["tree_run_ms"] + reading["tree_wait_ms"] > reading["main_run_ms"] + reading["main_wait_ms"]
    assert "others_cpu" in reading
    assert account.sources()["schedstat"] is True
