"""Planted: dataloader-pin-memory. The healthy run's DataLoader with pin_memory=False and larger
images, so the batches reach the GPU through pageable copies."""

from gpu_common import require_cuda

require_cuda(__file__)

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    batches = loader(image_dataset(samples=1024, size=96), batch_size=128, pin_memory=False, num_workers=4)  # the planted problem
    train(ConvNet(width=32, blocks=2), batches, steps)
