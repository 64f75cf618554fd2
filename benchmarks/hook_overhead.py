"""The cost of perfdoctor's in-step hooks (step clock, DataLoader probe, DDP collector, and the
memory collector's samples at step ends) on the reference workload, measured in one process:
blocks of steps with the hooks installed and without, alternating, so that machine noise hits
both sides alike. Complements overhead.py, whose whole-run comparison carries run-to-run noise of
several percent on a shared machine.

    python benchmarks/hook_overhead.py [--blocks 20] [--steps-per-block 10]
    python benchmarks/hook_overhead.py --memory-only    # the hooks with the memory collector vs without it
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sample_workloads"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from perfdoctor.collect.collectors.base import CollectorContext, RunOptions  # noqa: E402
from perfdoctor.collect.collectors.dataloader import DataLoaderProbe  # noqa: E402
from perfdoctor.collect.collectors.ddp import DdpCollector  # noqa: E402
from perfdoctor.collect.collectors.memory import MemoryCollector  # noqa: E402
from perfdoctor.collect.stepclock import StepClock  # noqa: E402
from perfdoctor.collect.writer import StreamWriter  # noqa: E402
from perfdoctor.stream.rundir import RunDir  # noqa: E402
from reference_cnn import ReferenceCNN, synthetic_mnist  # noqa: E402


class Hooks:
    def __init__(self, folder: Path, memory: bool = True) -> None:
        self.folder = folder
        self.memory = memory

    def __enter__(self) -> "Hooks":
        self.clock = StepClock()
        self.clock.install()
        rundir = RunDir(self.folder)
        self.writer = StreamWriter(rundir, None)
        self.writer.stream("steps").add_source(self.clock.drain)
        context = CollectorContext(rundir=rundir, rank=None, clock=self.clock, options=RunOptions(), writer=self.writer)
        self.collectors = [DataLoaderProbe(), DdpCollector(), *([MemoryCollector()] if self.memory else [])]
        for collector in self.collectors:
            collector.start(context)
        self.writer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for collector in self.collectors:
            collector.stop()
        self.clock.uninstall()
        self.writer.stop()


def block_ms(model, optimizer, loader, steps: int) -> list[float]:
    times = []
    iterator = iter(loader)
    for _ in range(steps):
        t0 = time.perf_counter()
        images, labels = next(iterator)
        optimizer.zero_grad()
        F.nll_loss(model(images), labels).backward()
        optimizer.step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--steps-per-block", type=int, default=10)
    parser.add_argument("--memory-only", action="store_true", help="compare the hooks with and without the memory collector")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ReferenceCNN()
    optimizer = torch.optim.Adam(model.parameters())
    loader = DataLoader(synthetic_mnist(64 * args.steps_per_block), batch_size=64, shuffle=True)
    block_ms(model, optimizer, loader, args.steps_per_block)  # warm-up
    bare, hooked = [], []
    with tempfile.TemporaryDirectory() as folder:
        for block in range(args.blocks):
            if block % 2:
                with Hooks(Path(folder)):
                    hooked += block_ms(model, optimizer, loader, args.steps_per_block)
            elif args.memory_only:
                with Hooks(Path(folder), memory=False):
                    bare += block_ms(model, optimizer, loader, args.steps_per_block)
            else:
                bare += block_ms(model, optimizer, loader, args.steps_per_block)
    ratio = statistics.median(hooked) / statistics.median(bare)
    base, extra = ("hooks without the memory collector", "with it") if args.memory_only else ("bare", "with perfdoctor's hooks")
    print(
        f"median step: {base} {statistics.median(bare):.3f} ms, {extra} {statistics.median(hooked):.3f} ms "
        f"(x{ratio:.4f}; {len(bare)} and {len(hooked)} steps in alternating blocks of {args.steps_per_block})"
    )


if __name__ == "__main__":
    main()
