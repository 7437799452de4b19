#!/usr/bin/env bash
# Runs the whole test suite on a fresh clone: sets up what is missing, then the type check, the linter and `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the report test opens report.html headless; setup.sh installs OpenMPI and builds the MPI
# binding, which the test/dist tests run under mpirun
LONAS_EXTRA_PACKAGES=chromium ./scripts/setup.sh --no-run
# llama.cpp for the GGUF export tests: node-llama-cpp 3.21.1 with its prebuilt linux-x64 CPU binaries, in a
# package of its own (never part of lonas's install). --omit=optional leaves out the CUDA/Vulkan/other-OS
# binary packages; --ignore-scripts skips its postinstall, which would only download or build binaries.
ENGINE=test/engines/llama-cpp
if [ ! -d "$ENGINE/node_modules/node-llama-cpp" ] || [ ! -d "$ENGINE/node_modules/@node-llama-cpp/linux-x64" ]; then
  npm ci --prefix "$ENGINE" --omit=optional --ignore-scripts --no-audit --no-fund
fi
# the ONNX export tests run exports in onnxruntime-node and transformers.js: test-only packages with their own
# lockfile, installed here when missing (never for users). onnxruntime-node's CPU binaries ship in its npm
# package; ONNXRUNTIME_NODE_INSTALL=skip stops its install script from fetching CUDA binaries elsewhere.
if [ ! -d test/engines/onnx/node_modules/onnxruntime-node ] || [ ! -d test/engines/onnx/node_modules/@huggingface/transformers ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix test/engines/onnx --no-audit --no-fund
fi
# tsx strips types without checking them: only the compiler checks them (e.g. the exhaustive VJP table)
npm run typecheck
npm run lint
# the formatter (biome.jsonc, 140 columns) must leave every file as it is
npm run format:check
npm test
