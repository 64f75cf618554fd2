"""What the DDP sample workloads share: the process group, a DistributedSampler over synthetic
data, and the training loop with the knobs the planted problems turn."""

from __future__ import annotations

import argparse
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from reference_cnn import ReferenceCNN, synthetic_mnist


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per rank")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--no-sync", action="store_true", help="skip the all-reduce on accumulation micro-steps")
    parser.add_argument("--find-unused-parameters", action="store_true")
    parser.add_argument("--slow-rank", type=int, default=None, help="this rank does extra work every step")
    parser.add_argument("--slow-ms", type=float, default=30.0)
    return parser.parse_args()


def train(model: nn.Module, args: argparse.Namespace, input_shape: tuple[int, ...] = (1, 28, 28)) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    ddp = DistributedDataParallel(model, find_unused_parameters=args.find_unused_parameters)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    samples = args.batch_size * args.steps * args.accumulation * dist.get_world_size()
    data = synthetic_mnist(samples)
    if input_shape != (1, 28, 28):
        data.tensors = (torch.randn(samples, *input_shape), data.tensors[1])
    loader = DataLoader(data, batch_size=args.batch_size, sampler=DistributedSampler(data))
    for micro_step, (inputs, labels) in enumerate(loader):
        if rank == args.slow_rank:
            time.sleep(args.slow_ms / 1000)  # a slower machine, a noisy neighbour
        last = (micro_step + 1) % args.accumulation == 0
        if args.no_sync and not last:
            with ddp.no_sync():
                F.nll_loss(ddp(inputs), labels).backward()
            continue
        F.nll_loss(ddp(inputs), labels).backward()
        if last:
            optimizer.step()
            optimizer.zero_grad()
    dist.destroy_process_group()


def reference_model() -> nn.Module:
    return ReferenceCNN()
