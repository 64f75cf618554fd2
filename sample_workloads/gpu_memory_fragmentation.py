"""Planted: gpu-memory-near-limit through fragmentation. Before training, the script fills about
90% of the GPU with 64 MiB blocks and frees every other one (a cache of activations that is
trimmed), so the caching allocator holds half of that reserved but unused; the first step then asks
for 96 MiB blocks that fit none of those holes, until cudaMalloc fails and the allocator has to free its
cache and retry (`num_alloc_retries`). The larger blocks are all taken at the first step, so
memory stays flat after it. Without PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True."""

from gpu_common import require_cuda

require_cuda(__file__)

import torch  # noqa: E402

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

BLOCK = 64 * 2**20

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    free, total = torch.cuda.mem_get_info()
    blocks = [torch.empty(BLOCK, dtype=torch.uint8, device="cuda") for _ in range(int(0.9 * free) // BLOCK)]
    del blocks[::2]  # half of it reserved and unused, in holes of 64 MiB
    larger: list[torch.Tensor] = []

    def ask_for_more(loss: torch.Tensor) -> None:
        if not larger:
            larger.extend(torch.empty(3 * BLOCK // 2, dtype=torch.uint8, device="cuda") for _ in range(len(blocks) // 2))

    train(ConvNet(width=32, blocks=2), loader(image_dataset(), batch_size=64), steps, after_step=ask_for_more)
    print(f"retries: {torch.cuda.memory_stats()['num_alloc_retries']}")
