"""A healthy GPU run: the shared conv net with every setting right (see gpu_common.py).
perfdoctor should find nothing above info here."""

from gpu_common import require_cuda

require_cuda(__file__)

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    train(ConvNet(), loader(image_dataset()), steps)
