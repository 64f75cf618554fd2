"""Device-side analysis on a hand-built two-step trace (numbers worked out below) and real traces."""

from __future__ import annotations

import pytest
from trace_builders import SEED_TRACE, gpu_training_events, shared_trace, write_trace

from perfdoctor.trace import read_trace
from perfdoctor.trace.gpu import TENSOR_CORE_KERNEL, Cause, devices, gpu_steps

US = 1000


@pytest.fixture
def two_steps(tmp_path):
    return gpu_steps(read_trace(write_trace(tmp_path, gpu_training_events())))


def test_busy_idle_and_utilization(two_steps):
    first, second = two_steps
    # kernels launched in step 1: [120,300) [420,425) [600,800) nccl [700,900) [950,960) [1010,1050)
    assert first.kernel_ns == (180 + 5 + 300 + 10 + 40) * US
    assert first.utilization == pytest.approx(0.535)
    assert first.comm_ns == 200 * US
    assert first.memcpy.htod_ns == first.memcpy.pageable_ns == 20 * US
    assert first.memcpy.pinned_ns == first.memcpy.dtoh_ns == 0
    assert (first.memcpy.count, first.memcpy.bytes) == (1, 4096)
    assert first.busy_ns == 555 * US
    assert first.idle_ns == 445 * US
    # device gaps whose work was launched after the gap began: 300->420, 425->510, 530->600, 960->1010;
    # 900->950 waited for a kernel queued at 20 us: other idle
    assert first.idle_host_wait_ns == (120 + 85 + 70 + 50) * US
    assert first.idle_other_ns == 120 * US
    assert (second.kernel_ns, second.idle_ns, second.idle_host_wait_ns) == (100 * US, 900 * US, 550 * US)
    assert second.utilization == pytest.approx(0.1)


def test_launch_bound_and_tensor_core_evidence(two_steps):
    first, _ = two_steps
    assert (first.kernels, first.short_kernels) == (6, 1)
    assert first.short_kernel_share == pytest.approx(1 / 6)
    assert first.tensor_core_ns == (180 + 200) * US
    assert first.tensor_core_share == pytest.approx(380 / 635)


def test_syncs_and_pageable_copies_with_causes(two_steps):
    first, second = two_steps
    # cudaStreamSynchronize in aten::to; its "Stream Sync" cuda_sync event is the same sync
    assert (first.syncs, first.sync_ns) == (1, 34 * US)
    assert first.sync_causes == [Cause("aten::to", 1, 34 * US)]
    assert (first.pageable_copies, first.pageable_bytes) == (1, 4096)
    assert first.pageable_causes == [Cause("aten::to", 1, 20 * US)]
    assert second.syncs == 0 and second.pageable_copies == 0


def test_tensor_core_names():
    yes = ["volta_h884gemm_64x64_ldg8_nn", "ampere_fp16_s16816gemm_fp16_128x128_ldg8_f2f_nn",
           "sm80_xmma_gemm_f16f16_f16f32_f32_nn_n", "cutlass_80_tensorop_s1688gemm_64x64_32x6_tn_align4",
           "sm90_xmma_gemm_bf16bf16_bf16f32", "turing_h1688gemm_128x128_ldg8_relu_nn", "flash_fwd_kernel",
           "void cutlass::Kernel<cutlass_80_wmma_tensorop_f16_s161616gemm_f16_32x32_128x2_tn_align8>",
           "ampere_bf16_s16816gemm_bf16_64x64_ldg8_f2f_stages_64x5_tn", "void gemm_kernel_f16_tc_(...)"]
    no = ["volta_sgemm_128x64_nn", "void at::native::vectorized_elementwise_kernel<4>",
          "ampere_sgemm_64x32_sliced1x4_nn", "void cudnn::bn_fw_tr_1C11_kernel_NCHW", "ncclKernel_AllReduce"]
    assert all(TENSOR_CORE_KERNEL.search(n) for n in yes)
    assert not any(TENSOR_CORE_KERNEL.search(n) for n in no)


def test_cpu_only_trace_has_no_gpu_section():
    assert gpu_steps(read_trace(SEED_TRACE)) == []
    assert devices(read_trace(shared_trace("cpu_only/rank34.pt.trace.json.gz"))) == []


