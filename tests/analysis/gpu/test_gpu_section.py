"""The `gpu` section: a hand-built two-step trace whose numbers are worked out below, NVML
samples and memory peaks, and the real GPU traces in shared/traces with hand-checked numbers."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

import msgspec

from perfdoctor.analysis.gpu import gpu_section, kernel_kind, kernel_precision, summarize_nvml
from perfdoctor.model.environment import Cuda, CudaDevice, CudaMemoryPeak, Environment
from perfdoctor.model.gpu import ConvShapes, GpuSection, NvmlSummary, OpCause, OptimizerConfig, OptimizerKernels
from perfdoctor.trace import read_trace
from trace_builders import kernel, launch, op

GIB = 2**30
A100 = {"id": 0, "name": "NVIDIA A100-SXM4-40GB", "computeMajor": 8, "computeMinor": 0, "totalGlobalMem": 40 * GIB, "numSms": 108}
CONV_DIMS = [[8, 3, 32, 32], [16, 3, 3, 3], [16], [], [], [], [], [], []]


def event(name, ts, dur, cat="cpu_op", **args):
    return op(name, ts, dur, cat=cat, args=args)


def device(name, ts, dur, corr, cat="kernel", **args):
    return kernel(name, ts, dur, corr, cat=cat, **args)


def two_step_events():
    """ProfilerStep#1 = [0, 1000) us, #2 = [1000, 3000) us. Device timeline (launch in brackets):

    step 1: conv A [50,250) (20) | layout B [250,260) (30) | gap 60 | sgemm C [320,420) (310)
            | D [420,540) (415) | memcpy DtoH E [540,542) (440) | sync returns at 545, blocked 100
            | gap 88 after the sync | optimizer F,G,H [630,640) [660,670) [690,700) with 20, 20 gaps
            | gap 10 | multi_tensor I [710,720) | gap 230 | M [950,990) (940)
    step 2: gap 40 | conv K [1030,1230) (1020) | gap 25 | HtoD pageable J [1255,1275) (1250)
            | stall 1645 while the host runs aten::copy_ [1300,2900) | sgemm L [2920,2970) (2910)
    """
    return [
        event("ProfilerStep#1", 0, 1000, cat="user_annotation"),
        event("ProfilerStep#2", 1000, 2000, cat="user_annotation"),
        event("aten::convolution", 10, 30, **{"Input Dims": CONV_DIMS}),
        launch("cudaLaunchKernel", 20, 3, 1),
        device("sm80_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nchw_tilesize128x128x16", 50, 200, 1),
        launch("cudaLaunchKernel", 30, 3, 2),
        device("void cudnn::ops::nchwToNhwcKernel<float, float, float, false, true>", 250, 10, 2),
        event("aten::mm", 300, 30, **{"Input Dims": [[64, 128], [128, 256]]}),
        launch("cudaLaunchKernel", 310, 3, 3),
        device("ampere_sgemm_128x64_nn", 320, 100, 3),
        launch("cudaLaunchKernel", 415, 3, 6),
        device("void at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor<float>>", 420, 120, 6),
        event("aten::item", 430, 130),
        launch("cudaMemcpyAsync", 440, 3, 4),
        device("Memcpy DtoH (Device -> Pageable)", 540, 2, 4, cat="gpu_memcpy", bytes=4),
        launch("cudaStreamSynchronize", 445, 100, 5),
        event("aten::convolution_backward", 570, 20, **{"Input Dims": [[8, 16, 30, 30], [8, 3, 32, 32], [16, 3, 3, 3], [], []]}),
        event("Optimizer.step#SGD.step", 600, 300, cat="user_annotation"),
        launch("cudaLaunchKernel", 620, 3, 7),
        device("void at::native::vectorized_elementwise_kernel<4, at::native::MulFunctor<float>>", 630, 10, 7),
        launch("cudaLaunchKernel", 650, 3, 8),
        device("void at::native::vectorized_elementwise_kernel<4, at::native::MulFunctor<float>>", 660, 10, 8),
        launch("cudaLaunchKernel", 680, 3, 9),
        device("void at::native::vectorized_elementwise_kernel<4, at::native::MulFunctor<float>>", 690, 10, 9),
        launch("cudaLaunchKernel", 702, 3, 10),
        device("void at::native::multi_tensor_apply_kernel<TensorListMetadata<2>, AxpbyFunctor<float>>", 710, 10, 10),
        launch("cudaLaunchKernel", 940, 3, 14),
        device("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", 950, 40, 14),
        event("aten::convolution", 1010, 30, **{"Input Dims": CONV_DIMS}),
        launch("cudaLaunchKernel", 1020, 3, 11),
        device("sm80_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nchw_tilesize128x128x16", 1030, 200, 11),
        event("aten::to", 1240, 50),
        launch("cudaMemcpyAsync", 1250, 3, 13),
        device("Memcpy HtoD (Pageable -> Device)", 1255, 20, 13, cat="gpu_memcpy", bytes=4096),
        event("aten::copy_", 1300, 1600),
        event("aten::mm", 2905, 25, **{"Input Dims": [[64, 128], [128, 256]]}),
        launch("cudaLaunchKernel", 2910, 3, 12),
        device("ampere_sgemm_128x64_nn", 2920, 50, 12),
    ]


@pytest.fixture
def section(tmp_path):
    path = tmp_path / "two_steps.pt.trace.json"
    path.write_text(json.dumps({"schemaVersion": 1, "deviceProperties": [A100], "traceEvents": two_step_events()}))
    return gpu_section(read_trace(path))


def test_busy_idle_and_the_split_of_host_wait(section):
    steps = section.steps
    assert steps.profiled == 2 and steps.synthetic is False and steps.step_ms == 1.5
    # kernels: step 1 [50,260) [320,540) + 4 x 10 + 40 = 510 us; step 2 200 + 50 us; over 3000 us
    assert section.utilization == pytest.approx(760 / 3000, abs=1e-4)
    assert steps.kernel_ms == pytest.approx(0.38)
    # host-wait gaps: step 1 60 + 88 + 20 + 20 + 10 + 230 = 428 us; step 2 40 + 25 + 1645 = 1710 us
    assert steps.idle_host_wait_ms == pytest.approx((428 + 1710) / 2 / 1000)
    # after the sync: min(gap 88, blocked 100); launch gaps 340 + 65; the stall 1645
    assert steps.idle_after_sync_ms == pytest.approx(0.044)
    assert steps.idle_launch_gaps_ms == pytest.approx((340 + 65) / 2 / 1000)
    assert steps.idle_host_stalls_ms == pytest.approx(1645 / 2 / 1000)
    assert steps.kernels == 5.5 and steps.short_kernel_share == 0.0
    assert steps.syncs == 0.5 and steps.sync_ms == pytest.approx(0.05)
    assert steps.pageable_copies == 1.0 and steps.pageable_htod_copies == 0.5
    assert steps.pageable_htod_ms == pytest.approx(0.01) and steps.memcpy_htod_ms == pytest.approx(0.01)


def test_causes_and_what_the_host_did_during_stalls(section):
    assert section.sync_causes == [OpCause(op="aten::item", per_step=0.5, ms_per_step=0.05)]
    # pageable copies both ways: the HtoD in aten::to, the DtoH in aten::item
    assert section.pageable_causes == [
        OpCause(op="aten::to", per_step=0.5, ms_per_step=0.01), OpCause(op="aten::item", per_step=0.5, ms_per_step=0.001),
    ]
    stall = {op.op: op.ms_per_step for op in section.stall_ops}
    # stall [1275, 2920): aten::to 15 us, aten::copy_ 1600, aten::mm 15, uncovered 15; per step / 2
    assert stall == pytest.approx({"aten::copy_": 0.8, "aten::to": 0.0075, "aten::mm": 0.0075, "(Python, outside any op)": 0.0075})
    assert section.stall_ops[0].op == "aten::copy_"


def test_kernel_classes_optimizer_and_conv_shapes(section):
    kernels = section.kernels
    assert kernels.conv_tf32_ms == pytest.approx(0.2) and kernels.matmul_fp32_ms == pytest.approx(0.075)
    assert kernels.layout_transform_ms == pytest.approx(0.005) and kernels.layout_transforms == 0.5
    assert kernels.matmul_half_ms == kernels.conv_half_ms == kernels.conv_fp32_ms == 0.0
    assert kernels.dominant_precision == "tf32" and kernels.amp_scaler_ops is False
    assert section.optimizer == OptimizerKernels(
        host_ms=0.15, kernels=2.0, kernel_ms=0.02, foreach_kernels=0.5, foreach_share=0.25, names=["SGD.step"],
    )
    assert section.conv == ConvShapes(ops_per_step=1.0, shapes_recorded=True, static_shapes=True, distinct_shapes=1)


def test_flops_from_shapes_and_mfu_on_the_a100(section):
    device = section.device
    assert device.name == "NVIDIA A100-SXM4-40GB" and device.capability == (8, 0) and device.tensor_cores is True
    mfu = section.mfu
    conv = 3 * 2 * 8 * 16 * 30 * 30 * 3 * 3 * 3  # forward + two gradients, from convolution_backward
    matmul = 2 * 2 * 64 * 128 * 256  # one aten::mm in each step
    assert mfu.flops_source == "shapes" and mfu.flops_per_step == (conv + matmul) / 2
    achieved = (conv + matmul) / 2 / 1.5e-3 / 1e12
    assert mfu.achieved_tflops == round(achieved, 3) and mfu.precision == "tf32" and mfu.peak_tflops == 156.0
    assert mfu.mfu == pytest.approx(achieved / 156.0, rel=1e-3)


def test_a_changing_conv_shape_is_not_static(tmp_path):
    events = two_step_events()
    events[28] = event("aten::convolution", 1010, 30, **{"Input Dims": [[4, 3, 32, 32], [16, 3, 3, 3], [16]]})
    path = tmp_path / "dynamic.json"
    path.write_text(json.dumps({"deviceProperties": [A100], "traceEvents": events}))
    conv = gpu_section(read_trace(path)).conv
    assert conv.static_shapes is False and conv.distinct_shapes == 2


@pytest.mark.parametrize(
    "name, kind, precision",
    [
        ("volta_sgemm_64x64_nt", "matmul", "fp32"),
        ("ampere_fp16_s16816gemm_fp16_128x128_ldg8_f2f_stages_32x5_nn", "matmul", "half"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul", "half"),
        ("void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_256x64_16x4_nn_align4>(Params)", "matmul", "tf32"),
        ("nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NTN", "matmul", "half"),
        ("cudnn_infer_volta_scudnn_128x64_relu_medium_nn_v1", "conv", "fp32"),
        ("sm86_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x128x32", "conv", "half"),
        ("void cutlass_cudnn_infer::Kernel<cutlass_tensorop_s1688dgrad_optimized_tf32_64x128_32x3_nhwc>", "conv", "tf32"),
        ("void cudnn::detail::dgrad_engine<float, 512, 6, 5, 3, 3, 3, false>(int, int)", "conv", "fp32"),
        ("void fft2d_r2c_32x32<float, false, 5u, true>(float2*, float const*)", "conv", "fp32"),
        ("void cudnn::ops::nhwcToNchwKernel<float, float, float, true, false>", "layout", "fp32"),
        ("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 128, true, 1, true>", None, "fp32"),
        ("void cudnn::cnn::reduce_wgrad_nchw_helper<float, float>(void*)", None, "fp32"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>", None, "fp32"),
        ("ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)", None, "fp32"),
        # AMD: Tensile/hipBLASLt GEMMs name their data type after the index assignment; MIOpen's convolutions
        ("Cijk_Alik_Bljk_SB_Bias_AS_SAV_UserArgs_MT64x16x32_MI16x16x1_SN_LDSB0_AFC1", "matmul", "fp32"),  # the MI250 trace's
        ("Cijk_Ailk_Bljk_HHS_BH_MT128x128x32_MI32x32x8_SN_1LDSB0_APM1", "matmul", "half"),
        ("Cijk_Ailk_Bljk_BBS_BH_MT256x128x64_MI16x16x16_SN", "matmul", "half"),
        ("Cijk_Ailk_Bljk_S_MX_B_Bias_HA_S_SAV_UserArgs_MT128x128x32_MI32x32x4", "matmul", "tf32"),  # xfloat32 math
        ("igemm_fwd_gtcx_nhwc_fp16_bx0_ex1_bt128x128x32_wt32x32x8", "conv", "half"),
        ("naive_conv_fwd_nchw_float_double_float", "conv", "fp32"),
        ("MIOpenBatchNormFwdTrainSpatial", None, "fp32"),
    ],
)
def test_kernel_names_are_classified(name, kind, precision):
    assert kernel_kind(name) == kind and kernel_precision(name) == precision


# --- NVML and memory ---------------------------------------------------------------------------


def report_json(nvml_raw):
    return msgspec.to_builtins(summarize_nvml(nvml_raw))


def nvml_raw(process_memory=(0, 12 * GIB, 13 * GIB)):
    samples = {
        "utilization_gpu": [0, 90, 100], "utilization_memory": [0, 40, 50], "memory_used_bytes": [1 * GIB, 30 * GIB, 38 * GIB],
        "sm_clock_mhz": [210, 1400, 1300], "memory_clock_mhz": [1593] * 3, "power_w": [60.0, 300.0, 390.0],
        "temperature_c": [40, 70, 84], "throttle_reasons": [["gpu_idle"], [], ["sw_power_cap", "hw_thermal_slowdown"]],
        "pcie_rx_bytes_per_s": [0, 2048, 4096], "pcie_tx_bytes_per_s": [0, 1024, 1024], "process_memory_bytes": list(process_memory),
    }
    return {
        "available": True, "interval_s": 0.5, "driver_version": "550.54.15", "t_ns": [1, 2, 3], "step": [0, 1, 2],
        "devices": [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "memory_total_bytes": 40 * GIB, "power_limit_w": 400.0,
                     "sm_clock_max_mhz": 1410, "samples": samples}],
    }


def test_nvml_summary_leaves_out_set_up_samples():
    device = summarize_nvml(nvml_raw()).devices[0]
    # step-0 sample (set-up) left out: means over the last two
    assert device.utilization_mean_percent == 95.0 and device.utilization_peak_percent == 100
    assert device.memory_used_peak_bytes == 38 * GIB and device.process_memory_peak_bytes == 13 * GIB
    assert device.power_mean_w == 345.0 and device.power_limit_w == 400.0 and device.temperature_peak_c == 84
    assert device.throttle_reasons == {"sw_power_cap": 0.5, "hw_thermal_slowdown": 0.5}
    assert device.sm_clock_mean_mhz == 1350.0 and device.pcie_rx_mean_bytes_per_s == 3072
    assert summarize_nvml({"available": False, "reason": "no driver"}) == NvmlSummary(available=False, reason="no driver")
    assert report_json({"available": False, "reason": "no driver"}) == {"available": False, "reason": "no driver"}


def test_section_without_a_trace_uses_nvml_and_torch_peaks():
    environment = Environment(
        cuda=Cuda(
            available=True, initialized=True, current_device=0,
            devices=[CudaDevice(index=0, name="NVIDIA A100-SXM4-40GB", capability=(8, 0), total_memory_bytes=40 * GIB)],
            memory_peaks=[CudaMemoryPeak(index=0, allocated_bytes=30 * GIB, reserved_bytes=37 * GIB)],
        )
    )
    adam = OptimizerConfig(type="Adam", devices=["cuda"])
    section = gpu_section(None, nvml=nvml_raw(), environment=environment, optimizers=[adam])
    assert section.steps is None and section.utilization == 0.95 and section.utilization_source == "nvml"
    assert section.peak_memory_bytes == 37 * GIB  # torch's reserved peak: exact, unlike sampling
    memory = section.memory
    assert memory.nvml_device_used_peak_bytes == 38 * GIB and memory.peak_share == pytest.approx(38 / 40)
    assert section.device.tensor_cores is True and section.optimizers == [adam]
    assert section.mfu is None


def test_a_run_that_never_used_the_gpu_has_no_section():
    cpu = Environment(cuda=Cuda(available=True, initialized=False))
    assert gpu_section(None, nvml=nvml_raw(process_memory=(0, 0, 0)), environment=cpu) is None
    assert gpu_section(None, nvml={"available": False, "reason": "x"}, environment=Environment(cuda=Cuda(available=False))) is None


# --- the real traces in shared/traces ---------------------------------------------------------


def load(shared_traces, relative):
    return gpu_section(read_trace(shared_traces / relative))


def test_alexnet_pageable_copies_and_syncs(shared_traces):
    section = load(shared_traces, "a100_alexnet_sync/trace.pt.trace.json.gz")
    steps = section.steps
    assert steps.synthetic is True  # no ProfilerStep: the whole trace is one step
    assert steps.pageable_htod_copies == 16 and steps.pageable_htod_ms == pytest.approx(55.503)
    assert section.pageable_causes == [OpCause(op="aten::to", per_step=16.0, ms_per_step=55.503)]
    # 16 Stream Syncs after the blocking copies (aten::to), 4 cudaDeviceSynchronize, 1 in aten::add_
    assert steps.syncs == 21
    assert {cause.op: cause.per_step for cause in section.sync_causes} == {"aten::to": 16.0, "(no CPU op)": 4.0, "aten::add_": 1.0}
    assert 0.1 < steps.idle_after_sync_ms < steps.sync_ms  # bounded by the time the host was blocked
    assert section.device.name == "NVIDIA A100-PG509-200" and section.mfu.device_model == "A100"
    assert section.kernels.conv_tf32_ms == pytest.approx(1.814) and section.kernels.matmul_fp32_ms == pytest.approx(2.621)


def test_v100_utilization_matches_the_kernel_events(shared_traces):
    path = shared_traces / "v100_training/rank0.pt.trace.json.gz"
    section = load(shared_traces, "v100_training/rank0.pt.trace.json.gz")
    # Independently: every kernel interval, merged, over the span from the first step's start
    # to the last kernel's end (the device lags the host: the last step's kernels end after it).
    trace = json.loads(gzip.decompress(path.read_bytes()))
    events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    steps = [e for e in events if e["name"].startswith("ProfilerStep#")]
    kernels = sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in events if e.get("cat") == "kernel")
    begin = min(float(e["ts"]) for e in steps)
    kernels = [(max(s, begin), e) for s, e in kernels if e > begin]
    busy, reach = 0.0, begin
    for start, end in kernels:
        busy += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    independent = busy / (reach - begin)
    assert 0.95 < independent <= 1.0
    assert section.utilization == pytest.approx(independent, abs=0.03)
    assert section.steps.profiled == 5 and section.steps.kernels == 870
    assert section.steps.idle_host_wait_ms == 0.0 and section.steps.syncs == 0
    assert section.kernels.dominant_precision == "fp32" and section.steps.tensor_core_share == 0.0


def test_ddp_trace_is_launch_bound(shared_traces):
    section = load(shared_traces, "a100_ddp_nccl_2rank/rank0.pt.trace.json.gz")
    steps = section.steps
    assert steps.profiled == 3 and steps.kernels == 900 and steps.comm_ms > 10
    assert 0.2 < section.utilization < 0.26
    # most of the idle is in sub-millisecond gaps between launches: a slow host, not a stall
    assert steps.idle_launch_gaps_ms > 0.5 * steps.idle_host_wait_ms > steps.idle_host_stalls_ms
    assert section.kernels.dominant_precision == "tf32" and section.kernels.layout_transforms == 211
    assert section.optimizer.foreach_share == 1.0  # SGD's foreach kernels


def test_cpu_only_trace_has_no_gpu_section(shared_traces):
    assert load(shared_traces, "cpu_only/rank34.pt.trace.json.gz") is None


def test_gpu_section_is_json(section):
    document = json.loads(msgspec.json.encode(section))
    assert msgspec.convert(document, GpuSection) == section  # decodes strictly into the same section
    steps = msgspec.structs.asdict(section.steps)
    assert all(isinstance(v, (int, float)) for v in steps.values() if not isinstance(v, bool))
    assert not any(isinstance(v, np.generic) for v in steps.values())


# --- a run directory: raw/gpu.json, settings with CUDA, the trace, through load_run ----------------


def test_a_gpu_run_directory_fills_the_section(tmp_path):
    import shutil

    from conftest import REPO
    from perfdoctor.analysis.load import load_run
    from perfdoctor.rules.registry import evaluate

    run = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "data" / "run_reference_cnn", run)
    trace = run / "tb" / "gpu.pt.trace.json"
    trace.write_text(json.dumps({"schemaVersion": 1, "deviceProperties": [A100], "traceEvents": two_step_events()}))
    profiler = json.loads((run / "raw" / "profiler.json").read_text())
    (run / "raw" / "profiler.json").write_text(json.dumps({**profiler, "traces": ["tb/gpu.pt.trace.json"]}))
    settings = json.loads((run / "raw" / "settings.json").read_text())
    settings["cuda"] = {
        "available": True, "initialized": True, "current_device": 0,
        "devices": [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "capability": [8, 0], "total_memory_bytes": 40 * GIB}],
        "memory_peaks": [{"index": 0, "allocated_bytes": 36 * GIB, "reserved_bytes": 38 * GIB}],
    }
    (run / "raw" / "settings.json").write_text(json.dumps(settings))
    steps = json.loads((run / "raw" / "steps.json").read_text())
    steps["optimizers"] = [{"type": "SGD", "foreach": None, "fused": None, "devices": ["cuda"]}]
    (run / "raw" / "steps.json").write_text(json.dumps(steps))
    (run / "raw" / "gpu.json").write_text(json.dumps({"schema": "perfdoctor.raw/1", **nvml_raw()}))

    data = load_run(run)
    gpu = data.gpu
    assert gpu.steps.kernels == 5.5 and gpu.utilization_source == "trace"  # the GPU trace was read
    assert gpu.nvml.used_by_this_process == [0] and gpu.nvml.devices[0].power_mean_w == 345.0
    assert gpu.peak_memory_bytes == 38 * GIB and gpu.memory.peak_share == pytest.approx(38 / 40)
    assert gpu.optimizers[0].type == "SGD"
    ids = {finding.id: finding for finding in evaluate(data)}
    assert ids["gpu-memory-near-limit"].severity == "warning"  # 95% of the device: NVML's device peak
    # the reference run's settings: cudnn.benchmark off, TF32 off for matmuls
    assert ids["cudnn-benchmark-off"].estimated_saving == pytest.approx(0.2 / 1.5 * 0.2)
    # 0.075 ms of FP32 matmul is 5% of the step, just under tf32-disabled's bar: amp-not-enabled
    # speaks for the FP32 and TF32 work, (0.2 + 0.075) / 1.5 at half the time
    assert "tf32-disabled" not in ids
    assert ids["amp-not-enabled"].estimated_saving == pytest.approx(0.275 / 1.5 * 0.5)
    # idle no other rule explains: the 822.5 us stall plus 40 us of queued idle per step
    assert ids["gpu-low-utilization"].estimated_saving == pytest.approx(0.8625 / 1.5, abs=1e-3)
    assert set(ids) == {"cudnn-benchmark-off", "amp-not-enabled", "gpu-low-utilization", "gpu-memory-near-limit"}
