"""Planted problem: main-loop-preprocessing. Each batch is augmented sample by sample in the
training loop (random crop, flip, jitter, normalisation), serially in the training process,
instead of in the DataLoader's workers."""

import argparse
import math

import torch
from torch.utils.data import DataLoader

from reference_cnn import synthetic_mnist, train


def augment(image: torch.Tensor) -> torch.Tensor:
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2), mode="reflect")
    top, left = torch.randint(0, 5, (2,)).tolist()
    image = padded[:, top : top + 28, left : left + 28]
    if torch.rand(()) < 0.5:
        image = image.flip(-1)
    angle = float(torch.empty(()).uniform_(-0.3, 0.3))
    rotation = torch.tensor([[[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]]])
    grid = torch.nn.functional.affine_grid(rotation, [1, 1, 28, 28], align_corners=False)
    image = torch.nn.functional.grid_sample(image[None], grid, align_corners=False)[0]
    image = torch.nn.functional.avg_pool2d(image[None], 3, stride=1, padding=1)[0]  # blur
    image = image * float(torch.empty(()).uniform_(0.8, 1.2)) + 0.05 * torch.randn_like(image)
    return (image - image.mean()) / (image.std() + 1e-6)


def augment_batch(images: torch.Tensor) -> torch.Tensor:
    return torch.stack([augment(image) for image in images])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=64 * 40)
    args = parser.parse_args()
    train(DataLoader(synthetic_mnist(args.samples), batch_size=64, shuffle=True), 1, prepare=augment_batch)
