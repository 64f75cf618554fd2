"""Planted problem: ddp-communication-bound. A model whose parameters are mostly a large embedding
table (25 M parameters, 100 MB of gradient) that costs almost nothing to compute: every step
all-reduces the whole dense gradient after a few milliseconds of compute.

    perfdoctor run --nproc-per-node 2 sample_workloads/ddp_comm_bound.py
"""

import sys

import torch
import torch.nn as nn

from ddp_common import parse_args, train


class EmbeddingClassifier(nn.Module):
    def __init__(self, vocabulary: int = 200_000, width: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width)  # dense gradient: the whole table is all-reduced
        self.head = nn.Linear(width, 10)
        self.vocabulary = vocabulary

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = (images.flatten(1).abs() * 1000).long() % self.vocabulary
        return torch.log_softmax(self.head(self.embedding(tokens).mean(1)), dim=1)


if __name__ == "__main__":
    sys.argv += ["--steps", "15"]
    train(EmbeddingClassifier(), parse_args())