def test_alexnet_syncs_and_pageable_copies():
    trace = read_trace(shared_trace("a100_alexnet_sync/trace.pt.trace.json.gz"))
    (step,) = gpu_steps(trace)
    assert step.step.synthetic
    assert step.pageable_copies == 16
    assert step.pageable_causes == [Cause("aten::to", 16, step.memcpy.pageable_ns)]
    assert step.memcpy.htod_ns == step.memcpy.pageable_ns > 0
    # 16 cudaStreamSynchronize (each after a pageable copy, inside aten::to) + 5 cudaDeviceSynchronize;
    # the 41 cuda_sync events are those same syncs plus 20 device-side "Stream Wait Event"s
    assert step.syncs == 21
    causes = {c.op: c.count for c in step.sync_causes}
    assert causes["aten::to"] == 16 and sum(causes.values()) == 21
    assert step.kernels == 79


@pytest.mark.parametrize("relative", [
    "a100_ddp_nccl_2rank/rank0.pt.trace.json.gz", "v100_training/rank0.pt.trace.json.gz",
    "sampled_128rank_job/rank0.pt.trace.json.gz", "sampled_128rank_job/rank1.pt.trace.json.gz",
    "a100_alexnet_sync/trace.pt.trace.json.gz",
])
def test_real_traces_sanity(relative):
    steps = gpu_steps(read_trace(shared_trace(relative)))
    assert steps
    for s in steps:
        assert 0 <= s.utilization <= 1
        assert s.kernel_ns <= s.busy_ns
        assert s.comm_ns <= s.kernel_ns
        assert s.idle_ns == max(s.step.duration_ns - s.busy_ns, 0)
        assert s.idle_host_wait_ns + s.idle_other_ns == s.idle_ns
        assert 0 <= s.tensor_core_share <= 1 and 0 <= s.short_kernel_share <= 1
        assert s.memcpy.pageable_ns + s.memcpy.pinned_ns <= s.memcpy.total_ns + 1


def test_v100_steady_state():
    """GPU-bound: ~93.7 ms of kernels per ~95.6 ms step once the host stops running ahead."""
    steps = gpu_steps(read_trace(shared_trace("v100_training/rank0.pt.trace.json.gz")))
    assert [s.kernels for s in steps] == [870] * 5
    for s in steps[2:]:
        assert s.kernel_ns == pytest.approx(93.6e6, rel=0.01)
        assert 0.97 < s.utilization < 0.99
    assert all(s.memcpy.dtod_ns > 0 and s.memcpy.count == 320 for s in steps)


def test_vendor_from_runtime_calls_or_device_names(tmp_path):
    from trace_builders import HTA_MI250, op

    from perfdoctor.trace.vendor import trace_vendor

    assert trace_vendor(read_trace(HTA_MI250)) == "amd"
    assert trace_vendor(read_trace(write_trace(tmp_path, gpu_training_events()))) == "nvidia"
    assert trace_vendor(read_trace(SEED_TRACE)) is None  # CPU only
    named = write_trace(tmp_path, [op("aten::mm", 0, 1)], deviceProperties=[{"id": 0, "name": "AMD Instinct MI300X"}])
    assert trace_vendor(read_trace(named)) == "amd"


def test_rocm_syncs_and_launches(tmp_path):
    """hipMemcpyWithStream blocks like cudaMemcpy; hipExtModuleLaunchKernel launches like cudaLaunchKernel."""
    from trace_builders import annotation, op

    events = [
        annotation("ProfilerStep#1", 0, 1000),
        op("aten::to", 100, 60),
        op("hipMemcpyWithStream", 105, 50, cat="cuda_runtime", args={"correlation": 1}),
        op("Memcpy HtoD (Host -> Device)", 120, 20, cat="gpu_memcpy", pid=2, tid=0, args={"device": 2, "stream": 0, "correlation": 1}),
        op("hipExtModuleLaunchKernel", 300, 5, cat="cuda_runtime", args={"correlation": 2}),
        op("Cijk_Ailk_Bljk_HHS_BH_MT128x128x32_MI32x32x8", 500, 300, cat="kernel", pid=2, tid=0,
           args={"device": 2, "stream": 0, "correlation": 2}),
    ]
    (step,) = gpu_steps(read_trace(write_trace(tmp_path, events)))
    assert step.device == 2 and step.syncs == 1 and step.sync_ns == 50_000
    assert step.sync_causes == [Cause("aten::to", 1, 50_000)]
    assert step.kernels == 1 and step.tensor_core_ns == 300_000  # MFMA on the Matrix Cores
    assert step.memcpy.htod_ns == 20_000 and step.pageable_copies == 0  # ROCm does not say pageable or pinned
    assert step.idle_host_wait_ns > 0  # the kernel waited for its late launch (linked by correlation)
