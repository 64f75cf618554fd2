"""Planted: gpu-idle-launch-bound. A deep stack of small layers on a small batch: each kernel
takes a few microseconds, and the GPU waits for the host to launch the next."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from gpu_common import healthy_backends, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    model = nn.Sequential(*[layer for _ in range(24) for layer in (nn.Linear(256, 256), nn.ReLU())], nn.Linear(256, 10))  # the planted problem
    batches = [(torch.randn(32, 256, device="cuda"), torch.randint(0, 10, (32,), device="cuda"))] * 8
    train(model, batches, steps)
