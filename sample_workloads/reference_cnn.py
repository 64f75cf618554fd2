"""The reference workload: the seed's small CNN on synthetic MNIST-shaped data, trained with Adam.

    conv 1->20 5x5 -> ReLU -> conv 20->20 5x5 -> ReLU -> max-pool 2x2
    -> linear 20*10*10 -> 50 -> ReLU -> linear 50 -> 10 -> log-softmax

A 28x28 input becomes 24x24 after the first conv, 20x20 after the second and 10x10 after the
pool: hence the first linear layer's 2000 inputs (the seed had them inconsistent).
"""

from __future__ import annotations

import argparse
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class ReferenceCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 20, 5)
        self.fc1 = nn.Linear(20 * 10 * 10, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


def synthetic_mnist(samples: int, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(samples, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    return TensorDataset(images, labels)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps in all")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--samples", type=int, default=6400, help="synthetic training samples per epoch")
    parser.add_argument("--lr", type=float, default=1e-3)
    return parser.parse_args(argv)


def train(
    loader: Iterable,
    epochs: int,
    max_steps: int | None = None,
    lr: float = 1e-3,
    model: nn.Module | None = None,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """The training loop every sample workload shares; `prepare` is work done on each batch in the loop."""
    torch.manual_seed(0)
    model = model or ReferenceCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    step, loss = 0, torch.tensor(0.0)
    for epoch in range(epochs):
        for images, labels in loader:
            if prepare is not None:
                images = prepare(images)
            optimizer.zero_grad()
            loss = F.nll_loss(model(images), labels)
            loss.backward()
            optimizer.step()
            step += 1
            if max_steps is not None and step >= max_steps:
                return loss.item()
        print(f"epoch {epoch}: loss {loss.item():.4f}")
    return loss.item()


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    loader = DataLoader(
        synthetic_mnist(args.samples),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        persistent_workers=args.num_workers > 0,
    )
    return train(loader, args.epochs, args.steps, args.lr)


if __name__ == "__main__":
    main()
