"""Healthy: a closure-driven optimizer. LBFGS calls its closure (forward, loss, backward) several
times inside each `optimizer.step(closure)`, as pytorch/examples time_sequence_prediction trains.
Each `step(closure)` is one step, and the forward and backward it runs are forward and backward
time, not optimizer time. LBFGS's own work (its history, the flat gradients) is about half of each
step on a CPU, and that is optimizer time. The script prints the share of its steps its closures
took, timed by itself, to compare with perfdoctor's breakdown. Nothing above info is expected."""

import argparse
import time

import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(2048, 64)
    y = torch.sin(x @ torch.randn(64, 1))
    model = nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 1))
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4, history_size=10)
    criterion = nn.MSELoss()

    closures_s = 0.0

    def closure() -> torch.Tensor:
        nonlocal closures_s
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        closures_s += time.perf_counter() - started
        return loss

    steps_s = 0.0
    for step in range(args.steps):
        if step == 1:  # the first step is warm-up, as in perfdoctor's statistics
            closures_s = steps_s = 0.0
        started = time.perf_counter()
        loss = optimizer.step(closure)
        steps_s += time.perf_counter() - started
        if step % 10 == 0:
            print(f"step {step}: loss {float(loss.detach()):.4f}")
    print(f"closures: {closures_s / steps_s:.3f} of the step time")


if __name__ == "__main__":
    main()
