"""Planted: memory-growth on the GPU. A forward hook keeps the last conv block's output of every
step "for a visualisation later": 64 x 32 x 64 x 64 bf16 activations, 16 MiB of GPU memory more
after every step."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    model = ConvNet(width=32, blocks=2)
    kept: list[torch.Tensor] = []  # the planted problem: one step's activations kept per step, never let go
    model.features.register_forward_hook(lambda module, inputs, output: kept.append(output))
    train(model, loader(image_dataset(), batch_size=64), steps)
    print(f"kept {len(kept)} activation maps, {sum(t.numel() * t.element_size() for t in kept) / 2**30:.2f} GiB")
