"""Records the step-time fixtures beside this file (`steps_*.json`) from real runs.

Run from the repository root (a few minutes; clean runs wait for the machine to calm down):

    python tests/gate/data/record_samples.py [NAME...]      # all of them, or just these

Each fixture is one `perfdoctor run --max-steps 60` of the reference workload
(`sample_workloads/reference_cnn.py`, default options) on the 2-core development machine, with
one intra-op thread (OMP_NUM_THREADS=1: on a machine that other jobs share, two OpenMP threads on
two cores make every step wait for the busiest core), reduced to its `report["steps"]["series"]`
step times (`duration_ms`, `profiled`, `stride`):

- `clean_*`: no load of ours, and a core left free for the run: a run during which other
  processes (this is a shared machine) used more than 0.8 of a core is recorded again. Clean and
  slowed runs alternate, so that both meet the machine in the same moods.
- `slow15_*`: `slowed_cnn.py --slowdown 0.15`, the same loop with a planted sleep of 15% of each
  step's own work: a real 15% regression.
- `noisy_*`: recorded while a neighbour job trains beside it (`reference_cnn.py` with its default
  two intra-op threads, started 3 s before), as on a shared CI runner; `noisy_slow15_*` the same
  with the planted 15% slowdown.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
STEPS = 60

NEIGHBOUR_JOB = ["sample_workloads/reference_cnn.py", "--epochs", "1000"]


QUIET_CORES = 0.8  # other processes may use this much CPU during a clean recording (one core stays free)


def busy_cpu_seconds() -> float:
    import psutil

    times = psutil.cpu_times()
    return times.user + times.nice + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_until_quiet(timeout_s: float = 900) -> None:
    """Until a 3-second window in which other processes leave a core free."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy, wall = busy_cpu_seconds(), time.perf_counter()
        time.sleep(3)
        if (busy_cpu_seconds() - busy) / (time.perf_counter() - wall) <= QUIET_CORES:
            return
    raise SystemExit("the machine never became quiet")


def record(name: str, script: Path, extra: list[str], noisy: bool) -> None:
    for _ in range(20):
        wait_until_quiet()
        busy, children, wall = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
        report = run_once(script, extra, noisy)
        others = (busy_cpu_seconds() - busy - (children_cpu_seconds() - children)) / (time.perf_counter() - wall)
        if noisy or others <= QUIET_CORES:
            break
        print(f"{name}: other processes used {others:.2f} cores; recording again", flush=True)
    else:
        raise SystemExit(f"{name}: the machine never stayed quiet")
    save(name, script, extra, noisy, report)


def run_once(script: Path, extra: list[str], noisy: bool) -> dict:
    load = [subprocess.Popen([sys.executable, *NEIGHBOUR_JOB], cwd=REPO, stdout=subprocess.DEVNULL)] if noisy else []
    if load:
        time.sleep(3)  # past its start-up, into its training loop
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            command = [sys.executable, "-m", "perfdoctor", "run", "-q", "--max-steps", str(STEPS), "--out", str(out), str(script), *extra]
            subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
            report = json.loads((out / "report.json").read_text())
    finally:
        for process in load:
            process.kill()
            process.wait()
    return report


def save(name: str, script: Path, extra: list[str], noisy: bool, report: dict) -> None:
    series = report["steps"]["series"]
    fixture = {
        "note": f"OMP_NUM_THREADS=1 perfdoctor run --max-steps {STEPS} {script.relative_to(REPO)} {' '.join(extra)}".strip()
        + (" beside a neighbour training job" if noisy else "")
        + "; recorded by tests/gate/data/record_samples.py",
        "time_ms": report["steps"]["time_ms"],
        "series": {key: series[key] for key in ("stride", "step", "duration_ms", "profiled")},
    }
    (HERE / f"steps_{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{name}: p50 {report['steps']['time_ms']['p50']} ms", flush=True)


def main() -> None:
    reference = REPO / "sample_workloads" / "reference_cnn.py"
    slowed = HERE / "slowed_cnn.py"
    for name, script, extra, noisy in (
        ("clean_a", reference, [], False),
        ("slow15_a", slowed, ["--slowdown", "0.15"], False),
        ("clean_b", reference, [], False),
        ("slow15_b", slowed, ["--slowdown", "0.15"], False),
        ("clean_c", reference, [], False),
        ("noisy_a", reference, [], True),
        ("noisy_b", reference, [], True),
        ("noisy_c", reference, [], True),
        ("noisy_slow15_a", slowed, ["--slowdown", "0.15"], True),
    ):
        if not sys.argv[1:] or name in sys.argv[1:]:
            record(name, script, extra, noisy)


if __name__ == "__main__":
    main()
