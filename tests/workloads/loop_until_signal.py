"""Trains a tiny model, batches from two forked DataLoader workers, until it is interrupted;
prints READY once a few steps are done."""

import torch
from torch.utils.data import DataLoader, TensorDataset

loader = DataLoader(
    TensorDataset(torch.randn(32, 8)), batch_size=4, num_workers=2, multiprocessing_context="fork", persistent_workers=True
)
model = torch.nn.Linear(8, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
step = 0
while True:
    for (x,) in loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
        step += 1
        if step == 3:
            print("READY", flush=True)
