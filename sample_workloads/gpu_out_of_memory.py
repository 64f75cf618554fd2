"""Planted: out-of-memory. At step 20 one layer materialises a tensor larger than the GPU has free
(as an attention layer does for one very long batch): torch.cuda.OutOfMemoryError in the forward
pass. perfdoctor must name the step, the phase and the layer, and keep the allocator's summary.
Exits with status 1, as python would."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

OOM_AT_STEP = 20


class LongBatchAttention(nn.Module):
    """Passes its input through, but on its OOM_AT_STEP-th call asks for more than the GPU has."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == OOM_AT_STEP + 1:
            free, total = torch.cuda.mem_get_info()
            scores = torch.empty(free + 2 * 2**30, dtype=torch.uint8, device=x.device)  # the planted problem
            x = x + scores[:1].float().mean()
        return x


if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    model = ConvNet(width=32, blocks=2)
    model.features.append(LongBatchAttention())
    train(model, loader(image_dataset(), batch_size=64), steps)
