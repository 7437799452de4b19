#!/usr/bin/env bash
# Runs the whole test suite on a fresh clone: sets up what is missing, then `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the report test opens report.html headless
LONAS_EXTRA_PACKAGES=chromium ./scripts/setup.sh --no-run
# the ONNX export tests run exports in onnxruntime-node and transformers.js: test-only packages with their own
# lockfile, installed here when missing (never for users). onnxruntime-node's CPU binaries ship in its npm
# package; ONNXRUNTIME_NODE_INSTALL=skip stops its install script from fetching CUDA binaries elsewhere.
if [ ! -d test/engines/onnx/node_modules/onnxruntime-node ] || [ ! -d test/engines/onnx/node_modules/@huggingface/transformers ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix test/engines/onnx --no-audit --no-fund
fi
npm test
