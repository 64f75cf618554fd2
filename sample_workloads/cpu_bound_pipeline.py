"""Planted problem: dataloader-cpu-saturated. Every sample goes through an expensive CPU
transform (repeated blurring at high resolution, then a resize) in as many workers as there are
cores: the step waits on data while every core is busy, so more workers cannot help. The training
process keeps a single intra-op thread (the workers have the cores), so that the one problem
planted here is the data pipeline's."""

import argparse
import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reference_cnn import train


class HeavyTransformDataset(Dataset):
    def __init__(self, samples: int, passes: int) -> None:
        self.samples, self.passes = samples, passes
        self.kernel = torch.full((1, 1, 5, 5), 1 / 25)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(index)
        image = torch.rand(1, 1, 112, 112, generator=generator)  # decode a larger image
        for _ in range(self.passes):
            image = F.conv2d(image, self.kernel, padding=2)  # augmentation pipeline
        return F.interpolate(image, size=(28, 28), mode="bilinear")[0], index % 10


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=64 * 30)
    parser.add_argument("--passes", type=int, default=24)
    parser.add_argument("--num-workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loader = DataLoader(
        HeavyTransformDataset(args.samples, args.passes),
        batch_size=64,
        num_workers=args.num_workers,
        persistent_workers=True,
    )
    train(loader, 1)
