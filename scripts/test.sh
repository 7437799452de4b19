#!/usr/bin/env bash
# Runs the whole test suite on a fresh clone: sets up what is missing, then `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the report test opens report.html headless
LONAS_EXTRA_PACKAGES=chromium ./scripts/setup.sh --no-run
# llama.cpp for the GGUF export tests: node-llama-cpp 3.21.1 with its prebuilt linux-x64 CPU binaries, in a
# package of its own (never part of lonas's install). --omit=optional leaves out the CUDA/Vulkan/other-OS
# binary packages; --ignore-scripts skips its postinstall, which would only download or build binaries.
ENGINE=test/engines/llama-cpp
if [ ! -d "$ENGINE/node_modules/node-llama-cpp" ] || [ ! -d "$ENGINE/node_modules/@node-llama-cpp/linux-x64" ]; then
  npm ci --prefix "$ENGINE" --omit=optional --ignore-scripts --no-audit --no-fund
fi
npm test
