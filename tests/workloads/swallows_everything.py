"""A loop that catches BaseException around every step and carries on (a retry wrapper written
too broadly). Under python, SIGTERM ends it all the same; prints READY once a few steps are done."""

import torch

model = torch.nn.Linear(8, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
step = 0
while True:
    try:
        optimizer.zero_grad()
        model(torch.randn(4, 8)).sum().backward()
        optimizer.step()
        step += 1
        if step == 3:
            print("READY", flush=True)
    except BaseException as error:  # noqa: B036 - the pattern under test
        print("swallowed", type(error).__name__, flush=True)
