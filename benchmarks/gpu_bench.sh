#!/usr/bin/env bash
# The speed table on a machine with an NVIDIA GPU (onnxruntime's CUDA provider).
# Needs: an NVIDIA driver, and the gpu extra (onnxruntime-gpu with the CUDA 13 + cuDNN 9 wheels):
#   POLYPVISION_EXTRAS=dev,train,app,gpu bash scripts/setup.sh
# Check first that the CUDA provider really runs (this prints "CUDA (...)" or says why not):
#   .venv/bin/polypvision info --provider cuda
set -euo pipefail
cd "$(dirname "$0")/.."
out="benchmarks/gpu-$(hostname)-$(date +%Y%m%d)"
.venv/bin/polypvision info --provider cuda >/dev/null
.venv/bin/polypvision bench demo --provider cuda --json "$out.json" --markdown "$out.md" "$@"
echo "wrote $out.md and $out.json"
