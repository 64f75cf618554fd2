"""A few steps of training, then an out-of-memory error in the model's forward at step 5: a
MemoryError (host), or with argv[1] == "cuda" a torch.cuda.OutOfMemoryError raised the same way
(no GPU needed: what perfdoctor records of it is what is tested)."""

import sys

import torch

KIND = sys.argv[1] if len(sys.argv) > 1 else "host"


class Attention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 6:  # step 5
            if KIND == "cuda":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB")
            raise MemoryError()
        return self.proj(x)


model = torch.nn.Sequential(torch.nn.Linear(8, 8), Attention(), torch.nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for step in range(10):
    optimizer.zero_grad()
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
