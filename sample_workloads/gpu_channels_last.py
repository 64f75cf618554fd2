"""Planted: channels-last. The healthy run with NCHW tensors: autocast convolutions on Tensor
Cores, and cuDNN converting every input and output to NHWC and back."""

from gpu_common import require_cuda

require_cuda(__file__)

from gpu_common import ConvNet, healthy_backends, image_dataset, loader, steps_arg, train  # noqa: E402

if __name__ == "__main__":
    steps = steps_arg()
    healthy_backends()
    train(ConvNet(), loader(image_dataset()), steps, channels_last=False)  # the planted problem
