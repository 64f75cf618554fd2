"""Planted: pageable-memcpy. Batches built on the host without a DataLoader, in ordinary
(pageable) memory, copied to the GPU each step."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402

from gpu_common import ConvNet, healthy_backends, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    # 4 pre-made 50 MB batches, reused: not pinned (the planted problem), so each copy is pageable
    batches = [(torch.randn(256, 3, 128, 128), torch.randint(0, 100, (256,))) for _ in range(4)]
    train(ConvNet(width=32, blocks=2), batches, steps, non_blocking=False)
