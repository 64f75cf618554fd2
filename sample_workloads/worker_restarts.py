"""Planted problem: dataloader-persistent-workers. Short epochs with two workers that are shut
down and started again every epoch, each paying an expensive set-up (simulated: opening a
database or an index, 300 ms) before its first batch."""

import argparse
import time

from torch.utils.data import DataLoader

from reference_cnn import synthetic_mnist, train


def open_sample_index(worker_id: int) -> None:
    time.sleep(0.3)  # each new worker process opens its shard index / database connection


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--persistent", action="store_true", help="the fix")
    args = parser.parse_args()
    loader = DataLoader(
        synthetic_mnist(64 * 16),
        batch_size=64,
        shuffle=True,
        num_workers=2,
        persistent_workers=args.persistent,
        worker_init_fn=open_sample_index,
    )
    train(loader, args.epochs)
