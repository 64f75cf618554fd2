"""Planted: amp-not-enabled. The healthy run in FP32: no autocast. TF32 stays on, so on an Ampere
or newer GPU this is about half precision, not tf32-disabled."""

from gpu_common import require_cuda

require_cuda(__file__)

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    train(ConvNet(), loader(image_dataset()), steps, amp=False)  # the planted problem
