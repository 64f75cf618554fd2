"""Counts the SIGINTs that reach it while it trains; 1.5 s after the first, prints the count and
exits 0. Prints READY after 3 steps."""

import signal
import sys
import time

import torch

received = []
signal.signal(signal.SIGINT, lambda signum, frame: received.append(time.monotonic()))
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
step = 0
while not received or time.monotonic() - received[0] < 1.5:
    optimizer.zero_grad()
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    step += 1
    if step == 3:
        print("READY", flush=True)
    time.sleep(0.005)
print(f"SIGINTS {len(received)}", flush=True)
sys.exit(0)
