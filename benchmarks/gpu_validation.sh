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
)
failed=0
for name in $(printf '%s\n' "${!EXPECTED[@]}" | sort); do
  run="$OUT/$name"
  rm -rf "$run"
  "$PY" -m perfdoctor run -q --max-steps 60 --out "$run" "sample_workloads/$name.py" >"$run.log" 2>&1
  "$PY" - "$run" "${EXPECTED[$name]}" <<'PYTHON' || failed=1
import json, sys
run, expected = sys.argv[1], sys.argv[2]
name = run.rstrip("/").split("/")[-1]
report = json.load(open(f"{run}/report.json"))
nvml = json.load(open(f"{run}/raw/gpu.json"))
gpu = report["gpu"] or {}
findings = [(f["id"], f["severity"], round(f["estimated_saving"], 3)) for f in report["findings"]]
problems = []
if report["run"]["exit_code"] != 0:
    problems.append(f"exit code {report['run']['exit_code']}")
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
sys.exit(1 if problems else 0)
PYTHON
done
exit $failed
