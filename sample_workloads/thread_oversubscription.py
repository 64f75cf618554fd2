"""Planted problem: cpu-thread-oversubscription. The script asks for eight intra-op threads per
core (a setting copied from a bigger machine): the threads wait on each other at every
parallel region."""

import argparse
import os

import torch
from torch.utils.data import DataLoader

from reference_cnn import synthetic_mnist, train

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads-per-core", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads_per_core * (os.cpu_count() or 1))
    train(DataLoader(synthetic_mnist(64 * 40), batch_size=64, shuffle=True), 1)
