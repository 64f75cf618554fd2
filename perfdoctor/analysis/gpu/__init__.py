"""The report's `gpu` section, one concept per module:

- :mod:`.kernels`: matmul and convolution kernels by precision, layout transforms;
- :mod:`.convolution`: whether convolutions see the same input shapes every step;
- :mod:`.optimizer`: the kernels the optimizer step launches, and how many are multi-tensor;
- :mod:`.idle`: why the device waited for the host (after syncs, launch gaps, host stalls);
- :mod:`.nvml`: what NVML sampled over the run;
- :mod:`.device`: which device it is (trace, settings and NVML agree on it) and its memory peaks;
- :mod:`.mfu`: model FLOPs utilisation;
- :mod:`.section`: the section itself, assembled from the above.
"""

from .kernels import kernel_kind, kernel_precision
from .nvml import summarize_nvml
from .section import gpu_section, trace_gpu

__all__ = ["gpu_section", "kernel_kind", "kernel_precision", "summarize_nvml", "trace_gpu"]
