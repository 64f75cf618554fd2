"""A dataset whose 7th item fails with a long message and a cause, loaded in a worker
(argv[1] == "worker") or in the main process ("inline")."""

import sys

import torch
from torch.utils.data import DataLoader, Dataset

LONG = "x" * 900


class Flaky(Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, index):
        if index == 6:
            try:
                raise KeyError("the underlying cause")
            except KeyError as cause:
                raise ValueError(f"planted dataset failure {LONG} END-OF-MESSAGE") from cause
        return torch.zeros(4)


workers = 1 if sys.argv[1] == "worker" else 0
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for x in DataLoader(Flaky(), batch_size=2, num_workers=workers):
    optimizer.zero_grad()
    model(x).sum().backward()
    optimizer.step()
