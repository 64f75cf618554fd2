"""The host sampler, in-process with a short interval: samples of this process's CPU, its
children, and every core's CPU, in columns of one length."""

from __future__ import annotations

import subprocess
import threading
import time

import psutil

from collect_helpers import Harness
from perfdoctor.collect.collectors.base import RunOptions
from perfdoctor.collect.collectors.host import HostSampler


def test_samples_process_children_and_per_core_cpu(tmp_path):
    sampler = HostSampler()
    harness = Harness(tmp_path, RunOptions(host_interval_s=0.02))
    ctx = harness.ctx
    child = subprocess.Popen(["sleep", "30"])
    try:
        sampler.start(ctx)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sampler.samples < 4:
            sum(i * i for i in range(20000))  # keep this process busy between samples
            time.sleep(0.001)
        sampler.stop()
    finally:
        child.kill()
        child.wait()
    assert not any(thread.name == "perfdoctor-host" for thread in threading.enumerate())

    payload = harness.read("host")
    samples = payload["samples"]
    count = len(samples["t_ns"])
    assert count >= 3, payload
    assert {len(column) for column in samples.values()} == {count}
    assert samples["t_ns"] == sorted(samples["t_ns"])
    assert payload["logical_cores"] == psutil.cpu_count(logical=True) and payload["interval_s"] == 0.02
    assert all(len(cores) == payload["logical_cores"] for cores in samples["core_cpu"])
    assert all(0 <= value <= 100 for cores in samples["core_cpu"] for value in cores)
    assert max(samples["process_cpu"]) > 0  # the busy loop above was seen
    assert max(samples["children"]) >= 1  # the child process was seen
    assert all(rss > 0 for rss in samples["rss"]) and all(n >= 1 for n in samples["threads"])
    assert max(samples["threads"]) >= 2  # while it ran, the sampler's own thread was counted
    assert payload["error"] is None


def test_stop_before_the_first_interval_still_leaves_one_sample(tmp_path):
    sampler = HostSampler()
    harness = Harness(tmp_path, RunOptions(host_interval_s=30))
    ctx = harness.ctx
    sampler.start(ctx)
    started = time.monotonic()
    sampler.stop()
    assert time.monotonic() - started < 5  # stop() does not wait out the interval
    payload = harness.read("host")
    assert len(payload["samples"]["t_ns"]) == 1 and payload["error"] is None  # the sample taken at stop
    assert payload["samples"]["rss"][0] > 0
