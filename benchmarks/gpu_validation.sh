#!/usr/bin/env bash
# Live validation of the GPU part on a machine with an NVIDIA GPU (see docs/validation.md).
# Runs every GPU sample workload under perfdoctor and checks what each report must show:
# the NVML sampler saw this process, the trace has device work, the planted finding fires,
# and the healthy run has nothing above info. Prints one line per workload; exits 1 if any fails.
#
#   benchmarks/gpu_validation.sh [OUT_DIR]        (default: gpu-validation-runs)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-gpu-validation-runs}
mkdir -p "$OUT"
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA GPU here")' || exit 2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

declare -A EXPECTED=(
  [gpu_healthy]=""
  [gpu_cudnn_benchmark_off]=cudnn-benchmark-off
  [gpu_amp_not_enabled]=amp-not-enabled
  [gpu_tf32_disabled]=tf32-disabled
  [gpu_host_device_sync]=host-device-sync
  [gpu_pageable_memcpy]=pageable-memcpy
  [gpu_dataloader_pin_memory]=dataloader-pin-memory
  [gpu_idle_launch_bound]=gpu-idle-launch-bound
  [gpu_low_utilization]=gpu-low-utilization
  [gpu_memory_near_limit]=gpu-memory-near-limit
  [gpu_channels_last]=channels-last
  [gpu_optimizer_foreach]=optimizer-foreach
  [gpu_memory_leak]=memory-growth
  [gpu_out_of_memory]=out-of-memory
  [gpu_memory_fragmentation]=gpu-memory-near-limit
)
failed=0
for name in $(printf '%s\n' "${!EXPECTED[@]}" | sort); do
  run="$OUT/$name"
  rm -rf "$run"
  steps=60
  [ "$name" = gpu_memory_leak ] && steps=300  # a trend needs more steps than the others' checks (fast steps are sampled sparsely)
  "$PY" -m perfdoctor run -q --max-steps "$steps" --out "$run" "sample_workloads/$name.py" --steps "$steps" >"$run.log" 2>&1
  "$PY" - "$run" "${EXPECTED[$name]}" <<'PYTHON' || failed=1
import json, sys
from pathlib import Path
from perfdoctor.stream.rundir import RunDir
run, expected = sys.argv[1], sys.argv[2]
name = run.rstrip("/").split("/")[-1]
report = json.load(open(f"{run}/report.json"))
nvml = RunDir(Path(run)).read_raw_file("gpu", None) or {}
gpu = report["gpu"] or {}
memory = report.get("memory") or {}
findings = [(f["id"], f["severity"], round(f["estimated_saving"], 3)) for f in report["findings"]]
by_id = {f["id"]: f for f in report["findings"]}
problems = []
expected_exit = 1 if name == "gpu_out_of_memory" else 0
if report["run"]["exit_code"] != expected_exit:
    problems.append(f"exit code {report['run']['exit_code']} (expected {expected_exit})")
if not (memory.get("gpu") or {}).get("peaks_per_window") and name != "gpu_out_of_memory":
    problems.append("no per-window CUDA peaks in the memory section")
if name == "gpu_memory_leak":
    growth = (by_id.get("memory-growth") or {}).get("evidence") or {}
    if growth.get("series") != "gpu_allocated" or not 12 <= (growth.get("growth_mb_per_step") or 0) <= 20:
        problems.append(f"memory-growth should see GPU allocated memory grow ~16 MiB/step: {growth}")
if name == "gpu_out_of_memory":
    oom = memory.get("oom") or {}
    if oom.get("step") != 20 or oom.get("phase") != "forward" or oom.get("module_type") != "LongBatchAttention" or not oom.get("summary"):
        problems.append(f"the OOM's step/phase/module/summary: {({k: oom.get(k) for k in ('step', 'phase', 'module_type')})}, summary {bool(oom.get('summary'))}")
if name == "gpu_memory_fragmentation":
    near = (by_id.get("gpu-memory-near-limit") or {}).get("evidence") or {}
    if not near.get("alloc_retries") or "expandable_segments" not in (by_id.get("gpu-memory-near-limit") or {}).get("advice", ""):
        problems.append(f"expected allocation retries and the expandable_segments advice: {near}")
if name in ("gpu_healthy", "gpu_memory_near_limit") and any(f[0] == "memory-growth" for f in findings):
    problems.append("memory-growth on a run whose memory is flat")
if not nvml.get("available"):
    problems.append(f"NVML unavailable: {nvml.get('reason')}")
elif not (gpu.get("nvml") or {}).get("used_by_this_process"):
    problems.append("NVML never saw this process's memory (pid namespace?)")
if not gpu.get("steps"):
    problems.append("no device work in the trace")
if expected and expected not in {f[0] for f in findings}:
    problems.append(f"{expected} did not fire")
if not expected and any(f[1] != "info" for f in findings):
    problems.append("findings above info on the healthy run")
status = "FAIL" if problems else "ok  "
steps = gpu.get("steps") or {}
print(f"{status} {name:28} util={gpu.get('utilization')} step_ms={steps.get('step_ms')} mfu={(gpu.get('mfu') or {}).get('mfu')} "
      f"peak_mem={gpu.get('peak_memory_bytes')} findings={findings} {'; '.join(problems)}")
trends = [(t["subject"], t["growing"], round(t["projected_bytes_per_step"] / 2**20, 2)) for t in memory.get("trends") or []]
print(f"     memory: samples={memory.get('samples')} cost_share={memory.get('sample_cost_share')} trends={trends}")
sys.exit(1 if problems else 0)
PYTHON
done
exit $failed
