"""Healthy: a closure-driven optimizer. LBFGS calls its closure (forward, loss, backward) several
times inside each `optimizer.step(closure)`, as pytorch/examples time_sequence_prediction trains.
Each `step(closure)` is one step, and the forward and backward it runs are forward and backward
time, not optimizer time. Nothing above info is expected."""

import argparse

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

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    for step in range(args.steps):
        loss = optimizer.step(closure)
        if step % 10 == 0:
            print(f"step {step}: loss {float(loss):.4f}")


if __name__ == "__main__":
    main()
