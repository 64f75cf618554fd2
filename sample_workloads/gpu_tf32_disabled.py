"""Planted: tf32-disabled. An FP32 MLP of large matmuls with TF32 off (PyTorch's default for
matmuls). On an Ampere or newer GPU; before Ampere (V100, T4) expect amp-not-enabled instead."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from gpu_common import steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    torch.set_float32_matmul_precision("highest")  # the planted problem (allow_tf32 = False)
    width = 4096
    model = nn.Sequential(*[layer for _ in range(4) for layer in (nn.Linear(width, width), nn.ReLU())], nn.Linear(width, 100))
    batches = [(torch.randn(2048, width, device="cuda"), torch.randint(0, 100, (2048,), device="cuda"))] * 4
    train(model, batches, steps, amp=False)
