"""Planted: optimizer-foreach. Adam with foreach=False over a model of 200 small parameters:
its step launches several kernels for each parameter, one after another."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from gpu_common import healthy_backends, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    model = nn.Sequential(*[layer for _ in range(100) for layer in (nn.Linear(512, 512), nn.ReLU())], nn.Linear(512, 10)).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=False)  # the planted problem
    batches = [(torch.randn(1024, 512, device="cuda"), torch.randint(0, 10, (1024,), device="cuda"))] * 8
    train(model, batches, steps, optimizer=optimizer)
