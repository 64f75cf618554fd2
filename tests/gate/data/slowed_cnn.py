"""The reference workload made slower by a planted sleep proportional to each step's own work.

    python slowed_cnn.py --slowdown 0.15 [reference_cnn.py options]

Before each step's forward pass, it sleeps `slowdown` times the previous step's work (the time
between two steps, less the previous sleep): every step takes about (1 + slowdown) times as long.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sample_workloads"))

import reference_cnn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402


class ProportionalSleep:
    def __init__(self, slowdown: float) -> None:
        self.slowdown = slowdown
        self.last: float | None = None
        self.slept = 0.0

    def __call__(self, images):
        now = time.perf_counter()
        if self.last is not None:
            work = now - self.last - self.slept
            self.slept = max(0.0, work) * self.slowdown
            time.sleep(self.slept)
        self.last = now
        return images


def main() -> None:
    argv = sys.argv[1:]
    slowdown = 0.15
    if "--slowdown" in argv:
        at = argv.index("--slowdown")
        slowdown = float(argv[at + 1])
        del argv[at : at + 2]
    args = reference_cnn.parse_args(argv)
    loader = DataLoader(reference_cnn.synthetic_mnist(args.samples), batch_size=args.batch_size, shuffle=True)
    reference_cnn.train(loader, args.epochs, args.steps, args.lr, prepare=ProportionalSleep(slowdown))


if __name__ == "__main__":
    main()
