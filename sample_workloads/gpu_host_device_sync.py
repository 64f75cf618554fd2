"""Planted: host-device-sync. The healthy run, but every block's activation is checked with
.item() in the forward pass (activation monitoring), and the loss is read back every step."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch.nn as nn  # noqa: E402

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402


class Monitored(nn.Module):
    """Wraps a layer; `.item()` makes the host wait for the GPU after each one."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.peaks: list[float] = []

    def forward(self, x):
        x = self.layer(x)
        self.peaks.append(x.detach().abs().max().item())  # the planted problem: a sync per layer
        return x


if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    model = ConvNet(width=64, blocks=10)
    model.features = nn.Sequential(*[Monitored(layer) if isinstance(layer, nn.Conv2d) else layer for layer in model.features])
    losses: list[float] = []
    train(model, loader(image_dataset()), steps, after_step=lambda loss: losses.append(loss.item()))  # and a sync per step
