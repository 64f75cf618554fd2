"""Planted: gpu-memory-near-limit. The healthy run after a buffer takes the GPU's memory to about
96% of its total (a model that barely fits)."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    free, total = torch.cuda.mem_get_info()
    headroom = 512 * 2**20  # for the small model below
    ballast = torch.empty(int(0.96 * total) - (total - free) - headroom, dtype=torch.uint8, device="cuda")  # the planted problem
    train(ConvNet(width=32, blocks=2), loader(image_dataset(), batch_size=64), steps)
    del ballast
