"""Planted: memory-growth. The training loop keeps every step's hidden activations in a list (for
a statistic at the end of the run), so each step leaves about 3 MiB more resident memory behind.
Runs on the CPU."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BATCH, INPUTS, HIDDEN = 64, 32, 12288  # 64 x 12288 float32 activations: 3 MiB a step


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(4096, INPUTS), torch.randint(0, 10, (4096,)))
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True)
    encoder = nn.Sequential(nn.Linear(INPUTS, HIDDEN), nn.ReLU())
    head = nn.Linear(HIDDEN, 10)
    optimizer = torch.optim.SGD([*encoder.parameters(), *head.parameters()], lr=0.01)
    kept = []  # the planted problem: one step's activations appended every step, never let go
    step = 0
    while step < args.steps:
        for inputs, targets in loader:
            optimizer.zero_grad()
            features = encoder(inputs)
            loss = nn.functional.cross_entropy(head(features), targets)
            loss.backward()
            optimizer.step()
            kept.append(features)
            step += 1
            if step >= args.steps:
                break
    print(f"mean activation {torch.stack([f.mean() for f in kept]).mean().item():.4f}")


if __name__ == "__main__":
    main()
