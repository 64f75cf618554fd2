"""A no-grad pass over 8 batches (no optimizer: each batch is a step to the clock), then
training: the first optimizer step folds the batch-steps before it into one warm-up step."""

import torch
from torch.utils.data import DataLoader, TensorDataset

loader = DataLoader(TensorDataset(torch.randn(32, 4)), batch_size=4)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with torch.no_grad():
    for (x,) in loader:
        model(x)
for (x,) in loader:
    optimizer.zero_grad()
    model(x).sum().backward()
    optimizer.step()
print("TRAINED")
