"""A loop that swallows `except Exception` around every step. argv[1]: `optimizer` (steps end
at optimizer.step()) or `loader` (no optimizer: each DataLoader batch is a step)."""

import sys

import torch
from torch.utils.data import DataLoader, TensorDataset

mode = sys.argv[1]
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loader = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=4)
for epoch in range(50):
    for (x,) in loader:
        try:
            loss = model(x).sum()
            if mode == "optimizer":
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        except Exception as error:  # the pattern --max-steps must get through
            print("swallowed", error)
print("LOOP-ENDED-NORMALLY")
