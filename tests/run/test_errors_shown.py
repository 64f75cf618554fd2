"""A DataLoader worker's error reaches the report whole (its cause and original traceback), and
the traceback the user sees has no frame of perfdoctor's, though its wrappers sit in the stack."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

WORKLOADS = Path(__file__).parent.parent / "workloads"


@pytest.mark.parametrize("where", ["worker", "inline"])
def test_dataset_errors(tmp_path, where):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "perfdoctor", "run", "-q", "--no-profile", "--out", str(out), str(WORKLOADS / "dataset_error.py"), where],
                            capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    plain = subprocess.run([sys.executable, str(WORKLOADS / "dataset_error.py"), where], capture_output=True, text=True, timeout=180)
    assert result.returncode == plain.returncode == 1
    error = json.loads((out / "report.json").read_text())["run"]["error"]
    assert error["type"] == "ValueError" and "END-OF-MESSAGE" in error["message"]  # not cut at 500 characters
    if where == "worker":
        assert "Original Traceback" in error["message"] and "the underlying cause" in error["message"]
    assert "/perfdoctor/" not in result.stderr
    frames = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("File ")]
    plain_frames = [line.strip() for line in plain.stderr.splitlines() if line.strip().startswith("File ")]
    assert frames == plain_frames  # the same traceback python shows
