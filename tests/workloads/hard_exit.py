"""Trains 10 steps (DataLoader, optimizer), waits long enough for them to be streamed, then ends
the way argv[1] says: os_exit (os._exit(7)), sigkill, segfault (a NULL read through ctypes),
sighup, fork_exit (a forked child calls sys.exit(0) while the parent trains on to 20 steps)."""

import ctypes
import os
import signal
import sys
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

mode = sys.argv[1]
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loader = DataLoader(TensorDataset(torch.randn(80, 8), torch.randn(80, 1)), batch_size=4)


def train(steps):
    for index, (x, y) in enumerate(loader):
        if index == steps:
            return
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


train(10)
if mode == "fork_exit":
    pid = os.fork()
    if pid == 0:
        train(3)  # the forked child trains a little too, then exits through sys.exit
        sys.exit(0)
    os.waitpid(pid, 0)
    train(10)
    print("PARENT-DONE", flush=True)
    sys.exit(0)
time.sleep(1.0)  # the stream writer flushes every 0.25 s: the 10 steps are on disk
print("DYING", flush=True)
if mode == "os_exit":
    os._exit(7)
elif mode == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "sighup":
    os.kill(os.getpid(), signal.SIGHUP)
elif mode == "segfault":
    ctypes.string_at(0)
time.sleep(30)
