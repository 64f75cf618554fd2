"""Shared by the GPU sample workloads: the CUDA check every one of them makes first, a small
conv net big enough to keep a GPU busy, synthetic data, and one training loop whose knobs the
workloads turn (each turns one the wrong way; gpu_healthy.py turns none).

The healthy settings: autocast in bf16 (fp16 with a GradScaler before Ampere), channels_last,
cudnn.benchmark, TF32, a DataLoader with pinned memory and workers, non_blocking copies, a
fused AdamW, and the loss read back only every `log_every` steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def require_cuda(script: str) -> None:
    if not torch.cuda.is_available():
        sys.exit(f"{Path(script).name}: needs a CUDA GPU (torch.cuda.is_available() is False); run it on a GPU machine")


def steps_arg(default: int = 120) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=default)
    return parser.parse_args().steps


class ConvNet(nn.Module):
    """conv-bn-relu x (blocks + 1) at full resolution, global pool, linear head."""

    def __init__(self, width: int = 128, blocks: int = 4, classes: int = 100) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for _ in range(blocks + 1):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def image_dataset(samples: int = 2048, size: int = 64, classes: int = 100) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(samples, 3, size, size, generator=generator), torch.randint(0, classes, (samples,), generator=generator))


def loader(dataset: TensorDataset, batch_size: int = 128, pin_memory: bool = True, num_workers: int = 2) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)


def half_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def healthy_backends() -> None:
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def train(
    model: nn.Module,
    batches: Iterable,
    steps: int,
    *,
    amp: bool = True,
    channels_last: bool = True,
    non_blocking: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
    log_every: int = 50,
    after_step: Callable[[torch.Tensor], None] | None = None,
) -> None:
    device = torch.device("cuda")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    dtype = half_dtype()
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dtype == torch.float16)
    running = torch.zeros((), device=device)
    step = 0
    while step < steps:
        for inputs, targets in batches:
            layout = memory_format if inputs.dim() == 4 else torch.preserve_format
            inputs = inputs.to(device, non_blocking=non_blocking, memory_format=layout)
            targets = targets.to(device, non_blocking=non_blocking)
            with torch.autocast("cuda", dtype=dtype, enabled=amp):
                loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            running += loss.detach()
            if after_step is not None:
                after_step(loss)
            step += 1
            if step % log_every == 0:
                print(f"step {step}: loss {running.item() / log_every:.4f}")  # one sync every log_every steps
                running.zero_()
            if step >= steps:
                break
    torch.cuda.synchronize()
