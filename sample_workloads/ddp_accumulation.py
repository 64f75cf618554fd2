"""Planted problem: ddp-accumulation-without-no-sync. Gradients are accumulated over 4
micro-batches per optimizer step, and every micro-batch's backward all-reduces them (no
`no_sync()`), although only the last one needs to. A large linear head makes that all-reduce
expensive.

    perfdoctor run --nproc-per-node 2 sample_workloads/ddp_accumulation.py
"""

import sys

import torch.nn as nn

from ddp_common import parse_args, train


def wide_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10), nn.LogSoftmax(1))


if __name__ == "__main__":
    sys.argv += ["--accumulation", "4", "--steps", "15"]
    train(wide_model(), parse_args())
