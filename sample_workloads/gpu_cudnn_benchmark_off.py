"""Planted: cudnn-benchmark-off. The healthy run, but torch.backends.cudnn.benchmark = False
while every step's convolutions have the same shapes."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    torch.backends.cudnn.benchmark = False  # the planted problem
    train(ConvNet(), loader(image_dataset()), steps)
