"""Healthy, with a plateau: memory rises while the job warms up, then stays flat. The Dataset
decodes each image once and caches it (the first epoch fills the cache, about 1.5 MiB a step),
and batches of two sizes make the allocator settle on its pools. Four epochs: perfdoctor must not
mistake the first epoch's rise for a leak. Runs on the CPU."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class CachedImages(Dataset):
    """Decodes an image on first access (here: makes it from its index) and keeps it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        image = self.cache.get(index)
        if image is None:
            generator = torch.Generator().manual_seed(index)
            image = self.cache[index] = torch.rand(3, 64, 64, generator=generator)
        return image, index % 10


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    loader = DataLoader(CachedImages(2000), batch_size=32, shuffle=True)  # 62 full batches and one of 16
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(8 * 16 * 16, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(args.epochs):
        total = 0.0
        for images, labels in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.item()
    print(f"last epoch mean loss {total / len(loader):.3f}")


if __name__ == "__main__":
    main()
