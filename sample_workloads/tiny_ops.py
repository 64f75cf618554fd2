"""Planted problem: host-overhead-bound. A deep stack of tiny layers on a tiny batch: each
operator does a few hundred multiply-adds, so dispatch overhead, not arithmetic, sets the step."""

import argparse

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from reference_cnn import train


class TinyDeepMLP(nn.Module):
    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.inp = nn.Linear(28 * 28, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.GELU()) for _ in range(depth))
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x.flatten(1))
        for block in self.blocks:
            x = x + block(x)
        return torch.log_softmax(self.out(x), dim=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    data = TensorDataset(torch.randn(args.steps * args.batch_size, 1, 28, 28), torch.randint(0, 10, (args.steps * args.batch_size,)))
    train(DataLoader(data, batch_size=args.batch_size), 1, model=TinyDeepMLP(args.depth, 16))
