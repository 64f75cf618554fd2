"""perfdoctor's overhead on the reference workload: the same script, bare and under `perfdoctor
run`, alternating, each timing its own steps. Prints the ratio of median step times outside the
profiled window (target: at most 1.03) and inside it, per pair and as the median of the pairs.

    python benchmarks/overhead.py [--pairs 5] [--steps 120]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from perfdoctor.stream.rundir import RunDir

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "timed_reference.py"


def run(out: Path, steps: int, under_perfdoctor: bool, run_dir: Path) -> list[float]:
    times = out / "steps.json"
    command = [sys.executable, str(SCRIPT), str(times), str(steps)]
    if under_perfdoctor:
        command = [sys.executable, "-m", "perfdoctor", "run", "-q", "--out", str(run_dir), *command[1:]]
    subprocess.run(command, check=True, capture_output=True)
    return json.loads(times.read_text())


def median_of(times: list[float], steps: set[int]) -> float:
    return statistics.median(times[i] for i in sorted(steps) if i < len(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=120)
    args = parser.parse_args()
    outside_ratios, inside_ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            run_dir = Path(tmp) / f"run{pair}"
            bare = run(Path(tmp), args.steps, False, run_dir)
            instrumented = run(Path(tmp), args.steps, True, run_dir)
            profiler = RunDir(run_dir).read_raw_file("profiler", None) or {}
            window = set(profiler["profiled_steps"])
            # Outside: after warm-up, away from the window and the step that exports its trace.
            outside = {i for i in range(5, len(bare)) if i not in window and i - 1 not in window}
            outside_ratio = median_of(instrumented, outside) / median_of(bare, outside)
            inside_ratio = median_of(instrumented, window) / median_of(bare, window)
            outside_ratios.append(outside_ratio)
            inside_ratios.append(inside_ratio)
            print(
                f"pair {pair + 1}: bare {median_of(bare, outside):.2f} ms/step, under perfdoctor "
                f"{median_of(instrumented, outside):.2f} ms/step outside the window (x{outside_ratio:.3f}), "
                f"x{inside_ratio:.3f} inside it; trace export {profiler['export_s']:.2f} s"
            )
    print(
        f"median over {args.pairs} pairs: outside the profiled window x{statistics.median(outside_ratios):.3f} "
        f"(target <= 1.03), inside it x{statistics.median(inside_ratios):.3f}"
    )


if __name__ == "__main__":
    main()
