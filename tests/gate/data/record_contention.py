"""Records the contention fixtures beside this file (`contention_*.json`) from real runs.

Run from the repository root (a few minutes):

    python tests/gate/data/record_contention.py [NAME...]      # all of them, or just these

Each fixture is one `perfdoctor run --max-steps 60` of the reference workload
(`sample_workloads/reference_cnn.py`, default options: two intra-op threads on the 2-core
development machine, as a user would run it), reduced to its step series (`duration_ms`,
`profiled`, `stride`), `time_ms`, and the report's `host.contention`: what perfdoctor itself
measured about other processes taking the job's CPUs during that run.

- `quiet_*`: no load of ours. The development machine is shared by other people's jobs, so a run
  is only as quiet as the machine was: the recorder waits (up to 2 minutes) for a 3-second window
  in which other processes leave a core free, and the fixture keeps what the run measured
  (`host_contention.shared`, `others_cpu_cores`); the tests read that, never assume it.
- `busy_*`: while the load generator (tests/loadgen.py: a spinning process per core) keeps every
  core busy.
- `slow33_quiet`, `slow33_busy`: `slowed_cnn.py --slowdown 0.33`, the same loop with a planted
  sleep of a third of each step's own work: a real one-third slowdown, without and with the load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests"))

from loadgen import busy_cores  # noqa: E402
from record_samples import wait_until_quiet  # noqa: E402

STEPS = 60


def run_once(script: Path, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "perfdoctor", "run", "-q", "--max-steps", str(STEPS), "--out", str(out), str(script), *extra]
        subprocess.run(command, check=True, cwd=REPO, env=dict(os.environ))
        return json.loads((out / "report.json").read_text())


def record(name: str, script: Path, extra: list[str], busy: bool) -> None:
    if busy:
        with busy_cores():
            report = run_once(script, extra)
    else:
        try:
            wait_until_quiet(timeout_s=120)
        except SystemExit:
            print(f"{name}: the machine never left a core free; recording anyway (the fixture says how busy it was)")
        report = run_once(script, extra)
    series = report["steps"]["series"]
    contention = (report.get("host") or {}).get("contention")
    fixture = {
        "note": f"perfdoctor run --max-steps {STEPS} {script.relative_to(REPO)} {' '.join(extra)}".strip()
        + (" while tests/loadgen.py kept every core busy" if busy else " with no load of ours")
        + f"; recorded {time.strftime('%Y-%m-%d %H:%M')} by tests/gate/data/record_contention.py",
        "time_ms": report["steps"]["time_ms"],
        "series": {key: series[key] for key in ("stride", "step", "duration_ms", "profiled")},
        "host_contention": contention,
    }
    (HERE / f"contention_{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(
        f"{name}: p50 {report['steps']['time_ms']['p50']} ms; shared {contention and contention['shared']}, "
        f"others {contention and contention['others_cpu_cores']} cores, lost {contention and contention['others_wait_share']}",
        flush=True,
    )


def main() -> None:
    reference = REPO / "sample_workloads" / "reference_cnn.py"
    slowed = HERE / "slowed_cnn.py"
    for name, script, extra, busy in (
        ("quiet_a", reference, [], False),
        ("busy_a", reference, [], True),
        ("slow33_quiet", slowed, ["--slowdown", "0.33"], False),
        ("quiet_b", reference, [], False),
        ("busy_b", reference, [], True),
        ("slow33_busy", slowed, ["--slowdown", "0.33"], True),
    ):
        if not sys.argv[1:] or name in sys.argv[1:]:
            record(name, script, extra, busy)


if __name__ == "__main__":
    main()
