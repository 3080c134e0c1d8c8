#!/usr/bin/env bash
# The whole GPU benchmark in one command, on a machine with an NVIDIA GPU: install the wheels
# bench/gpu-wheels.sh downloaded (when there is a .whl/ folder), then plain diffusers against
# openveo on Wan 2.1 1.3B (832x480, 81 frames, 50 steps, guidance 5) and the opt-in modes. Results go
# to bench/results/ and, where the device tool sets it, $OUT.
#   bash bench/gpu.sh [more `openveo bench` options, e.g. --arch wan2.2-ti2v-5b]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--arch wan2.1-t2v-1.3b)
python3 -m openveo.cli bench "${args[@]}" --modes first-block,taylorseer,fast,fast+lora,fp8 --out bench/results \
  2>&1 | tee bench/results/gpu-run.log
if [ -n "${OUT:-}" ]; then cp bench/results/engine-* bench/results/gpu-run.log "$OUT"/ 2>/dev/null || true; fi
