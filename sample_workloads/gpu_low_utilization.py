"""Planted: gpu-low-utilization. The healthy run, but the forward pass stops for 50 ms of
host-side work (standing in for CPU metrics or Python bookkeeping) that no other rule names."""

from gpu_common import require_cuda

require_cuda(__file__)

import time  # noqa: E402

import torch.nn as nn  # noqa: E402

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402


class HostWork(nn.Module):
    def forward(self, x):
        time.sleep(0.05)  # the planted problem: the GPU waits while the host is busy elsewhere
        return x


if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    model = ConvNet()
    model.features = nn.Sequential(HostWork(), *model.features)
    train(model, loader(image_dataset()), steps)
