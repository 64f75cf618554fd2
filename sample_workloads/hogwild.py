"""Planted problem: training-in-child-processes. Hogwild training as pytorch/examples mnist_hogwild
does it: the script starts 2 processes (torch.multiprocessing, spawn) that train one shared model,
then tests it in its own process. Each training process keeps torch's default intra-op threads (one
per core), so 2 processes x 2 threads compete for 2 cores. perfdoctor counts the children's steps
and says where the training ran; the parent's test pass is not reported as training."""

import argparse

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.data import DataLoader

from reference_cnn import ReferenceCNN, synthetic_mnist


def train(rank: int, model: torch.nn.Module, samples: int, epochs: int) -> None:
    torch.manual_seed(rank)
    loader = DataLoader(synthetic_mnist(samples), batch_size=64, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            F.nll_loss(model(images), labels).backward()
            optimizer.step()


def test(model: torch.nn.Module, samples: int) -> None:
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(synthetic_mnist(samples), batch_size=256):
            correct += int((model(images).argmax(1) == labels).sum())
    print(f"test accuracy {correct / samples:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--samples", type=int, default=64 * 30)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    mp.set_start_method("spawn", force=True)
    model = ReferenceCNN()
    model.share_memory()
    workers = [mp.Process(target=train, args=(rank, model, args.samples, args.epochs)) for rank in range(args.processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    test(model, 64 * 16)
