"""GPU rules, one concept per module: numeric precision and Tensor Cores (`precision`),
convolution algorithms and layout (`convolution`), host-device syncs and copies (`transfers`),
a device waiting on the host (`idle`), memory near the limit (`memory`), the optimizer's kernels
(`optimizer`). The DataLoader's pin_memory is a data-loading rule (rules/dataloader.py).

They read the `gpu` section (perfdoctor.model.gpu, built by analysis/gpu/); a run that never
used a GPU has none, and they stay silent. Device times are means per profiled step, and savings
are fractions of the profiled step as the trace measured it: Amdahl-style bounds that assume the
device time removed comes off the step.

Precedence, so that one cause is reported once, is declared with `defers_to` and applied by the
engine (rules/registry.py):
- `amp-not-enabled` defers to `tf32-disabled`: when FP32 matmuls/convolutions run on the CUDA
  cores of an Ampere or newer GPU because TF32 is off, the one-line TF32 change comes first.
- `pageable-memcpy` defers to `dataloader-pin-memory`: pageable host-to-device copies in a run
  whose DataLoader does not pin memory are that DataLoader's.
`gpu-low-utilization` counts only the idle time no other rule explains: not the idle after syncs
(`host-device-sync`), in launch gaps (`gpu-idle-launch-bound`) or while the step waits on the
DataLoader (the data-loading rules).
"""

CUDA_NOTES = "https://pytorch.org/docs/stable/notes/cuda.html"
