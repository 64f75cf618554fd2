"""Runs its own torch.profiler after argv[1] steps (3 steps inside it, 3 after)."""

import sys

import torch

model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)


def step():
    optimizer.zero_grad()
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()


for _ in range(int(sys.argv[1])):
    step()
with torch.profiler.profile() as prof:
    for _ in range(3):
        step()
for _ in range(3):
    step()
print("USER-PROFILER-EVENTS", len(prof.events()) > 0)
