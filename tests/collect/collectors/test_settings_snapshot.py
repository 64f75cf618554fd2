"""The settings snapshot: thread counts and versions, taken at the end of the first step, and
never an environment variable outside the allow-list, in any file a run writes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from collect_helpers import Harness
from perfdoctor.collect.collectors.settings import ENV_ALLOW_LIST, SettingsSnapshot, snapshot_settings
from perfdoctor.collect.stepclock import StepClock

WORKLOADS = Path(__file__).parents[2] / "workloads"
SECRET = "hunter2"


def test_snapshot_has_threads_versions_and_only_allowed_env(monkeypatch):
    monkeypatch.setenv("MY_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET + "-aws")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    settings = snapshot_settings()
    assert settings["threads"]["intra_op"] == torch.get_num_threads()
    assert settings["threads"]["inter_op"] == torch.get_num_interop_threads()
    assert settings["versions"]["torch"] == torch.__version__
    assert settings["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert settings["cpu"]["logical_cores"] == os.cpu_count() and settings["cpu"]["usable_cores"] >= 1
    assert settings["env"]["OMP_NUM_THREADS"] == "3"
    assert set(settings["env"]) <= set(ENV_ALLOW_LIST)
    assert SECRET not in json.dumps(settings)


def test_taken_at_the_end_of_the_first_step(tmp_path):
    clock = StepClock()
    harness = Harness(tmp_path, clock=clock)
    snapshot = SettingsSnapshot()
    snapshot.start(harness.ctx)
    clock.install()
    try:
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            model(torch.randn(3, 2)).sum().backward()
            optimizer.step()
    finally:
        clock.uninstall()
    snapshot.stop()
    payload = harness.read("settings")
    assert payload["taken_at"] == "end of step 0"
    assert payload["threads"]["intra_op"] == torch.get_num_threads()


def test_without_steps_taken_when_the_run_stops(tmp_path):
    snapshot = SettingsSnapshot()
    harness = Harness(tmp_path)
    snapshot.start(harness.ctx)
    snapshot.stop()
    assert harness.read("settings")["taken_at"] == "end of run"


def test_more_threads_than_cores_adds_the_thread_probe(tmp_path):
    previous = torch.get_num_threads()
    cores = snapshot_settings()["cpu"]["usable_cores"]
    snapshot = SettingsSnapshot()
    harness = Harness(tmp_path)
    snapshot.start(harness.ctx)
    torch.set_num_threads(cores + 1)
    try:
        snapshot.stop()
    finally:
        torch.set_num_threads(previous)
    probe = harness.read("settings")["thread_probe"]
    assert probe["threads"] == cores + 1 and probe["cores"] == cores
    assert probe["ms_at_threads"] > 0 and probe["ms_at_cores"] > 0
    assert torch.get_num_threads() == previous


def run_files_text(root: Path):
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        yield path, data.decode("utf-8", errors="replace")


@pytest.mark.slow
def test_no_secret_from_the_environment_reaches_any_file_of_the_run(tmp_path):
    env = {
        **os.environ,
        "MY_SECRET_TOKEN": SECRET,
        "AWS_SECRET_ACCESS_KEY": SECRET + "-aws",
        "DATABASE_URL": f"postgres://me:{SECRET}@db/x",
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "perfdoctor", "run", "-q", "--max-steps", "3", "--profile-steps", "0-1", "--out", str(out),
         str(WORKLOADS / "tiny_train.py"), "--api-key", SECRET],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == "stopped"
    assert report["environment"]["env"]["OMP_NUM_THREADS"] == "1"  # allow-listed settings do come through
    assert set(report["environment"]["env"]) <= set(ENV_ALLOW_LIST)
    assert report["environment"]["threads"]["intra_op"] == 1
    files = dict(run_files_text(out))
    assert out / "report.html" in files and out / "raw" / "settings.jsonl" in files
    assert any(path.name.endswith(".pt.trace.json.gz") for path in files)
    leaks = [str(path) for path, text in files.items() if SECRET in text]
    assert leaks == []
