"""Planted problem: dataloader-bottleneck. Every sample is read from slow storage (simulated by a
sleep in __getitem__) and the DataLoader runs in the training process (num_workers=0), so each
step waits for its batch before it can compute."""

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from reference_cnn import train


class SlowStorageDataset(Dataset):
    def __init__(self, samples: int, read_ms: float) -> None:
        self.samples, self.read_s = samples, read_ms / 1000

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int):
        time.sleep(self.read_s)  # a network file system or a cold disk
        generator = torch.Generator().manual_seed(index)
        return torch.randn(1, 28, 28, generator=generator), index % 10


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--samples", type=int, default=64 * 40)
    parser.add_argument("--read-ms", type=float, default=0.5)
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args()
    loader = DataLoader(SlowStorageDataset(args.samples, args.read_ms), batch_size=64, num_workers=args.num_workers)
    train(loader, args.epochs)
