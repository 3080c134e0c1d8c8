#!/usr/bin/env bash
# Download, here, the wheels bench/gpu.sh installs on a bare GPU image that already has torch,
# transformers, accelerate, typer and rich (the development workplace's device machines: Python
# 3.12, x86-64, no network). Writes .whl/ (git-ignored); carry it to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
python3 -m pip wheel -q --no-deps -w .whl .   # openveo itself
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_24_x86_64 -d .whl \
  "diffusers==0.42.1" "importlib-metadata" "av==18.1.0" "torchao==0.18.0" \
  "pydantic==2.14.4" "pydantic-core==2.50.5" "pydantic-settings" "python-dotenv" "typing-inspection" \
  "annotated-types" "ftfy" "wcwidth"
ls -1 .whl
